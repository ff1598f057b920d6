"""The images to geolocate, as raw (N, C, S, S) pixels at the model's patch size: image files (centre square,
resized, RGB, as photos are for training) or patches of a raster centred on the points of a layer (the raster's
pixels averaged as the model's training patches were). What cannot be read is skipped with a warning."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import InputError
from ..probes.labels import POINT_TYPES, open_raster, point_positions
from ..training.dataset import as_parameter
from ..training.patches import PatchRaster, layer_geometries
from ..training.photos import image_files, square_image

SHOWN = 20  # skipped images named one by one; the rest are counted

Log = Callable[[str], None]


@dataclass
class Images:
    """``names`` (one per image), ``pixels`` (N, C, S, S) raw values, and ``skipped`` {name: why}."""

    names: list[str]
    pixels: np.ndarray
    skipped: dict[str, str]


def _finish(names: list[str], pixels: list[np.ndarray], skipped: dict[str, str], parameter: str, what: str,
            hint: str, log: Log) -> Images:
    for i, (name, why) in enumerate(skipped.items()):
        if i == SHOWN:
            log(f"warning: {len(skipped) - SHOWN} more {what} skipped")
            break
        log(f"warning: skipped {name}: {why}")
    if not names:
        counts = Counter(skipped.values())
        reasons = ", ".join(f"{n} {why}" for why, n in counts.items()) or f"no {what} given"
        raise InputError(parameter, f"none of the {len(skipped)} {what} can be used ({reasons}); {hint}")
    return Images(names, np.stack(pixels), skipped)


def _listed(paths: list[str], log: Log) -> list[tuple[str, Path | None]]:
    """(name, file) of every image given or found in a folder given, in order; file None if the path does not
    exist."""
    found: list[tuple[str, Path | None]] = []
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            files = image_files(path)
            if not files:
                log(f"warning: {path} holds no JPEG, PNG or TIFF images")
            found += [(str(f.relative_to(path.parent)), f) for f in files]
        else:
            found.append((path.name if path.is_file() else text, path if path.is_file() else None))
    return found


def read_image_files(paths: list[str], size: int, channels: int, log: Log) -> Images:
    """Image files, and the images in folders (searched recursively), as (3, size, size) RGB squares; named by file
    name (a folder's images by their path from the folder's parent)."""
    if channels != 3:
        raise InputError("IMAGES", f"the model takes images of {channels} band(s), and image files are read as RGB "
                                   "(3 bands); give a raster with that many bands and a point layer of patch "
                                   "centres instead (--raster, --points)")
    names, pixels, skipped = [], [], {}
    for name, file in _listed(paths, log):
        if file is None:
            skipped[name] = "no such file or folder"
            continue
        try:
            with Image.open(file) as image:
                pixels.append(square_image(image, size))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped[name] = "not a readable image"
            continue
        names.append(name)
    return _finish(names, pixels, skipped, "IMAGES", "images", "give JPEG, PNG or TIFF images, or folders of them",
                   log)


def read_raster_patches(raster: str, points: str, points_layer: str | None, size: int, channels: int,
                        log: Log, downsample: int = 1) -> Images:
    """The size x size patches of ``raster`` (all its bands; each pixel the mean of downsample x downsample raster
    pixels) centred on the points of a layer (any CRS), named "<layer file stem> #<number of the point in the
    layer>". Patches that reach past the raster's edge or touch nodata are skipped."""
    geoms, crs = layer_geometries(points, points_layer, POINT_TYPES, "POINTS")
    with as_parameter("POINTS"):
        lon, lat, owner = point_positions(geoms, crs, np.arange(len(geoms)))
    labels = [f"{Path(points).stem} #{k + 1}" for k in owner.tolist()]
    with as_parameter("RASTER"):
        ds = open_raster(raster)
    with ds:
        with as_parameter("RASTER"):
            source = PatchRaster(ds, {"path": raster}, None, size, downsample)
        if len(source.bands) != channels:
            raise InputError("RASTER", f"{raster} has {len(source.bands)} band(s); the model takes images of "
                                       f"{channels} band(s)")
        row, col, fits = source.locate(lon, lat)
        patches, valid = source.read(row[fits], col[fits])
    skipped = {labels[i]: "patch not wholly on the raster" for i in np.flatnonzero(~fits)}
    kept = np.flatnonzero(fits)
    skipped.update({labels[i]: "patch touches nodata" for i in kept[~valid]})
    names = [labels[i] for i in kept[valid]]
    return _finish(names, list(patches[valid]), skipped, "POINTS", "points",
                   f"give points on {raster}, at least {size * downsample // 2} pixels from its edges", log)
