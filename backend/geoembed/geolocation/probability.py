"""Probability maps: for each image, a band over the gallery's region (EPSG:4326) of probability per km2.

Evaluated at every pixel centre (the location encoder embeds it; nothing is interpolated): the softmax of
cos(image, pixel) / T over the region's pixels, each weighted by its area on the sphere, so that a band sums to 1
when multiplied by pixel areas. Pixels outside the region (an extent, a mask) are nodata. Two passes over the
pixels (the normalisation, then the values) keep memory bounded for any size.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
from pyproj import CRS
from scipy.special import logsumexp

from ..coords import EARTH_RADIUS_KM
from ..embedder import LocationEmbedder
from ..errors import InputError
from ..geotiff import AtomicGeoTIFF
from ..grid import BLOCK, RasterGrid
from ..rasters import DEFAULT_MAX_GB, check_size, provenance
from .regions import Region
from .search import unit_rows

PIXELS_ACROSS = 720  # default pixel size: the region's longer side in this many pixels (0.5 degree for the globe)
WORK_VALUES = 1 << 22  # logits held per window (pixels x images)
UNITS = "probability per km2"


def default_pixel_size(region: Region) -> float:
    lon0, lon1, lat0, lat1 = region.box
    return max(lon1 - lon0, lat1 - lat0) / PIXELS_ACROSS


def _log_areas(grid: RasterGrid, window, rows: int) -> np.ndarray:
    """log(km2) of the pixels of each row of ``window`` (lon/lat pixels on a sphere)."""
    top = grid.ymax - (window.row_off + np.arange(rows)) * grid.pixel_size
    bottom = np.clip(top - grid.pixel_size, -90.0, 90.0)
    band = np.sin(np.radians(np.clip(top, -90.0, 90.0))) - np.sin(np.radians(bottom))
    with np.errstate(divide="ignore"):
        return np.log(EARTH_RADIUS_KM ** 2 * math.radians(grid.pixel_size) * np.maximum(band, 0.0))


def probability_raster(path: Path, names: list[str], images: np.ndarray, embedder: LocationEmbedder, region: Region,
                       pixel_size: float, temperature: float, parameters: dict,
                       progress: Callable[[float, str], None]) -> dict:
    """Write the maps of unit image embeddings ``images`` (Q, D), one band per image named by ``names``."""
    lon0, lon1, lat0, lat1 = region.box
    grid = RasterGrid.create(CRS.from_epsg(4326), (lon0, lat0, lon1, lat1), pixel_size)
    check_size(grid, len(names), "float32", DEFAULT_MAX_GB)
    block = BLOCK
    while block > 16 and block * block * len(names) > WORK_VALUES:
        block //= 2
    windows = list(grid.windows(block))

    def logits(window) -> tuple[np.ndarray, np.ndarray]:
        """(cos / T + log area, (Q, P) for the valid pixels; valid (rows, cols))."""
        lon, lat, valid = grid.lonlat(window)
        valid[valid] = region.inside(lon[valid], lat[valid])
        area = np.broadcast_to(_log_areas(grid, window, window.height)[:, None], valid.shape)[valid]
        embedded = unit_rows(embedder.embed(lon[valid], lat[valid]))
        return (images @ embedded.T).astype(np.float64) / temperature + area[None], valid

    log_z = np.full(len(names), -np.inf)
    for i, window in enumerate(windows):
        progress(0.5 * i / len(windows), "probability maps: normalising")
        values, _ = logits(window)
        if values.shape[1]:
            log_z = np.logaddexp(log_z, logsumexp(values, axis=1))
    if not np.isfinite(log_z).all():
        raise InputError("PIXEL_SIZE", f"no pixel centre of the probability raster lies inside "
                                       f"{region.description}; use a smaller pixel size")
    tags = {**provenance(embedder, "geolocation probability", grid, parameters), "geoembed_units": UNITS,
            "geoembed_images": json.dumps(names)}
    with AtomicGeoTIFF(path, grid, names, "float32", tags) as out:
        for i, window in enumerate(windows):
            progress(0.5 + 0.5 * i / len(windows), "probability maps: writing")
            values, valid = logits(window)
            area = _log_areas(grid, window, window.height)
            data = np.zeros((len(names), *valid.shape), np.float32)
            density = values - log_z[:, None] - np.broadcast_to(area[:, None], valid.shape)[valid][None]
            data[:, valid] = np.exp(density)
            out.write(window, data, valid)
    return {"probability_raster": str(path), "raster_size": [grid.width, grid.height]}
