"""``geoembed probe train`` and ``geoembed probe apply``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..progress import Progress

OPTIONS = {"INPUT": "--vector / --raster / --points", "LAYER": "--layer", "FIELD": "--field", "BAND": "--band",
           "SAMPLES": "--samples", "TASK": "--task", "PROBE_TYPE": "--probe-type", "FOLDS": "--folds",
           "BLOCK_KM": "--block-km", "SMOOTH_KM": "--smooth-km", "PROBE": "--probe", "REPORT": "--report-dir",
           "UNITS": "--units"}
PROBE_SUFFIX = ".geoprobe"
MAX_UNITS = 40
MAX_SMOOTH_KM = 500.0
MAX_SMOOTH_RADII = 3
# The probe reads the embeddings smoothed over 25 km and over 100 km side by side. Smoothing over 25 km alone had
# scored as well or better than 0, 15 or 40 km on 29 of the probe benchmark's 30 rows; adding the 100 km part raised
# N = 100 further (20 draws, paired): Koppen +0.0055 (standard error 0.0011), MODIS +0.005, precipitation R^2
# +0.004 (docs/benchmarks.md).
DEFAULT_SMOOTH_KM = (25.0, 100.0)


def smoothing_radii(text: str) -> tuple[float, ...]:
    """The smoothing radii (km) in a comma-separated list: 1 to MAX_SMOOTH_RADII distinct numbers, 0 to
    MAX_SMOOTH_KM."""
    try:
        radii = tuple(float(part) for part in str(text).split(","))
    except ValueError:
        radii = ()
    if not 1 <= len(radii) <= MAX_SMOOTH_RADII or len(set(radii)) < len(radii) \
            or not all(0.0 <= km <= MAX_SMOOTH_KM for km in radii):  # NaN fails too
        raise InputError("SMOOTH_KM", f"give 1 to {MAX_SMOOTH_RADII} different smoothing radii from 0 to "
                                      f"{MAX_SMOOTH_KM:g} km, separated by commas (e.g. 25,100; 0: no smoothing), "
                                      f"got {text!r}")
    return radii


def _band(text: str) -> int | str:
    if text in ("mean", "sum"):
        return text
    try:
        return int(text)
    except ValueError:
        raise InputError("BAND", f"band {text!r}: give a 1-based band number, or mean / sum of all bands") from None


def _check_probe_output(path: str) -> Path:
    p = Path(path).expanduser().absolute()
    if p.suffix.lower() != PROBE_SUFFIX:
        raise InputError("OUTPUT", f"{p.name}: a probe file name must end in {PROBE_SUFFIX}")
    if not p.parent.is_dir():
        raise InputError("OUTPUT", f"folder {p.parent} does not exist; create it or choose another location")
    return p


def _units(text: str) -> str:
    units = (text or "").strip()
    if len(units) > MAX_UNITS or not units.isprintable():
        raise InputError("UNITS", f"units {text!r}: give a short printable text of at most {MAX_UNITS} characters, "
                                  "e.g. mm/year or degC")
    return units


def _labels(args, progress: Progress):
    from .labels import read_vector_labels, sample_raster_labels

    if args.samples < 1:
        raise InputError("SAMPLES", f"the number of samples must be at least 1, got {args.samples}")
    if args.vector:
        if not args.field:
            raise InputError("FIELD", "give the field that holds the labels (--field)")
        return read_vector_labels(args.vector, args.field, layer=args.layer, task=args.task, samples=args.samples,
                                  seed=args.seed, progress=progress)
    extent = None
    if args.extent:
        from ..grid import parse_numbers
        extent = tuple(parse_numbers(args.extent, 4, "EXTENT"))
    return sample_raster_labels(args.raster, band=_band(args.band), samples=args.samples, extent=extent,
                                extent_crs=args.extent_crs, task=args.task, seed=args.seed, progress=progress)


def _stage(progress: Progress, start: float, span: float):
    """``progress`` for one stage of a run, mapping its 0..1 onto ``start``..``start + span``."""
    def report(fraction: float, message: str = "") -> None:
        progress(start + span * fraction, message)
    return report


def cmd_train(args, progress: Progress) -> dict:
    from ..cli import _embedder
    from ..store import ModelStore
    from .report import summary_table, write_report
    from .train import train_probe

    output = _check_probe_output(args.output)
    report_dir = Path(args.report_dir).expanduser().absolute() if args.report_dir else output.parent
    if not report_dir.is_dir():
        raise InputError("REPORT", f"folder {report_dir} does not exist; create it or choose another location")
    if args.folds < 2:
        raise InputError("FOLDS", f"cross-validation needs at least 2 folds, got {args.folds}")
    if not args.block_km > 0:
        raise InputError("BLOCK_KM", f"the block size must be a positive number of km, got {args.block_km}")
    units = _units(args.units)
    smooth_km = smoothing_radii(args.smooth_km)
    ModelStore().path(args.model)
    points = _labels(args, _stage(progress, 0.0, 0.05))
    progress.log(f"{len(points.lon):,} labelled points ({points.task}, {points.name})")
    if units and points.task != "regression":
        progress.log(f"units {units!r} ignored: the labels are classes")
    embedder = _embedder(args, progress)
    embedding = _stage(progress, 0.05, 0.15)
    embeddings = embedder.embed(points.lon, points.lat,
                                lambda done, total: embedding(done / max(total, 1), "embedding the labelled points"),
                                smooth_km=smooth_km)
    model = {"model_id": embedder.model_id, "weights_sha256": embedder.weights_sha256, "dimension": embedder.dim}
    probe, report = train_probe(embeddings, points, model=model, probe_type=args.probe_type, folds=args.folds,
                                block_km=args.block_km, seed=args.seed, units=units, smooth_km=smooth_km,
                                progress=_stage(progress, 0.2, 0.75))
    written = write_report(report, report_dir, output.stem)
    probe.save(output)
    return {"output": str(output), "task": probe.task, "label": probe.label, "units": probe.units,
            "samples": len(points.lon), "report": [str(p) for p in written], "summary_text": summary_table(report)}


def cmd_apply(args, progress: Progress) -> dict:
    from ..cli import _common_checks, _embedder
    from .apply import apply_points, apply_raster, check_vector_output
    from .probe import Probe

    probe = Probe.load(args.probe)
    args.model = args.model or probe.model_id
    if args.points:
        output = check_vector_output(args.output)
        embedder = _embedder(args, progress)
        return apply_points(embedder, probe, args.points, output, layer_name=args.layer, progress=progress)
    if not (args.extent and args.crs and args.pixel_size):
        raise InputError("INPUT", "give either --points PATH, or --extent, --crs and --pixel-size for a raster")
    grid, output = _common_checks(args)
    embedder = _embedder(args, progress)
    return apply_raster(embedder, probe, grid, output, dtype=args.dtype, max_gb=args.max_size_gb,
                        progress=progress, evaluation=args.evaluation, tolerance=args.tolerance)


def add_probe_commands(sub: argparse._SubParsersAction, grid_options) -> None:
    """Register ``probe train`` and ``probe apply``; ``grid_options(parser, required)`` adds raster options."""
    p = sub.add_parser("probe", help="train a probe on labelled data, or apply one")
    psub = p.add_subparsers(dest="action", required=True)

    t = psub.add_parser("train", help="train a probe on embeddings of labelled points, polygons or a raster")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--vector", help="point or polygon layer (any OGR format) with the labels in --field")
    source.add_argument("--raster", help="raster whose --band holds the labels (sampled at --samples points)")
    t.add_argument("--layer", help="layer name inside --vector (default: the first)")
    t.add_argument("--field", help="field of --vector holding the labels")
    t.add_argument("--band", default="1", help="band of --raster: a 1-based number, or mean / sum of all bands")
    t.add_argument("--samples", type=int, default=1000,
                   help="points to sample in polygons or in the raster (default 1000; points layers use all)")
    t.add_argument("--extent", help="sample the raster inside xmin,ymin,xmax,ymax (default: its footprint)")
    t.add_argument("--extent-crs", default="EPSG:4326", help="CRS of --extent (default EPSG:4326)")
    t.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                   help="auto: classification for text or few integer values, else regression")
    t.add_argument("--units", default="",
                   help="units of numeric labels, e.g. mm/year or degC: the prediction raster's band is then named "
                        "'prediction (mm/year)'")
    t.add_argument("--probe-type", choices=["auto", "linear", "mlp"], default="auto")
    t.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    t.add_argument("--block-km", type=float, default=1000.0, help="spatial block size for block CV (default 1000)")
    default_radii = ",".join(f"{km:g}" for km in DEFAULT_SMOOTH_KM)
    t.add_argument("--smooth-km", default=default_radii,
                   help="comma-separated radii in km: the probe reads the embeddings smoothed over each, side by "
                        "side, in training and wherever it is applied; a smoothed embedding is the mean over the "
                        "point and a ring of 6 points that far around it (0: the point's own embedding; default "
                        f"{default_radii})")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--model", default="geoclip", help="model id from `geoembed models` (default: geoclip)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--report-dir", help="folder for the report (default: beside --output)")
    t.add_argument("--output", required=True, help=f"probe file ({PROBE_SUFFIX})")
    t.set_defaults(func=cmd_train)

    a = psub.add_parser("apply", help="predict with a probe over a raster grid or at the points of a layer")
    a.add_argument("--probe", required=True, help=f"probe file ({PROBE_SUFFIX}) from `geoembed probe train`")
    a.add_argument("--points", help="point layer to predict at; --output is then a .gpkg/.shp/.geojson copy")
    a.add_argument("--layer", help="layer name inside --points (default: the first)")
    grid_options(a, required=False)
    next(x for x in a._actions if x.dest == "model").help = "model id (default: the model the probe was trained on)"
    a.set_defaults(func=cmd_apply, model=None)
