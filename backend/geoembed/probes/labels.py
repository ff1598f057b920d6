"""Labelled points for probes: read from a point or polygon layer, or sampled from a raster.

Every position is (lon, lat) in degrees, float64, WGS84. Polygons and rasters are sampled uniformly on the
sphere: uniform in longitude and in sin(latitude) inside a box, then kept by rejection, so the points are
uniform over the covered area whatever the CRS of the data.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
import rasterio
from osgeo import ogr, osr
from pyproj import CRS, Transformer
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from ..coords import wrap_lon
from ..errors import InputError
from ..grid import parse_crs, to_lonlat

ogr.UseExceptions()
osr.UseExceptions()

ProgressFn = Callable[[float, str], None]
Band = Union[int, str]
TASKS = ("auto", "classification", "regression")
MAX_AUTO_CLASSES = 50  # "auto": integer labels with at most this many distinct values are classes
WGS84 = CRS.from_epsg(4326)
POINT_TYPES = (ogr.wkbPoint, ogr.wkbMultiPoint)
POLYGON_TYPES = (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface)
MIN_DRAWS = 20_000  # candidates drawn before concluding that an area holds (almost) no data
MAX_DRAWS = 20_000_000


@dataclass
class LabelledPoints:
    """Positions with one label each: class names (str) for classification, float64 for regression."""

    lon: np.ndarray
    lat: np.ndarray
    values: np.ndarray
    task: str
    name: str
    source: dict

    def subset(self, index) -> LabelledPoints:
        return LabelledPoints(self.lon[index], self.lat[index], self.values[index], self.task, self.name,
                              dict(self.source))

    def __len__(self) -> int:
        return len(self.lon)


def infer_task(values: np.ndarray, task: str) -> str:
    """Resolve ``task``: "auto" is classification for text, and for integers with at most 50 distinct values."""
    if task not in TASKS:
        raise InputError("TASK", f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    values = np.asarray(values)
    numeric = values.dtype.kind in "iufb"
    if task == "regression" and not numeric:
        try:
            values.astype(np.float64)
        except ValueError:
            raise InputError("TASK", "regression needs numeric labels, but these are text (e.g. "
                                     f"{values[0]!r}); use classification") from None
    if task != "auto":
        return task
    if not numeric:
        return "classification"
    if values.dtype.kind in "iub" and len(np.unique(values)) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _class_names(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    return values.astype(str)


def _finish(lon, lat, raw: np.ndarray, task: str, name: str, source: dict, parameter: str) -> LabelledPoints:
    task = infer_task(raw, task)
    if task == "classification":
        values = _class_names(raw)
        classes = np.unique(values)
        if len(classes) < 2:
            raise InputError(parameter, f"all {len(values)} labels are the same class ({classes[0]!r}); a classifier "
                                        "needs at least two classes. Pick another field, band or area.")
    else:
        values = raw.astype(np.float64)
    return LabelledPoints(np.asarray(lon, np.float64), np.asarray(lat, np.float64), values, task, name,
                          {**source, "task": task})


def _check_samples(samples: int) -> None:
    if not (isinstance(samples, (int, np.integer)) and samples >= 1):
        raise InputError("SAMPLES", f"the number of samples must be a whole number of at least 1, got {samples!r}")


def _missing(path: str) -> bool:
    """Whether ``path`` (or the file inside a GDAL connection string such as NETCDF:"f.nc":var) does not exist."""
    quoted = re.match(r'^[A-Za-z0-9_]{2,}:"([^"]+)"', path)
    file = quoted.group(1) if quoted else path
    return not file.startswith("/vsi") and not os.path.exists(file)


def uniform_in_boxes(rng: np.random.Generator, box: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform on the sphere inside rows ``box`` = (lon0, lon1, lat0, lat1), one row per point."""
    s0, s1 = np.sin(np.radians(box[:, 2])), np.sin(np.radians(box[:, 3]))
    lon = box[:, 0] + rng.random(n) * (box[:, 1] - box[:, 0])
    lat = np.degrees(np.arcsin(np.clip(s0 + rng.random(n) * (s1 - s0), -1.0, 1.0)))
    return lon, lat


