"""``geoembed geolocate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..progress import Progress

GALLERIES = ("fibonacci", "geoclip", "points")
DEFAULT_GALLERY_SIZE = 100_000
OPTIONS = {"IMAGES": "--images", "RASTER": "--raster", "POINTS": "--points", "GALLERY": "--gallery",
           "GALLERY_SIZE": "--gallery-size", "GALLERY_POINTS": "--gallery-points", "GEOCLIP_WHEEL": "--geoclip-wheel",
           "MASK": "--mask", "TOP_K": "--top-k", "REFINE": "--refine / --no-refine",
           "PROBABILITY_RASTER": "--probability-raster"}


def _region(args):
    from .regions import GLOBE, extent_region, mask_region

    if args.extent and args.mask:
        raise InputError("MASK", "give an extent or a mask layer, not both")
    if args.extent:
        return extent_region(args.extent, args.extent_crs)
    if args.mask:
        return mask_region(args.mask, args.mask_layer)
    return GLOBE


def _gallery(args):
    from .galleries import fibonacci_gallery, find_wheel, geoclip_gallery, points_gallery

    if args.gallery_size is not None and args.gallery != "fibonacci":
        raise InputError("GALLERY_SIZE", f"the gallery size applies to --gallery fibonacci only; a {args.gallery} "
                                         "gallery has the points it has")
    if (args.gallery == "points") != bool(args.gallery_points):
        raise InputError("GALLERY_POINTS", "give --gallery points together with --gallery-points PATH")
    if args.geoclip_wheel and args.gallery != "geoclip":
        raise InputError("GEOCLIP_WHEEL", "the wheel is read only for --gallery geoclip")
    region = _region(args)
    if args.gallery == "geoclip":
        return geoclip_gallery(find_wheel(args.geoclip_wheel), region)
    if args.gallery == "points":
        return points_gallery(args.gallery_points, args.gallery_points_layer, region)
    size = DEFAULT_GALLERY_SIZE if args.gallery_size is None else args.gallery_size
    return fibonacci_gallery(size, region)


def _outputs(args) -> tuple[Path, Path | None]:
    from ..geotiff import check_output_path
    from ..probes.apply import check_vector_output
    from ..training.dataset import as_parameter

    output = check_vector_output(args.output)
    if not args.probability_raster:
        if args.pixel_size is not None:
            raise InputError("PIXEL_SIZE", "the pixel size applies to the probability raster: give "
                                           "--probability-raster too")
        return output, None
    with as_parameter("PROBABILITY_RASTER"):
        raster = check_output_path(args.probability_raster)
    if args.pixel_size is not None and not args.pixel_size > 0:
        raise InputError("PIXEL_SIZE", f"the pixel size must be a positive number of degrees, got {args.pixel_size}")
    return output, raster


def cmd_geolocate(args, progress: Progress) -> dict:
    from ..cli import _embedder
    from ..image_embedder import ImageEmbedder
    from ..store import ModelStore
    from .geolocate import check_top_k, geolocate
    from .images import read_image_files, read_raster_patches

    output, raster = _outputs(args)
    if bool(args.raster) != bool(args.points):
        raise InputError("POINTS", "give --raster together with --points, the point layer of patch centres")
    ModelStore().path(args.model)
    gallery = _gallery(args)
    check_top_k(args.top_k, gallery)
    embedder = _embedder(args, progress)
    image_embedder = ImageEmbedder(args.model, device=str(embedder.device))
    size, channels = image_embedder.patch_size, image_embedder.in_channels
    if args.raster:
        images = read_raster_patches(args.raster, args.points, args.points_layer, size, channels, progress.log,
                                     downsample=image_embedder.downsample)
    else:
        images = read_image_files(args.images, size, channels, progress.log)
    progress.log(f"{len(images.names)} images to geolocate ({len(images.skipped)} skipped)")
    return geolocate(images, image_embedder, embedder, gallery, top_k=args.top_k, output=output, refine=args.refine,
                     raster=raster, pixel_size=args.pixel_size, progress=progress)


def add_geolocate_command(sub: argparse._SubParsersAction) -> None:
    """Register ``geolocate``."""
    p = sub.add_parser("geolocate", help="geolocate images with a trained model: the top-K candidate places of each "
                                         "image as points, and optionally probability maps")
    p.add_argument("--model", required=True, help="a model trained with `geoembed train` (it has an image encoder)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", metavar="PATH",
                        help="image files (JPEG, PNG, TIFF), or folders searched recursively for them")
    source.add_argument("--raster", help="a raster to cut patches from, centred on the points of --points")
    p.add_argument("--points", help="point layer of patch centres on --raster (any CRS)")
    p.add_argument("--points-layer", help="layer name inside --points (default: the only one)")
    p.add_argument("--gallery", choices=GALLERIES, default="fibonacci",
                   help="candidate places: fibonacci (equal-area points, --gallery-size of them), geoclip (GeoCLIP's "
                        "100K gallery) or points (--gallery-points); default fibonacci")
    p.add_argument("--gallery-size", type=int,
                   help=f"points of a fibonacci gallery inside the region (default {DEFAULT_GALLERY_SIZE:,})")
    p.add_argument("--gallery-points", help="point layer of candidate places (any CRS) for --gallery points")
    p.add_argument("--gallery-points-layer", help="layer name inside --gallery-points")
    p.add_argument("--geoclip-wheel", help="the geoclip 1.3.0 wheel (default: the one `geoembed models "
                                           "install-default` keeps in ~/.cache/geoembed)")
    p.add_argument("--extent", help="keep the gallery inside xmin,ymin,xmax,ymax in --extent-crs")
    p.add_argument("--extent-crs", default="EPSG:4326", help="CRS of --extent (default EPSG:4326)")
    p.add_argument("--mask", help="keep the gallery inside the polygons of this layer (land, a country, a region)")
    p.add_argument("--mask-layer", help="layer name inside --mask")
    p.add_argument("--top-k", type=int, default=5, help="candidates per image (default 5)")
    p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                   help="move each candidate to the best point of a denser local cap around it (default: on)")
    p.add_argument("--output", required=True, help="point layer (.gpkg, .shp or .geojson)")
    p.add_argument("--probability-raster", help="GeoTIFF of probability per km2, one band per image, over the "
                                                "gallery's region (EPSG:4326)")
    p.add_argument("--pixel-size", type=float, help="pixel size of --probability-raster in degrees (default: the "
                                                    "region's longer side / 720)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=cmd_geolocate, options=OPTIONS)
