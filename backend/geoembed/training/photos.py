"""Geo-tagged photos: a folder of images with EXIF GPS positions, or a CSV / vector layer of image paths and
coordinates. Each image becomes a size x size RGB square (centre crop, then resize)."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Optional

import numpy as np
from osgeo import ogr
from PIL import Image, ImageOps

from ..errors import InputError
from ..probes.labels import ProgressFn, layer_crs, open_vector, pick_layer, point_positions
from .dataset import ImageSet, as_parameter, band_statistics, normalised

SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
GPS_IFD = 0x8825
PATH_NAMES = ("path", "file", "filename", "image", "photo")
LON_NAMES = ("lon", "longitude", "lng", "long", "x")
LAT_NAMES = ("lat", "latitude", "y")
HOW_TO = ("give a folder of JPEG / PNG / TIFF images with EXIF GPS positions, or a CSV or point layer with an image "
          "path and coordinates")

Entry = tuple[Path, Optional[tuple[float, float]]]  # an image file and its (lon, lat), None: read its EXIF


def _exif_lonlat(exif: Image.Exif) -> tuple[float, float] | None:
    """(lon, lat) from the EXIF GPS tags, None if they are missing or invalid."""
    gps = exif.get_ifd(GPS_IFD)
    try:
        lat, lon = (sum(float(v) / 60.0 ** i for i, v in enumerate(gps[tag])) for tag in (2, 4))
        south, west = (_text(gps.get(tag, "")) for tag in (1, 3))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    lon, lat = -lon if west == "W" else lon, -lat if south == "S" else lat
    if not (math.isfinite(lon) and math.isfinite(lat) and abs(lat) <= 90.0 and abs(lon) <= 180.0):
        return None
    return lon, lat


def _text(value) -> str:
    return (value.decode("ascii", "ignore") if isinstance(value, bytes) else str(value)).strip("\0 ").upper()


def square_image(image: Image.Image, size: int) -> np.ndarray:
    """The centre square of ``image``, upright and resized to size x size RGB: (3, size, size) uint8."""
    image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that is still at least size x size
    image = ImageOps.exif_transpose(image).convert("RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC, box=box)).transpose(2, 0, 1)


def _pick_field(fields: list[str], given: str | None, names: tuple[str, ...], what: str, option: str,
                where: str) -> str:
    """``given`` if it is one of ``fields``, else the first field (any case) named like ``names``."""
    if given is not None:
        if given not in fields:
            raise InputError("PHOTOS", f"{where} has no field {given!r}; its fields are: {', '.join(fields)}")
        return given
    lower = {f.lower(): f for f in fields}
    found = next((lower[n] for n in names if n in lower), None)
    if found is None:
        raise InputError("PHOTOS", f"{where} has no {what} field (looked for {', '.join(names)}; its fields are: "
                                   f"{', '.join(fields)}); name it with {option}")
    return found


def _coordinate(text: tuple[str, str], row: int, where: str) -> tuple[float, float] | None:
    """(lon, lat) from a row's two texts; None if either is empty; InputError if they are not a place."""
    if not text[0].strip() or not text[1].strip():
        return None
    try:
        lon, lat = float(text[0]), float(text[1])
    except ValueError:
        lon = lat = math.nan
    if not (math.isfinite(lon) and math.isfinite(lat) and -180.0 <= lon <= 360.0 and abs(lat) <= 90.0):
        raise InputError("PHOTOS", f"{where}, row {row}: ({text[0]}, {text[1]}) is not a longitude and latitude in "
                                   "degrees (lon in [-180, 360], lat in [-90, 90]); fix the row or name the right "
                                   "fields with lon_field / lat_field")
    return lon - 360.0 if lon >= 180.0 else lon, lat


