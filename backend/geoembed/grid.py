"""The output pixel grid: an extent, a CRS and a pixel size, and where each pixel centre is on the globe."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from rasterio.transform import Affine
from rasterio.windows import Window

from .coords import wrap_lon
from .errors import InputError

BLOCK = 256


def parse_crs(text: str, parameter: str) -> CRS:
    try:
        crs = CRS.from_user_input(text)
    except (CRSError, TypeError) as err:
        raise InputError(parameter, f"unknown CRS {text!r} ({err}). Give an authority code such as EPSG:4326, "
                                    "or WKT / PROJ text.") from err
    if not (crs.is_geographic or crs.is_projected):
        raise InputError(parameter, f"{crs.name} is neither geographic nor projected; pick a 2-D map CRS")
    return crs


def parse_numbers(text: str, count: int, parameter: str) -> list[float]:
    parts = [p for p in str(text).replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise InputError(parameter, f"expected {count} comma-separated numbers, got {text!r}")
    return values


def to_lonlat(crs: CRS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lon, lat, valid) of points in ``crs`` (float64). Invalid: off the projection's domain or the globe."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    to_geo, back = _transformers(crs)
    with np.errstate(invalid="ignore"):
        lon, lat = to_geo.transform(x, y, errcheck=False)
        lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
        valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0)
        if crs.is_geographic:
            # Geographic input: latitude beyond the poles is off the globe; longitude simply wraps.
            valid &= np.abs(y) <= 90.0
        else:
            # Projected input: keep only points that map back to themselves (inverse projections
            # return plausible numbers outside their domain, e.g. beyond a LAEA antipode).
            bx, by = back.transform(lon, lat, errcheck=False)
            scale = max(1.0, float(np.nanmax(np.abs(np.concatenate([x.ravel(), y.ravel()])), initial=1.0)))
            valid &= (np.abs(np.asarray(bx) - x) <= 1e-6 * scale) & (np.abs(np.asarray(by) - y) <= 1e-6 * scale)
        lon = np.where(valid, wrap_lon(lon), np.nan)
        lat = np.where(valid, lat, np.nan)
    return lon, lat, valid


@lru_cache(maxsize=8)
def _transformers(crs: CRS) -> tuple[Transformer, Transformer]:
    """CRS -> WGS84 and back, both in (x, y) = (lon, lat) axis order."""
    wgs84 = CRS.from_epsg(4326)
    return (Transformer.from_crs(crs, wgs84, always_xy=True), Transformer.from_crs(wgs84, crs, always_xy=True))


@dataclass(frozen=True)
class RasterGrid:
    """A north-up grid anchored at (xmin, ymax); pixels are square, ``pixel_size`` in CRS units."""

    crs: CRS
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    pixel_size: float

    @classmethod
    def create(cls, crs: CRS, extent: tuple[float, float, float, float], pixel_size: float) -> RasterGrid:
        xmin, ymin, xmax, ymax = extent
        if not all(math.isfinite(v) for v in extent):
            raise InputError("EXTENT", "the extent has non-finite coordinates")
        if xmax <= xmin or ymax <= ymin:
            raise InputError("EXTENT", f"the extent ({xmin}, {ymin}, {xmax}, {ymax}) has zero area or is inverted; "
                                       "give xmin < xmax and ymin < ymax")
        if not (math.isfinite(pixel_size) and pixel_size > 0):
            raise InputError("PIXEL_SIZE", f"pixel size must be a positive number of CRS units, got {pixel_size}")
        if crs.is_geographic and (ymin < -90.0 - pixel_size or ymax > 90.0 + pixel_size):
            raise InputError("EXTENT", f"latitudes {ymin}..{ymax} reach beyond the poles; keep them within [-90, 90]")
        return cls(crs, float(xmin), float(ymin), float(xmax), float(ymax), float(pixel_size))

    @property
    def width(self) -> int:
        return max(1, math.ceil((self.xmax - self.xmin) / self.pixel_size - 1e-9))

    @property
    def height(self) -> int:
        return max(1, math.ceil((self.ymax - self.ymin) / self.pixel_size - 1e-9))

    @property
    def transform(self) -> Affine:
        return Affine(self.pixel_size, 0.0, self.xmin, 0.0, -self.pixel_size, self.ymax)

    def windows(self, block: int = BLOCK) -> Iterator[Window]:
        for row in range(0, self.height, block):
            for col in range(0, self.width, block):
                yield Window(col, row, min(block, self.width - col), min(block, self.height - row))

    def centres(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) in the grid CRS of the centres of the pixels at (row, col) indices (arrays of one shape), float64."""
        rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
        return self.xmin + (cols + 0.5) * self.pixel_size, self.ymax - (rows + 0.5) * self.pixel_size

    def pixel_centres(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the pixel centres of ``window`` in the grid CRS, float64, shape (rows, cols)."""
        return self.centres(*np.meshgrid(window.row_off + np.arange(window.height),
                                         window.col_off + np.arange(window.width), indexing="ij"))

    def sample_centres(self, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the centres of up to ``samples`` x ``samples`` pixels spread evenly over the grid, flat."""
        rows = np.unique(np.linspace(0, self.height - 1, samples).round())
        cols = np.unique(np.linspace(0, self.width - 1, samples).round())
        return self.centres(*(a.ravel() for a in np.meshgrid(rows, cols, indexing="ij")))

    def lonlat(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lon, lat, valid) of the pixel centres of ``window``."""
        return to_lonlat(self.crs, *self.pixel_centres(window))