def box_area(box: np.ndarray) -> np.ndarray:
    """Area of (lon0, lon1, lat0, lat1) boxes on the unit sphere."""
    return np.radians(box[..., 1] - box[..., 0]) * (np.sin(np.radians(box[..., 3])) - np.sin(np.radians(box[..., 2])))


def _continuous(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A closed ring of a projected shape in lon/lat without jumps at the antimeridian (e.g. 170 .. 190); a ring
    that winds around a pole is closed along that pole, so that it still bounds the same area."""
    lon = np.unwrap(lon, period=360.0)
    if abs(lon[-1] - lon[0]) > 180.0:
        pole = 90.0 if lat.mean() > 0 else -90.0
        lon, lat = np.append(lon, [lon[-1], lon[0]]), np.append(lat, [pole, pole])
    return lon, lat


# ---------------------------------------------------------------------------------------------------------- vectors

def open_vector(path: str):
    """The OGR datasource at ``path``, or InputError("INPUT") saying what to give instead."""
    if _missing(path):
        raise InputError("INPUT", f"{path} does not exist")
    try:
        ds = ogr.Open(path)
    except RuntimeError as err:
        ds, reason = None, f" ({err})"
    else:
        reason = ""
    if ds is None:
        raise InputError("INPUT", f"GDAL cannot read {path} as a vector layer{reason}. Give a point or polygon "
                                  "layer (GeoPackage, Shapefile, GeoJSON ...), or sample a raster instead.")
    return ds


def pick_layer(ds, layer: str | None):
    """The named layer, else the only layer with geometries; InputError("LAYER") listing the layers otherwise."""
    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    if layer is not None:
        if layer not in names:
            raise InputError("LAYER", f"no layer {layer!r} in {ds.GetDescription()}; it has: {', '.join(names)}")
        return ds.GetLayerByName(layer)
    spatial = [n for n in names if ds.GetLayerByName(n).GetGeomType() != ogr.wkbNone]
    if len(spatial) != 1:
        raise InputError("LAYER", f"{ds.GetDescription()} has {len(spatial)} layers with geometries "
                                  f"({', '.join(spatial) or 'none'}); name the one to use")
    return ds.GetLayerByName(spatial[0])


def layer_crs(lyr) -> CRS:
    srs = lyr.GetSpatialRef()
    if srs is not None:
        return CRS.from_wkt(srs.ExportToWkt())
    xmin, xmax, ymin, ymax = lyr.GetExtent()
    if -180.0 <= xmin and xmax <= 360.0 and -90.0 <= ymin and ymax <= 90.0:
        return WGS84
    raise InputError("INPUT", f"layer {lyr.GetName()!r} has no CRS and its coordinates are not longitudes and "
                              "latitudes; assign its CRS first")


def _read_features(lyr, field: str, progress: ProgressFn | None) -> tuple[str, list, np.ndarray, str]:
    """(kind "point"/"polygon", geometries, values, field name) of the features with a geometry and a value."""
    defn = lyr.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    index = defn.GetFieldIndex(field)
    if index < 0:
        raise InputError("FIELD", f"layer {lyr.GetName()!r} has no field {field!r}; its fields are: "
                                  f"{', '.join(fields) or 'none'}")
    kinds, geoms, values = set(), [], []
    total = max(1, lyr.GetFeatureCount())
    lyr.ResetReading()
    for i, feature in enumerate(lyr):
        if progress and i % 1000 == 0:
            progress(0.3 * i / total, f"reading layer {lyr.GetName()}")
        geom = feature.GetGeometryRef()
        if geom is None or geom.IsEmpty() or not feature.IsFieldSetAndNotNull(index):
            continue
        flat = ogr.GT_Flatten(geom.GetGeometryType())
        if flat in POINT_TYPES:
            kinds.add("point")
        elif flat in POLYGON_TYPES:
            kinds.add("polygon")
            geom = geom.GetLinearGeometry() if geom.HasCurveGeometry() else geom
        else:
            raise InputError("INPUT", f"feature {feature.GetFID()} is a {ogr.GeometryTypeToName(flat)}; labels "
                                      "come from points or polygons only")
        geoms.append(geom.Clone())
        values.append(feature.GetField(index))
    if len(kinds) > 1:
        raise InputError("INPUT", f"layer {lyr.GetName()!r} mixes points and polygons; use one geometry type")
    if not values:
        raise InputError("FIELD", f"layer {lyr.GetName()!r} has no feature with both a geometry and a value in "
                                  f"{fields[index]!r}")
    return kinds.pop(), geoms, _as_array(values, defn.GetFieldDefn(index).GetType()), fields[index]


def _as_array(values: list, ftype: int) -> np.ndarray:
    if ftype in (ogr.OFTInteger, ogr.OFTInteger64):
        return np.array(values, dtype=np.int64)
    if ftype == ogr.OFTReal:
        return np.array(values, dtype=np.float64)
    return np.array([str(v) for v in values], dtype=str)


def _to_wgs84(crs: CRS, x: np.ndarray, y: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Unwrapped (lon, lat) of (x, y) in ``crs``; raises if a position falls off the globe."""
    lon, lat = Transformer.from_crs(crs, WGS84, always_xy=True).transform(x, y, errcheck=False)
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat)) and np.all(np.abs(lat) <= 90.0 + 1e-9)):
        raise InputError("INPUT", f"some {what} fall outside the globe once transformed from {crs.name} to WGS84; "
                                  "check the layer's CRS")
    return lon, np.clip(lat, -90.0, 90.0)