def image_files(folder: Path) -> list[Path]:
    """The JPEG, PNG and TIFF files in ``folder`` and its subfolders, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def _folder_entries(folder: Path) -> list[Entry]:
    files = image_files(folder)
    if not files:
        raise InputError("PHOTOS", f"{folder} holds no JPEG, PNG or TIFF images; {HOW_TO}")
    return [(f, None) for f in files]


def _csv_entries(table: Path, path_field, lon_field, lat_field) -> Iterator[Entry | None]:
    """One entry per row; None for a row without coordinates."""
    with open(table, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        fields = list(reader.fieldnames or [])
        image, lon, lat = (_pick_field(fields, given, names, what, option, str(table)) for given, names, what, option
                           in ((path_field, PATH_NAMES, "image path", "path_field"),
                               (lon_field, LON_NAMES, "longitude", "lon_field"),
                               (lat_field, LAT_NAMES, "latitude", "lat_field")))
        for row, record in enumerate(reader, start=2):
            place = _coordinate((record[lon] or "", record[lat] or ""), row, str(table))
            yield None if place is None else (table.parent / (record[image] or ""), place)


def _layer_entries(path: Path, layer, path_field, lon_field, lat_field) -> list[Entry | None]:
    """One entry per feature, placed by its lon / lat fields if named, else by its point geometry."""
    with as_parameter("PHOTOS"):
        ds = open_vector(str(path))
        lyr = pick_layer(ds, layer)
        crs = layer_crs(lyr)
    defn = lyr.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    where = f"layer {lyr.GetName()!r} of {path}"
    image_field = _pick_field(fields, path_field, PATH_NAMES, "image path", "path_field", where)
    by_fields = lon_field is not None or lat_field is not None
    if by_fields:
        lon_field = _pick_field(fields, lon_field, LON_NAMES, "longitude", "lon_field", where)
        lat_field = _pick_field(fields, lat_field, LAT_NAMES, "latitude", "lat_field", where)
    entries: list[Entry | None] = []
    geoms, slots = [], []  # point geometries, and the entries they place
    for row, feature in enumerate(lyr, start=1):
        file = path.parent / feature.GetFieldAsString(image_field)
        geom = feature.GetGeometryRef()
        if by_fields:
            place = _coordinate((feature.GetFieldAsString(lon_field), feature.GetFieldAsString(lat_field)), row, where)
            entries.append(None if place is None else (file, place))
        elif geom is None or geom.IsEmpty():
            entries.append(None)
        elif ogr.GT_Flatten(geom.GetGeometryType()) != ogr.wkbPoint:
            raise InputError("PHOTOS", f"{where} holds {geom.GetGeometryName().lower()}s; give single points, or "
                                       "name the coordinate fields with lon_field / lat_field")
        else:
            geoms.append(geom.Clone())
            slots.append(len(entries))
            entries.append((file, None))
    if geoms:
        with as_parameter("PHOTOS"):
            lon, lat, _ = point_positions(geoms, crs, np.zeros(len(geoms)))
        for k, place in zip(slots, zip(lon.tolist(), lat.tolist())):
            entries[k] = (entries[k][0], place)
    return entries


def _entries(source: Path, layer, path_field, lon_field, lat_field) -> tuple[str, list[Entry | None]]:
    """(what the source is, one entry per image)."""
    if not source.exists():
        raise InputError("PHOTOS", f"{source} does not exist; {HOW_TO}")
    if source.is_dir():
        return "folder (EXIF GPS)", _folder_entries(source)
    if source.suffix.lower() == ".csv":
        return "CSV", list(_csv_entries(source, path_field, lon_field, lat_field))
    return "vector layer", _layer_entries(source, layer, path_field, lon_field, lat_field)


def load_photos(source: str, *, size: int, seed: int, path_field: str | None = None, lon_field: str | None = None,
                lat_field: str | None = None, layer: str | None = None, normalisation: Mapping | None = None,
                progress: ProgressFn | None = None) -> ImageSet:
    """Photos as ``size`` x ``size`` RGB images with their places, from a folder (EXIF GPS, searched recursively)
    or a CSV / vector layer with an image path field (relative to the table's folder) and lon / lat fields or
    point geometries. Images without coordinates, missing or unreadable are skipped and counted."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise InputError("PATCH_SIZE", f"the image size must be a whole number of pixels, at least 1, got {size!r}")
    kind, entries = _entries(Path(source), layer, path_field, lon_field, lat_field)
    images, places = [], []
    skipped = {"no coordinates": 0, "missing": 0, "unreadable": 0}
    for i, entry in enumerate(entries):
        if progress and i % 50 == 0:
            progress(0.95 * i / len(entries), f"reading photo {i + 1} of {len(entries)}")
        reason = _read(entry, int(size), images, places)
        if reason:
            skipped[reason] += 1
    used = len(images)
    if not used:
        raise InputError("PHOTOS", f"none of the images in {source} can be used ({_counts(skipped)}); {HOW_TO}")
    raw = [np.stack(images)]
    mean, std, how = band_statistics(raw, normalisation, np.random.default_rng(seed), "NORMALISATION")
    description = {"kind": "photos", "source": str(source), "format": kind, "size": int(size),
                   "resize": "centre square, bicubic", "images": used, "skipped": skipped, "seed": seed,
                   "normalisation": how}
    if progress:
        progress(1.0, f"{used} photos; skipped: {_counts(skipped)}")
    return ImageSet(normalised(raw, mean, std), np.array(places, np.float64), mean, std, description)


def _read(entry: Entry | None, size: int, images: list, places: list) -> str | None:
    """Append the entry's image and place; or say why it is skipped."""
    if entry is None:
        return "no coordinates"
    file, place = entry
    if not file.is_file():
        return "missing"
    try:
        with Image.open(file) as image:
            place = place or _exif_lonlat(image.getexif())
            if place is None:
                return "no coordinates"
            images.append(square_image(image, size))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "unreadable"
    places.append(place)
    return None


def _counts(skipped: dict) -> str:
    return ", ".join(f"{n} {why}" for why, n in skipped.items() if n) or "none"
