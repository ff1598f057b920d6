"""The ``geoembed`` command line. Inputs are validated before any model is loaded.

Exit codes: 0 done, 1 failed, 2 invalid input (the message names the parameter), 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import Cancelled, GeoEmbedError, InputError
from .geolocation.cli import add_geolocate_command
from .probes.cli import OPTIONS as PROBE_OPTIONS
from .probes.cli import add_probe_commands
from .progress import Progress

# QGIS parameter name -> CLI option, so errors name both.
OPTIONS = {"EXTENT": "--extent", "TARGET_CRS": "--crs", "EXTENT_CRS": "--extent-crs", "PIXEL_SIZE": "--pixel-size",
           "MODEL": "--model", "DIMS": "--dims", "OUTPUT": "--output", "REFERENCE": "--reference",
           "REFERENCE_CRS": "--reference-crs", "DTYPE": "--dtype", "DEVICE": "--device",
           "EVALUATION": "--evaluation", "TOLERANCE": "--tolerance", "PREVIEW": "--preview", **PROBE_OPTIONS}


def _grid(args):
    from .grid import RasterGrid, parse_crs, parse_numbers

    crs = parse_crs(args.crs, "TARGET_CRS")
    extent = parse_numbers(args.extent, 4, "EXTENT")
    if args.extent_crs:
        extent_crs = parse_crs(args.extent_crs, "EXTENT_CRS")
        if extent_crs != crs:
            extent = _transform_extent(extent, extent_crs, crs)
    return RasterGrid.create(crs, tuple(extent), args.pixel_size)


def _transform_extent(extent, src, dst):
    from pyproj import Transformer

    xmin, ymin, xmax, ymax = Transformer.from_crs(src, dst, always_xy=True).transform_bounds(*extent, densify_pts=21)
    if dst.is_geographic and xmax < xmin:  # crosses the antimeridian: continue east past 180
        xmax += 360.0
    if not all(map(lambda v: abs(v) < float("inf"), (xmin, ymin, xmax, ymax))):
        raise InputError("EXTENT", "the extent cannot be transformed into the target CRS; pick a target CRS "
                                   "that covers it")
    return [xmin, ymin, xmax, ymax]


def _embedder(args, progress: Progress):
    from .embedder import load_embedder
    from .runtime import configure_threads

    configure_threads()
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("DEVICE", "CUDA was requested but torch sees no GPU; use --device cpu or auto")
    embedder, warm = load_embedder(args.model, device)
    state = "already loaded (warm backend)" if warm else "loaded"
    progress.log(f"model {args.model!r} {state} on {device} ({torch.get_num_threads()} threads)")
    return embedder


def _reference(args) -> tuple[float, float]:
    from .coords import check_lonlat
    from .grid import parse_crs, parse_numbers, to_lonlat

    x, y = parse_numbers(args.reference, 2, "REFERENCE")
    crs = parse_crs(args.reference_crs, "REFERENCE_CRS")
    lon, lat, valid = to_lonlat(crs, [x], [y])
    if not valid[0]:
        raise InputError("REFERENCE", f"the point ({x}, {y}) in {crs.name} has no position on the globe; "
                                      "pick a point inside the valid area of its CRS")
    check_lonlat(float(lon[0]), float(lat[0]), "REFERENCE")
    return float(lon[0]), float(lat[0])


def _common_checks(args):
    from .geotiff import check_output_path
    from .store import ModelStore

    grid = _grid(args)
    output = check_output_path(args.output)
    ModelStore().path(args.model)  # unknown model: fail before loading torch
    if getattr(args, "dims", None) is not None and args.dims < 1:
        raise InputError("DIMS", f"DIMS must be a positive number of principal components, got {args.dims}")
    if not args.tolerance > 0:
        raise InputError("TOLERANCE", f"the tolerance must be a positive number, got {args.tolerance}")
    return grid, output


def cmd_embed_raster(args, progress: Progress) -> dict:
    from .geotiff import check_output_path
    from .rasters import embedding_raster

    grid, output = _common_checks(args)
    preview = check_output_path(args.preview, "PREVIEW") if args.preview else None
    if preview == output:
        raise InputError("PREVIEW", f"the preview must be another file than the output {output}")
    embedder = _embedder(args, progress)
    return embedding_raster(embedder, grid, output, dims=args.dims, dtype=args.dtype, max_gb=args.max_size_gb,
                            progress=progress, evaluation=args.evaluation, tolerance=args.tolerance,
                            preview=preview)


def cmd_similarity(args, progress: Progress) -> dict:
    from .rasters import similarity_raster

    grid, output = _common_checks(args)
    reference = _reference(args)
    embedder = _embedder(args, progress)
    return similarity_raster(embedder, grid, output, reference, dims=args.dims, dtype=args.dtype,
                             max_gb=args.max_size_gb, progress=progress, evaluation=args.evaluation,
                             tolerance=args.tolerance)


def cmd_models_list(args, progress: Progress) -> dict:
    from .store import ModelStore

    store = ModelStore()
    cards = store.cards()
    if args.json:
        print(json.dumps({"home": str(store.home), "models": cards}, indent=2))
    elif not cards:
        print(f"No models in {store.models_dir}. Run `geoembed models install-default` (or `make setup`).")
    else:
        print(f"Models in {store.models_dir}:")
        for card in cards:
            arch = card["architecture"]["name"]
            print(f"  {card['id']:<16} {card['dimension']:>4}-d  {arch:<10} {card.get('name', '')}")
    return {"models": [c["id"] for c in cards]}


def cmd_models_install_default(args, progress: Progress) -> dict:
    from . import geoclip_release
    from .runtime import configure_threads
    from .store import ModelStore

    configure_threads()
    store = ModelStore()
    # The wheel stays cached (tests compare against it) even when the model is already installed.
    wheel = Path(args.wheel) if args.wheel else geoclip_release.download_wheel(Path(args.cache))
    if geoclip_release.is_installed(store) and not args.force:
        progress.log(f"model 'geoclip' is already installed in {store.models_dir}")
        return {"model": "geoclip", "path": str(store.path("geoclip"))}
    path = geoclip_release.install(store, wheel)
    progress.log(f"installed model 'geoclip' from {wheel.name} into {path}")
    return {"model": "geoclip", "path": str(path)}


def cmd_models_import(args, progress: Progress) -> dict:
    from .model_import import import_model
    from .runtime import configure_threads
    from .store import ModelStore

    configure_threads()
    store = ModelStore()
    folder = import_model(store, Path(args.path), model_id=args.id, name=args.name, force=args.force,
                          progress=progress)
    card = store.card(folder.name)
    progress.log(f"installed model {card['id']!r} ({card['dimension']}-d, {card['name']}) into {folder}")
    return {"model": card["id"], "path": str(folder), "name": card["name"], "dimension": card["dimension"]}


def _card_lines(entry: dict, indent: str = "") -> list[str]:
    lines = []
    for key, value in entry.items():
        if isinstance(value, dict):
            lines += [f"{indent}{key}:", *_card_lines(value, indent + "  ")]
        else:
            lines.append(f"{indent}{key}: {value}")
    return lines


def cmd_models_show(args, progress: Progress) -> dict:
    from .store import ModelStore

    try:
        card = ModelStore().card(args.model_id)
    except InputError as err:
        raise InputError("MODEL_ID", err.reason) from None
    if args.progress != "json":
        print(json.dumps(card, indent=2) if args.json else "\n".join(_card_lines(card)))
    return {"model": card["id"], "card": card}


def _grid_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The output grid, model and GeoTIFF options shared by every raster command."""
    p.add_argument("--extent", required=required, help="xmin,ymin,xmax,ymax in --extent-crs (default: --crs)")
    p.add_argument("--extent-crs", help="CRS of --extent if it differs from --crs")
    p.add_argument("--crs", required=required, help="output CRS, e.g. EPSG:3035")
    p.add_argument("--pixel-size", type=float, required=required, help="pixel size in units of --crs")
    p.add_argument("--model", default="geoclip", help="model id from `geoembed models` (default: geoclip)")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--max-size-gb", type=float, default=None,
                   help="refuse outputs larger than this, uncompressed (default: $GEOEMBED_MAX_OUTPUT_GB or 64)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--evaluation", choices=["auto", "dense"], default="auto",
                   help="auto: where pixels are far finer than the model resolves, embed a coarse lattice, "
                        "interpolate and verify against exact samples (default); dense: embed every pixel")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest verified deviation of --evaluation auto, in cosine terms (default 1e-3)")
    p.add_argument("--output", required=True, help="output GeoTIFF (.tif)")


