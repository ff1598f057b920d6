"""Galleries: the candidate places an image is matched against. Equal-area Fibonacci points, GeoCLIP's 100K gallery
or the points of a layer, optionally restricted to a region. Each has a stable content hash."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from ..coords import fibonacci_lattice, wrap_lon
from ..errors import InputError
from ..probes.labels import POINT_TYPES, point_positions
from ..training.dataset import as_parameter
from ..training.patches import layer_geometries
from .regions import GLOBE, Region, lattice_in

GEOCLIP_MEMBER = "geoclip/model/gps_gallery/coordinates_100K.csv"
GEOCLIP_SHA256 = "3a00b1ba58f13443db726533b6399b39609e292df09d4e58792fa5949d1838b1"
GEOCLIP_HEADER = "LAT,LON"  # the file's column order: latitude first
WHEEL_DIR = Path.home() / ".cache" / "geoembed"  # where `geoembed models install-default` keeps the wheel


class Gallery:
    """``lonlat`` (N, 2) float64 (lon, lat) in degrees, inside ``region``; ``sha256`` hashes exactly those values."""

    def __init__(self, lonlat: np.ndarray, description: str, region: Region = GLOBE):
        lonlat = np.ascontiguousarray(lonlat, np.float64).reshape(-1, 2)
        if not len(lonlat):
            raise InputError(region.parameter, f"no gallery point lies inside {region.description}; give a larger "
                                               "region, or a gallery that covers it")
        if not (np.isfinite(lonlat).all() and (np.abs(lonlat[:, 1]) <= 90.0).all()):
            raise InputError("GALLERY", f"{description}: some points are not (lon, lat) positions on the globe")
        self.lonlat, self.description, self.region = lonlat, description, region
        digest = hashlib.sha256(b"geoembed gallery: float64 (lon, lat), little-endian\n")
        digest.update(lonlat.astype("<f8").tobytes())
        self.sha256 = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.lonlat)


def _restricted(lonlat: np.ndarray, description: str, region: Region) -> Gallery:
    if region.is_globe:
        return Gallery(lonlat, description, region)
    keep = region.inside(lonlat[:, 0], lonlat[:, 1])
    return Gallery(lonlat[keep], f"{description}, {int(keep.sum()):,} of them inside {region.description}", region)


def fibonacci_gallery(size: int, region: Region = GLOBE) -> Gallery:
    """About ``size`` equal-area points (a Fibonacci lattice) inside ``region``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InputError("GALLERY_SIZE", f"the gallery size must be a whole number of points, at least 1, got "
                                         f"{size!r}")
    if region.is_globe:
        return Gallery(np.stack(fibonacci_lattice(int(size)), axis=1), f"Fibonacci lattice, {size:,} points, "
                                                                       "whole globe")
    lonlat = lattice_in(region, int(size))
    return Gallery(lonlat, f"Fibonacci lattice, {len(lonlat):,} equal-area points inside {region.description}",
                   region)


def find_wheel(wheel: str | None) -> Path:
    """``wheel``, else the geoclip 1.3.0 wheel that `geoembed models install-default` keeps in WHEEL_DIR."""
    if wheel:
        path = Path(wheel).expanduser()
        if not path.is_file():
            raise InputError("GEOCLIP_WHEEL", f"{path} does not exist")
        return path
    found = sorted(WHEEL_DIR.glob("geoclip-1.3.0-*.whl"))
    if not found:
        raise InputError("GEOCLIP_WHEEL", f"GeoCLIP's gallery is read from the geoclip 1.3.0 wheel, and {WHEEL_DIR} "
                                          "holds none: give its path (--geoclip-wheel), or run `geoembed models "
                                          "install-default`, which downloads it there")
    return found[0]


def geoclip_gallery(wheel: Path, region: Region = GLOBE) -> Gallery:
    """GeoCLIP's 100K gallery (``coordinates_100K.csv``, columns LAT,LON) from the geoclip 1.3.0 wheel that the
    default model comes from, sha256-verified; the package is never imported."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(GEOCLIP_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise InputError("GEOCLIP_WHEEL", f"{wheel} is not a geoclip 1.3.0 wheel with {GEOCLIP_MEMBER}: {err}"
                         ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != GEOCLIP_SHA256:
        raise InputError("GEOCLIP_WHEEL", f"{GEOCLIP_MEMBER} in {wheel} has sha256 {digest}, expected "
                                          f"{GEOCLIP_SHA256}; refusing to use it")
    text = data.decode("ascii")
    if text.splitlines()[0].strip() != GEOCLIP_HEADER:
        raise InputError("GEOCLIP_WHEEL", f"{GEOCLIP_MEMBER} does not start with the header {GEOCLIP_HEADER}")
    lat, lon = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.float64, unpack=True)
    lonlat = np.stack([wrap_lon(lon), lat], axis=1)
    return _restricted(lonlat, f"GeoCLIP 100K gallery ({GEOCLIP_MEMBER} of {wheel.name})", region)


def points_gallery(path: str, layer: str | None = None, region: Region = GLOBE) -> Gallery:
    """The points of a layer (any CRS; a multipoint gives each of its points)."""
    geoms, crs = layer_geometries(path, layer, POINT_TYPES, "GALLERY_POINTS")
    with as_parameter("GALLERY_POINTS"):
        lon, lat, _ = point_positions(geoms, crs, np.arange(len(geoms)))
    name = f"{path}" + (f" (layer {layer})" if layer else "")
    return _restricted(np.stack([lon, lat], axis=1), f"the {len(lon):,} points of {name}", region)