def point_positions(geoms: list, crs: CRS, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xy, owner = [], []
    for i, geom in enumerate(geoms):
        parts = [geom.GetGeometryRef(j) for j in range(geom.GetGeometryCount())] or [geom]
        for p in parts:
            xy.append((p.GetX(), p.GetY()))
            owner.append(i)
    x, y = np.array(xy, np.float64).T
    lon, lat = _to_wgs84(crs, x, y, "points")
    return wrap_lon(lon), lat, values[np.array(owner)]


@dataclass
class Part:
    """One polygon of a (multi)polygon in lon/lat: edges (x1, y1, x2, y2) of all its rings, and its box."""

    edges: np.ndarray
    box: np.ndarray
    owner: int

    def contains(self, x: np.ndarray, y: np.ndarray, group: int = 256) -> np.ndarray:
        """Even-odd rule in the plane of (lon, lat), points sorted by latitude and tested in narrow bands."""
        x1, y1, x2, y2 = self.edges.T
        low, high = np.minimum(y1, y2), np.maximum(y1, y2)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(y2 != y1, (x2 - x1) / (y2 - y1), 0.0)
        inside = np.zeros(len(x), bool)
        order = np.argsort(y, kind="stable")
        for start in range(0, len(order), group):
            idx = order[start:start + group]
            near = (high >= y[idx[0]]) & (low <= y[idx[-1]])
            px, py = x[idx, None], y[idx, None]
            straddle = (y1[near] > py) != (y2[near] > py)
            cross = px < x1[near] + (py - y1[near]) * slope[near]
            inside[idx] = np.count_nonzero(straddle & cross, axis=1) % 2 == 1
        return inside


def polygon_parts(geoms: list, crs: CRS) -> list[Part]:
    rings, shape = [], []
    segment = None
    if not crs.is_geographic:  # straight edges in a projected CRS are curves in lon/lat: densify first
        envelopes = np.array([g.GetEnvelope() for g in geoms])
        segment = max(np.ptp(envelopes[:, :2]), np.ptp(envelopes[:, 2:])) / 256.0
    for i, geom in enumerate(geoms):
        if segment:
            geom.Segmentize(segment)
        polygons = [geom] if ogr.GT_Flatten(geom.GetGeometryType()) == ogr.wkbPolygon else \
            [geom.GetGeometryRef(j) for j in range(geom.GetGeometryCount())]
        for polygon in polygons:
            found = [polygon.GetGeometryRef(k).GetPoints() or [] for k in range(polygon.GetGeometryCount())]
            found = [np.array(r, np.float64)[:, :2] for r in found if len(r) >= 3]
            if found:
                rings.extend(found)
                shape.append((i, len(found)))
    xy = np.concatenate(rings)
    lon, lat = _to_wgs84(crs, xy[:, 0], xy[:, 1], "polygon vertices")
    cuts = np.cumsum([len(r) for r in rings])[:-1]
    lon, lat = np.split(lon, cuts), np.split(lat, cuts)
    parts, at = [], 0
    for owner, count in shape:
        part = list(zip(lon[at:at + count], lat[at:at + count]))
        at += count
        if not crs.is_geographic:  # geographic coordinates are taken literally, as GIS software draws them
            part = [_continuous(x, y) for x, y in part]
            centre = part[0][0].mean()  # holes go to the same side of the antimeridian as the exterior
            part = [(x - 360.0 * np.round((x.mean() - centre) / 360.0), y) for x, y in part]
        edges = np.concatenate([np.stack([x, y, np.roll(x, -1), np.roll(y, -1)], axis=1) for x, y in part])
        box = np.array([edges[:, 0].min(), edges[:, 0].max(), edges[:, 1].min(), edges[:, 1].max()])
        if box_area(box) > 0:
            parts.append(Part(edges, box, owner))
    return parts


def sample_parts(parts: list[Part], samples: int, rng: np.random.Generator,
                 progress: ProgressFn | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points uniform on the sphere over the union of ``parts``: pick a part's box in proportion to its area,
    draw uniformly inside it and keep the point if the part holds it (so each part gets a share in proportion
    to its own area). Returns (lon, lat, owner)."""
    if not parts:
        raise InputError("INPUT", "the polygons have no area")
    boxes = np.array([p.box for p in parts])
    weight = box_area(boxes)
    weight /= weight.sum()
    found: list[tuple[np.ndarray, ...]] = []
    count = drawn = 0
    while count < samples:
        rate = (count + 1) / (drawn + 2)
        n = int(min(max(1.2 * (samples - count) / rate, 1000), 2_000_000))
        which = rng.choice(len(parts), size=n, p=weight)
        lon, lat = uniform_in_boxes(rng, boxes[which], n)
        keep = np.zeros(n, bool)
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(parts) + 1))
        for k in np.flatnonzero(np.diff(bounds)):
            idx = order[bounds[k]:bounds[k + 1]]
            keep[idx] = parts[k].contains(lon[idx], lat[idx])
        owners = np.array([p.owner for p in parts])[which[keep]]
        found.append((lon[keep], lat[keep], owners))
        count += int(keep.sum())
        drawn += n
        if progress:
            progress(0.3 + 0.7 * min(count, samples) / samples, "sampling points inside the polygons")
        if drawn >= MAX_DRAWS and count < samples:
            raise InputError("INPUT", f"only {count} of {drawn} random points fell inside the polygons; they cover "
                                      "almost no area")
    lon, lat, owner = (np.concatenate(a)[:samples] for a in zip(*found))
    return wrap_lon(lon), lat, owner


def read_vector_labels(path: str, field: str, *, layer: str | None = None, task: str = "auto", samples: int = 1000,
                       seed: int = 0, progress: ProgressFn | None = None) -> LabelledPoints:
    """Labels from ``field`` of a point layer (one per point; ``samples`` is ignored) or a polygon layer
    (``samples`` points uniform on the sphere inside the polygons, labelled with their polygon's value)."""
    _check_samples(samples)
    path = str(path)
    ds = open_vector(path)
    lyr = pick_layer(ds, layer)
    crs = layer_crs(lyr)
    kind, geoms, values, field_name = _read_features(lyr, field, progress)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise InputError("FIELD", f"field {field_name!r} holds NaN or infinite values; clear them first")
    infer_task(values, task)  # fail before sampling
    source = {"kind": "vector", "path": path, "layer": lyr.GetName(), "field": field_name, "crs": crs.to_string(),
              "seed": seed}
    if kind == "point":
        lon, lat, labels = point_positions(geoms, crs, values)
        source.update(sampling="one sample per point", samples=len(lon))
    else:
        parts = polygon_parts(geoms, crs)
        lon, lat, owner = sample_parts(parts, samples, np.random.default_rng(seed), progress)
        labels = values[owner]
        source.update(sampling="uniform on the sphere inside the polygons", samples=samples)
    if progress:
        progress(1.0, f"{len(lon)} labelled points")
    return _finish(lon, lat, labels, task, field_name, source, "FIELD")


# ---------------------------------------------------------------------------------------------------------- rasters

class Rectangle:
    """An axis-aligned rectangle (xmin, ymin, xmax, ymax) in a CRS, seen from the sphere."""

    def __init__(self, crs: CRS, rect: tuple[float, float, float, float]):
        self.crs, self.rect = crs, rect
        self._to = Transformer.from_crs(WGS84, crs, always_xy=True)
        self._back = Transformer.from_crs(crs, WGS84, always_xy=True)

    def project(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, inside) of (lon, lat) points in the CRS; geographic x wraps into [xmin, xmin + 360)."""
        xmin, ymin, xmax, ymax = self.rect
        with np.errstate(invalid="ignore"):
            x, y = (np.asarray(a, np.float64) for a in self._to.transform(lon, lat, errcheck=False))
            if self.crs.is_geographic:
                x = xmin + (x - xmin) % 360.0
                ok = np.isfinite(x) & np.isfinite(y)
            else:  # forward projections return plausible numbers off their domain: keep round trips only
                blon, blat = self._back.transform(x, y, errcheck=False)
                ok = (np.abs(wrap_lon(np.asarray(blon) - lon)) < 1e-6) | (np.abs(lat) > 89.9999)
                ok &= np.abs(np.asarray(blat) - lat) < 1e-6
            return x, y, ok & (x >= xmin) & (x < xmax) & (y >= ymin) & (y < ymax)

    def lonlat_box(self) -> np.ndarray:
        """(lon0, lon1, lat0, lat1): a box on the sphere that holds the whole rectangle."""
        xmin, ymin, xmax, ymax = self.rect
        if self.crs.is_geographic:
            box = [xmin, min(xmax, xmin + 360.0), ymin, ymax]
            pad = 0.01  # datum shifts between this CRS and WGS84
        else:
            t = np.linspace(0.0, 1.0, 201)
            x = np.concatenate([xmin + t * (xmax - xmin), np.full_like(t, xmax), xmax - t * (xmax - xmin),
                                np.full_like(t, xmin)])
            y = np.concatenate([np.full_like(t, ymin), ymin + t * (ymax - ymin), np.full_like(t, ymax),
                                ymax - t * (ymax - ymin)])
            lon, lat, valid = to_lonlat(self.crs, x, y)
            if not valid.all():  # the rectangle reaches off the projection's domain
                return np.array([-180.0, 180.0, -90.0, 90.0])
            lon = np.unwrap(lon, period=360.0)
            box = [lon.min(), lon.max(), lat.min(), lat.max()]
            if abs(lon[-1] - lon[0]) > 180.0:  # the rectangle holds a pole, found below
                box[:2] = [-180.0, 180.0]
            pad = 0.01 + 0.01 * max(box[1] - box[0], box[3] - box[2])
        for pole in (90.0, -90.0):
            if self.project(np.array([0.0]), np.array([pole]))[2][0]:
                box = [-180.0, 180.0, min(box[2], pole), max(box[3], pole)]
        lon0, lon1 = box[0] - pad, box[1] + pad
        if lon1 - lon0 >= 360.0:
            lon0, lon1 = box[0], box[0] + 360.0
        return np.array([lon0, lon1, max(box[2] - pad, -90.0), min(box[3] + pad, 90.0)])


def open_raster(path: str):
    try:
        with warnings.catch_warnings():  # said below, in words that name the input
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as err:
        if _missing(path):
            raise InputError("INPUT", f"{path} does not exist") from None
        raise InputError("INPUT", f"GDAL cannot read {path} as a raster ({err}). Give a raster (GeoTIFF, "
                                  'NetCDF variable as NETCDF:"file.nc":name ...); read a vector layer instead.'
                         ) from None
    if ds.count == 0:
        names = [s.split(":")[-1] for s in ds.subdatasets]
        ds.close()
        if names:
            raise InputError("INPUT", f"{path} holds several variables ({', '.join(names)}); pick one, e.g. "
                                      f'NETCDF:"{path}":{names[0]}')
        raise InputError("INPUT", f"{path} has no raster bands")
    return ds


def raster_crs(ds, path: str) -> tuple[CRS, str]:
    if ds.crs is None and ds.transform.is_identity:
        raise InputError("INPUT", f"{path} is not georeferenced; give it a CRS and a geotransform first")
    if ds.crs is not None:
        crs = CRS.from_wkt(ds.crs.to_wkt())
        return crs, crs.to_string()
    left, bottom, right, top = ds.bounds
    if -181.0 <= left and right <= 361.0 and -91.0 <= min(bottom, top) and max(bottom, top) <= 91.0:
        return WGS84, "EPSG:4326 (assumed: the raster has no CRS, and its coordinates are longitudes and latitudes)"
    raise InputError("INPUT", f"{path} has no CRS and its coordinates are not longitudes and latitudes; assign "
                              "its CRS first")


def _bands(ds, band: Band, path: str) -> tuple[list[int], str]:
    """(1-based band numbers to read, a name for the labels)."""
    text = band.strip().lower() if isinstance(band, str) else None
    if text in ("mean", "sum"):
        return list(range(1, ds.count + 1)), f"{text} of {ds.count} bands"
    if text is not None and text.isdigit():
        band = int(text)
    if not isinstance(band, (int, np.integer)) or isinstance(band, bool):
        raise InputError("BAND", f"band {band!r}: give a 1-based band number, or mean / sum of all bands")
    if not 1 <= band <= ds.count:
        raise InputError("BAND", f"band {band} does not exist: {path} has {ds.count} band(s), numbered 1 to "
                                 f"{ds.count}")
    return [int(band)], f"band {band}"


def _pixel_values(ds, bands: list[int], rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, bands) float64, valid (n,)) at pixels (rows, cols): nodata, masked and NaN are invalid.
    Reads one small window per group of nearby points (within a block, at most 512 x 512 pixels)."""
    bh, bw = ds.block_shapes[bands[0] - 1]
    ch, cw = min(bh, 512), min(bw, 512)
    key = (rows // ch) * (ds.width // cw + 1) + cols // cw
    order = np.argsort(key, kind="stable")
    # GDAL masks other than nodata (alpha, mask bands) need a masked read, four times slower
    masked = any(set(ds.mask_flag_enums[b - 1]) - {MaskFlags.nodata, MaskFlags.all_valid} for b in bands)
    nodata = [ds.nodatavals[b - 1] for b in bands]
    values = np.empty((len(rows), len(bands)), np.float64)
    valid = np.empty(len(rows), bool)
    for idx in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
        if not len(idx):
            continue
        r0, c0 = rows[idx].min(), cols[idx].min()
        window = Window(int(c0), int(r0), int(cols[idx].max() - c0 + 1), int(rows[idx].max() - r0 + 1))
        picked = ds.read(bands, window=window, masked=masked)[:, rows[idx] - r0, cols[idx] - c0]
        raw, bad = np.ma.getdata(picked), np.ma.getmaskarray(picked).copy()
        for i, value in enumerate(nodata):
            if value is not None:
                bad[i] |= raw[i] == np.array(value).astype(raw.dtype)
        data = np.asarray(raw, np.float64).T
        values[idx] = data
        valid[idx] = ~bad.any(axis=0) & np.isfinite(data).all(axis=1)
    return values, valid


def sample_raster_labels(path: str, *, band: Band = 1, samples: int = 1000,
                         extent: tuple[float, float, float, float] | None = None, extent_crs: str | None = None,
                         task: str = "auto", seed: int = 0, progress: ProgressFn | None = None) -> LabelledPoints:
    """``samples`` points uniform on the sphere inside ``extent`` (in ``extent_crs``, default EPSG:4326; default
    extent: the raster's footprint), labelled with the nearest pixel of ``band`` (1-based), or the mean or sum
    of all bands. Pixels that are nodata, masked or NaN (in any band) are skipped and more points are drawn."""
    _check_samples(samples)
    path = str(path)
    with open_raster(path) as ds:
        bands, name = _bands(ds, band, path)
        crs, crs_text = raster_crs(ds, path)
        left, bottom, right, top = ds.bounds
        raster = Rectangle(crs, (left, min(bottom, top), right, max(bottom, top)))
        area = raster
        if extent is not None:
            rect = tuple(float(v) for v in extent)
            if len(rect) != 4 or not all(math.isfinite(v) for v in rect) or rect[0] >= rect[2] or rect[1] >= rect[3]:
                raise InputError("EXTENT", f"the extent {extent!r} must be four finite numbers xmin, ymin, xmax, ymax "
                                           "with xmin < xmax and ymin < ymax")
            area = Rectangle(parse_crs(extent_crs or "EPSG:4326", "EXTENT_CRS"), rect)
        box = area.lonlat_box()[None, :]
        inverse = ~ds.transform
        rng = np.random.default_rng(seed)
        found: list[tuple[np.ndarray, ...]] = []
        count = drawn = inside = 0
        while count < samples:
            rate = (count + 1) / (drawn + 2)
            n = int(min(max(1.2 * (samples - count) / rate, 1000), 1_000_000))
            lon, lat = uniform_in_boxes(rng, np.repeat(box, n, axis=0), n)
            drawn += n
            keep = area.project(lon, lat)[2] if area is not raster else np.ones(n, bool)
            x, y, hit = raster.project(lon[keep], lat[keep])
            keep[keep] = hit
            col, row = inverse * (x[hit], y[hit])
            col, row = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
            within = (col >= 0) & (col < ds.width) & (row >= 0) & (row < ds.height)
            keep[keep] = within
            inside += int(keep.sum())
            values, valid = _pixel_values(ds, bands, row[within], col[within])
            keep[keep] = valid
            found.append((lon[keep], lat[keep], values[valid]))
            count += int(valid.sum())
            if progress:
                progress(min(count, samples) / samples, "sampling the raster")
            if count < samples:
                _check_yield(drawn, inside, count, extent is not None)
        lon, lat, values = (np.concatenate(a)[:samples] for a in zip(*found))
        reduced = values.mean(axis=1) if name.startswith("mean") else values.sum(axis=1)
        dtype = np.dtype(ds.dtypes[bands[0] - 1])
        if len(bands) == 1 and dtype.kind in "iub":
            reduced = reduced.astype(dtype)
    source = {"kind": "raster", "path": path, "band": bands[0] if name.startswith("band") else name.split()[0],
              "crs": crs_text,
              "extent": list(extent) if extent is not None else None,
              "extent_crs": (extent_crs or "EPSG:4326") if extent is not None else None,
              "sampling": "uniform on the sphere inside the extent, nearest pixel, nodata skipped",
              "samples": samples, "seed": seed, "drawn": drawn}
    return _finish(wrap_lon(lon), lat, reduced, task, name, source, "EXTENT" if extent is not None else "BAND")


def _check_yield(drawn: int, inside: int, valid: int, has_extent: bool) -> None:
    if drawn >= MIN_DRAWS and inside == 0:
        raise InputError("EXTENT", f"none of {drawn} random points inside the extent falls on the raster; give an "
                                   "extent that overlaps it (and check --extent-crs)")
    if inside >= MIN_DRAWS and valid < 0.005 * inside or drawn >= MAX_DRAWS:
        where = "the extent" if has_extent else "the raster"
        raise InputError("EXTENT" if has_extent else "BAND",
                         f"only {valid} of {inside} random points in {where} have data (the rest is nodata); "
                         "pick an area or band with data")