def _embedding_options(p: argparse.ArgumentParser) -> None:
    _grid_options(p)
    p.add_argument("--dims", type=int, help="keep this many principal components (the model's PCA basis)")


def cmd_train(args, progress: Progress) -> dict:
    from .training.run import train_from_config

    return train_from_config(Path(args.config), Path(args.run_dir) if args.run_dir else None, args.resume,
                             args.device, args.model_id, args.force, progress)


def cmd_serve(args, progress: Progress) -> dict:
    from .worker import serve

    return serve(Path(args.socket), args.idle_timeout, progress)


class UsageError(GeoEmbedError):
    """A command line argparse rejects: its usage and message."""


class _Parser(argparse.ArgumentParser):
    """argparse raising UsageError instead of exiting, so that the warm worker can report it to its client."""

    def error(self, message):
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="geoembed", description="Location embeddings as GIS rasters.")
    parser.add_argument("--version", action="version", version=f"geoembed {__version__}")
    parser.add_argument("--progress", choices=["text", "json", "none"], default="text",
                        help="json: one JSON object per line on stdout (used by the QGIS plugin)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("embed-raster", help="write an embedding raster, one band per dimension")
    _embedding_options(p)
    p.add_argument("--preview", help="also write an RGB GeoTIFF (bytes) of the first 3 principal components, each "
                                     "stretched between its 2nd and 98th percentile, from the same embeddings")
    p.set_defaults(func=cmd_embed_raster)

    p = sub.add_parser("similarity", help="write the cosine similarity of every pixel to a reference place")
    _embedding_options(p)
    p.add_argument("--reference", required=True, help="x,y of the reference place in --reference-crs")
    p.add_argument("--reference-crs", default="EPSG:4326", help="CRS of --reference (default EPSG:4326, lon,lat)")
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("models", help="list the models in the store")
    p.add_argument("--json", action="store_true", help="print the model cards as JSON")
    p.set_defaults(func=cmd_models_list)
    msub = p.add_subparsers(dest="action")
    q = msub.add_parser("install-default", help="install GeoCLIP's released encoder as model 'geoclip'")
    q.add_argument("--wheel", help="a local geoclip-1.3.0 wheel (default: pip download it)")
    q.add_argument("--cache", default=str(Path.home() / ".cache" / "geoembed"), help="where to keep the wheel")
    q.add_argument("--force", action="store_true", help="reinstall even if present")
    q.set_defaults(func=cmd_models_install_default)
    q = msub.add_parser("import", help="convert a SatCLIP checkpoint (.ckpt) or a GeoEmbed model folder into the store")
    q.add_argument("path", help="a SatCLIP Lightning checkpoint (.ckpt), or a folder with card.json and "
                                "weights.safetensors")
    q.add_argument("--id", help="model id (default: from the file name)")
    q.add_argument("--name", help="display name (default: from the checkpoint)")
    q.add_argument("--force", action="store_true", help="replace an installed model with the same id")
    q.set_defaults(func=cmd_models_import, options={"INPUT": "PATH", "MODEL_ID": "--id"})
    q = msub.add_parser("show", help="print a model's card")
    q.add_argument("model_id", metavar="ID", help="model id from `geoembed models`")
    q.add_argument("--json", action="store_true", help="print the card as JSON")
    q.set_defaults(func=cmd_models_show, options={"MODEL_ID": "ID"})

    add_probe_commands(sub, _grid_options)
    add_geolocate_command(sub)

    p = sub.add_parser("train", help="train a location encoder contrastively against imagery (rasters or geotagged "
                                     "photos) and install it in the model store")
    p.add_argument("config", metavar="CONFIG", help="training config (.json or .yaml); see docs/training.md")
    p.add_argument("--run-dir", help="folder for the resolved config, checkpoints, metrics and report "
                                     "(default: CONFIG's name + '-run' beside it)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: the config's, else auto)")
    p.add_argument("--model-id", help="id of the trained model in the store (default: the config's model_id, else "
                                      "CONFIG's name)")
    p.add_argument("--force", action="store_true", help="replace an installed model with the same id")
    p.set_defaults(func=cmd_train, options={"RUN_DIR": "--run-dir", "RESUME": "--resume",
                                            "MODEL_ID": "--model-id"})

    p = sub.add_parser("serve", help="the warm backend: keep models loaded and run the command lines sent to a "
                                     "local socket (what the QGIS plugin starts)")
    p.add_argument("--socket", required=True, help="Unix socket path; its folder must be private (mode 0700)")
    p.add_argument("--idle-timeout", type=float, default=600.0,
                   help="stop after this many seconds without a request (default 600)")
    p.set_defaults(func=cmd_serve, options={"SOCKET": "--socket", "IDLE_TIMEOUT": "--idle-timeout"})
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """``argv`` (default: sys.argv[1:]) parsed; UsageError if argparse rejects it."""
    args = build_parser().parse_args(argv)
    if getattr(args, "max_size_gb", 0) is None:
        from .rasters import DEFAULT_MAX_GB
        args.max_size_gb = DEFAULT_MAX_GB
    return args


def run(args: argparse.Namespace, progress: Progress) -> int:
    """Run a parsed command, reporting through ``progress``; the exit code. Shared by the one-shot CLI (main) and
    the warm worker (one ``progress`` per request)."""
    try:
        progress.check()  # a request cancelled before it started
        result = args.func(args, progress)
    except InputError as err:
        option = {**OPTIONS, **getattr(args, "options", {})}.get(err.parameter)
        progress.error(f"{err.parameter}{f' ({option})' if option else ''}: {err.reason}", err.parameter)
        return 2
    except Cancelled as err:
        progress.error(str(err))
        return 130
    except (GeoEmbedError, ValueError, OSError, RuntimeError) as err:
        progress.error(f"{type(err).__name__}: {err}")
        return 1
    progress.result(**result)
    if args.progress == "text" and "output" in result:
        size = f" ({result['width']} x {result['height']} pixels, {result['bands']} bands)" if "width" in result else ""
        print(f"wrote {result['output']}{size}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    progress = Progress(args.progress)
    progress.stop_on_signals()
    return run(args, progress)


if __name__ == "__main__":
    sys.exit(main())
