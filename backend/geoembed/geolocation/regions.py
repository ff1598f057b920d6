"""Where an image may be: the whole globe, an extent (any CRS) or the polygons of a mask layer; and the Fibonacci
lattice points that fall inside."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..coords import fibonacci_lattice
from ..errors import InputError
from ..grid import parse_crs, parse_numbers
from ..probes.labels import POLYGON_TYPES, Rectangle, box_area, polygon_parts
from ..training.dataset import as_parameter
from ..training.patches import layer_geometries

GOLDEN = (1.0 + math.sqrt(5.0)) / 2.0
CHUNK = 1 << 20  # lattice points tested at a time
MAX_BAND = 200_000_000  # lattice points in the region's latitude band beyond which the region is too small for N

Inside = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Region:
    """A lon/lat ``box`` (lon0, lon1, lat0, lat1; lon1 may pass 180) holding the region, and ``contains(lon, lat)``
    for longitudes in [lon0, lon0 + 360) (None: the whole box). ``parameter`` is the input that defines it."""

    box: tuple[float, float, float, float]
    contains: Optional[Inside]
    description: str
    parameter: str

    @property
    def is_globe(self) -> bool:
        return self.contains is None and self.box == GLOBE.box

    def inside(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Whether each (lon, lat) in degrees lies in the region."""
        lon0, lon1, lat0, lat1 = self.box
        x = lon0 + (np.asarray(lon, np.float64) - lon0) % 360.0
        lat = np.asarray(lat, np.float64)
        keep = (x <= lon1) & (lat >= lat0) & (lat <= lat1)
        if self.contains is not None and keep.any():
            keep[keep] = self.contains(x[keep], lat[keep])
        return keep


GLOBE = Region((-180.0, 180.0, -90.0, 90.0), None, "the whole globe", "GALLERY")


def extent_region(extent: str, crs: str = "EPSG:4326") -> Region:
    """The rectangle ``extent`` ("xmin,ymin,xmax,ymax") in ``crs``, as it lies on the globe."""
    xmin, ymin, xmax, ymax = parse_numbers(extent, 4, "EXTENT")
    if not (xmin < xmax and ymin < ymax):
        raise InputError("EXTENT", f"the extent ({xmin}, {ymin}, {xmax}, {ymax}) has zero area or is inverted; give "
                                   "xmin < xmax and ymin < ymax")
    ref = parse_crs(crs, "EXTENT_CRS")
    if ref.is_geographic and (ymin < -90.0 or ymax > 90.0):
        raise InputError("EXTENT", f"latitudes {ymin}..{ymax} reach beyond the poles; keep them within [-90, 90]")
    rectangle = Rectangle(ref, (xmin, ymin, xmax, ymax))
    box = (xmin, min(xmax, xmin + 360.0), ymin, ymax) if ref.is_geographic else rectangle.lonlat_box()
    return Region(tuple(float(v) for v in box), lambda lon, lat: rectangle.project(lon, lat)[2],
                  f"the extent {xmin:g},{ymin:g},{xmax:g},{ymax:g} ({ref.to_string()})", "EXTENT")


def mask_region(path: str, layer: str | None = None) -> Region:
    """The union of the polygons of a layer (any CRS), e.g. land, a country or a region."""
    geoms, crs = layer_geometries(path, layer, POLYGON_TYPES, "MASK")
    with as_parameter("MASK"):
        parts = polygon_parts(geoms, crs)
    if not parts:
        raise InputError("MASK", f"the polygons of {path} have no area")
    boxes = np.array([p.box for p in parts])
    lon0, lon1 = float(boxes[:, 0].min()), float(boxes[:, 1].max())
    box = (lon0, min(lon1, lon0 + 360.0), float(boxes[:, 2].min()), float(boxes[:, 3].max()))

    def contains(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(lon), bool)
        for part in parts:
            x = part.box[0] + (lon - part.box[0]) % 360.0
            near = ~hit & (x <= part.box[1]) & (lat >= part.box[2]) & (lat <= part.box[3])
            if near.any():
                hit[near] = part.contains(x[near], lat[near])
        return hit
    return Region(box, contains, f"the polygons of {path}" + (f" (layer {layer})" if layer else ""), "MASK")


def _lattice_inside(region: Region, n: int) -> np.ndarray:
    """The points of the ``n``-point Fibonacci lattice inside ``region``, (m, 2) (lon, lat): only the latitude band
    of its box is generated, a chunk at a time."""
    _, _, lat0, lat1 = region.box
    first = max(0, math.floor(n * (1.0 - math.sin(math.radians(lat1))) / 2.0 - 1.0))
    last = min(n, math.ceil(n * (1.0 - math.sin(math.radians(lat0))) / 2.0 + 1.0))
    if last - first > MAX_BAND:
        raise InputError(region.parameter, f"{region.description} is too small for a gallery this dense: it would "
                                           f"take {last - first:,} lattice points to find; lower --gallery-size or "
                                           "give a larger region")
    found = []
    for start in range(first, last, CHUNK):
        lon, lat = fibonacci_lattice(n, start, min(start + CHUNK, last))
        keep = region.inside(lon, lat)
        found.append(np.stack([lon[keep], lat[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2))


def lattice_in(region: Region, size: int) -> np.ndarray:
    """About ``size`` equal-area points inside ``region``: the points of a global Fibonacci lattice that fall inside,
    its density scaled so that ``size`` of them do (within a few percent). (m, 2) (lon, lat); m may be 0."""
    n = max(size, math.ceil(size * 4.0 * math.pi / float(box_area(np.array(region.box)))))
    points = _lattice_inside(region, n)
    if 0 < len(points) < 0.98 * size:  # the box holds more than the region: densify by the share found inside
        points = _lattice_inside(region, math.ceil(n * size / len(points)))
    return points
