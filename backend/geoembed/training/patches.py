"""Image patches cut from rasters around random places: uniform on the sphere over the rasters' footprint or
inside mask polygons, or at the points of a layer. Each patch is N x N pixels of the raster's own grid, or of a grid
``downsample`` times coarser whose pixels are the means of ``downsample`` x ``downsample`` raster pixels."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import ExitStack

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from osgeo import ogr
from pyproj import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.transform import Affine, array_bounds, from_bounds
from rasterio.windows import Window

from ..coords import EARTH_RADIUS_KM, wrap_lon
from ..errors import InputError
from ..grid import parse_crs
from ..probes.labels import (
    MAX_DRAWS,
    MIN_DRAWS,
    POINT_TYPES,
    POLYGON_TYPES,
    ProgressFn,
    Rectangle,
    box_area,
    layer_crs,
    open_raster,
    open_vector,
    pick_layer,
    point_positions,
    polygon_parts,
    raster_crs,
    sample_parts,
    uniform_in_boxes,
)
from .dataset import ImageSet, as_parameter, band_statistics, normalised

IN_MEMORY_BYTES = 1.5e9  # rasters up to this size are read whole once, larger ones one window per patch
BLACK_LEVEL = 0.02  # a pixel is black when every band is at most this fraction of the band's range above its low end
GOOD, NODATA, BLACK = 0, 1, 2  # what a patch is
READ_CHUNK = 8192  # candidate places handled at a time
MAX_ROUND = 1_000_000  # candidate places drawn at a time
GEOREFERENCE_HINT = ('give "crs" and "bounds" with the raster (e.g. {"path": ..., "crs": "EPSG:4326", "bounds": '
                     '[-180, -90, 180, 90]} for a whole-world plate carree image), or georeference the file first, '
                     'e.g. gdal_translate -a_srs EPSG:4326 -a_ullr -180 90 180 -90 in.jpg out.tif')

SAMPLING = {"rasters": "uniform on the sphere over the rasters",
            "mask": "uniform on the sphere inside the polygons of {mask}", "points": "the points of {points}"}

Draw = Callable[[int], tuple[np.ndarray, np.ndarray]]


def _georeference(ds, source: Mapping, path: str) -> tuple[CRS, str, Affine]:
    """(CRS, CRS text, transform) of a raster: its own, or assigned by the source's "crs" and "bounds"."""
    bounds, crs_text = source.get("bounds"), source.get("crs")
    if bounds is None and ds.transform.is_identity:
        raise InputError("RASTERS", f"{path} is not georeferenced; {GEOREFERENCE_HINT}")
    if bounds is not None:
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in bounds)
        except (TypeError, ValueError):
            xmin = ymin = xmax = ymax = float("nan")
        if not (xmin < xmax and ymin < ymax):
            raise InputError("RASTERS", f'the "bounds" of {path} must be [xmin, ymin, xmax, ymax] with xmin < xmax '
                                        f"and ymin < ymax, got {bounds!r}")
        transform = from_bounds(xmin, ymin, xmax, ymax, ds.width, ds.height)
    else:
        transform = ds.transform
    if transform.b or transform.d:
        raise InputError("RASTERS", f"{path} is on a rotated grid; warp it to a north-up grid first (gdalwarp)")
    if crs_text is not None:
        crs = parse_crs(crs_text, "RASTERS")
        return crs, crs.to_string(), transform
    if ds.crs is None and bounds is not None:
        raise InputError("RASTERS", f'{path} has no CRS: give "crs" with its "bounds"')
    try:
        crs, text = raster_crs(ds, path)  # a raster without CRS in longitudes and latitudes is taken as EPSG:4326
    except InputError:
        raise InputError("RASTERS", f'{path} has no CRS and its coordinates are not longitudes and latitudes: give '
                                    'its "crs" with the raster (e.g. {"path": ..., "crs": "EPSG:32633"}), or assign '
                                    f"it first, e.g. gdal_edit.py -a_srs EPSG:32633 {path}") from None
    return crs, text, transform


def nominal_pixel_km(crs: CRS, height: float) -> float:
    """The nominal north-south ground size in km of a pixel ``height`` CRS units tall (true on a sphere in degrees;
    at the projection's true scale in a projected CRS). Unlike bandlimited.pixel_km, which measures an output grid's
    pixels on the ground, this needs no transformation: it is read from the CRS's units."""
    to_si = crs.axis_info[0].unit_conversion_factor  # metres, or radians for angles, per CRS unit
    return abs(height) * to_si * (EARTH_RADIUS_KM if crs.is_geographic else 1e-3)


def _plain(values) -> list:
    """Numbers for JSON: None stays None, NaN and infinities become text."""
    return [v if v is None else float(v) if math.isfinite(v) else str(float(v)) for v in values]


class PatchRaster:
    """One source raster: where its patches are, and the patches themselves (from memory or one window each)."""

    def __init__(self, ds, source: Mapping, bands: list[int] | None, size: int, downsample: int = 1):
        path = str(source["path"])
        self.ds, self.downsample = ds, downsample
        self.crs, crs_text, transform = _georeference(ds, source, path)
        self.transform = transform * Affine.scale(downsample)  # the patches' grid: downsample x coarser
        self.bands = list(range(1, ds.count + 1)) if bands is None else [int(b) for b in bands]
        if not all(1 <= b <= ds.count for b in self.bands):
            raise InputError("BANDS", f"bands {bands} do not all exist: {path} has {ds.count} band(s), numbered 1 to "
                                      f"{ds.count}")
        self.size, self.height, self.width = size, ds.height // downsample, ds.width // downsample
        if size > min(self.width, self.height):
            coarser = f" averaged {downsample} x {downsample} into" if downsample > 1 else ""
            raise InputError("PATCH_SIZE", f"patches of {size} x {size} pixels do not fit in {path} ({ds.width} x "
                                           f"{ds.height} pixels{coarser} {self.width} x {self.height}); use a "
                                           "smaller patch size" + (" or downsampling" if downsample > 1 else ""))
        west, south, east, north = array_bounds(self.height, self.width, self.transform)
        self.footprint = Rectangle(self.crs, (west, south, east, north))
        self.dtype = np.dtype(ds.dtypes[self.bands[0] - 1])
        # nodata, alpha and mask bands all show in GDAL's masks; all_valid means nothing to check
        self.masked = any(set(ds.mask_flag_enums[b - 1]) != {MaskFlags.all_valid} for b in self.bands)
        self.black_level = self._black_level()
        pixels_read = len(self.bands) * self.width * self.height
        masks_read = pixels_read * downsample * downsample if self.masked else 0  # full-resolution bytes
        in_memory = pixels_read * self.dtype.itemsize + masks_read < IN_MEMORY_BYTES
        self.description = {"path": path, "crs": crs_text, "bands": self.bands, "dtype": self.dtype.name,
                            "width": ds.width, "height": ds.height, "downsample": downsample,
                            "pixel_km": round(nominal_pixel_km(self.crs, self.transform.e), 4),
                            "bounds": [west, south, east, north],
                            "nodata": _plain([ds.nodatavals[b - 1] for b in self.bands]),
                            "black_level": _plain(self.black_level), "read": "whole" if in_memory else "by windows"}
        self.data = self.valid = None
        if in_memory:
            data, valid = self._read_window(0, 0, self.height, self.width)
            self.data = np.ascontiguousarray(data.transpose(1, 2, 0))  # (H, W, C): patches contiguous
            if valid is not None or self.dtype.kind == "f":
                self.valid = np.isfinite(self.data).all(axis=2)
                if valid is not None:
                    self.valid &= valid.all(axis=0)
            ds.close()

    def _read_window(self, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(bands (C, height, width), valid (C, height, width) or None when nothing is masked) of the patches' grid
        from (row, col): each pixel the mean of downsample x downsample raster pixels, valid only if all of them
        are."""
        k = self.downsample
        window, shape = Window(col * k, row * k, width * k, height * k), (len(self.bands), height, width)
        data = self.ds.read(self.bands, window=window, out_shape=shape, resampling=Resampling.average)
        if not self.masked:
            return data, None
        masks = self.ds.read_masks(self.bands, window=window) > 0  # GDAL's averaged masks let mixed pixels pass
        return data, masks.reshape(len(self.bands), height, k, width, k).all(axis=(2, 4))

    def _black_level(self) -> np.ndarray:
        """Per band, the value at or below which a pixel is black: 2% up the dtype's range for 8-bit integers, else
        2% up from min(0, lowest value) to the 99.9th percentile of a decimated read."""
        if self.dtype.kind in "iu" and self.dtype.itemsize == 1:
            info = np.iinfo(self.dtype)
            low, high = np.full(len(self.bands), float(info.min)), np.full(len(self.bands), float(info.max))
        else:
            scale = max(1, max(self.height, self.width) // 1024)
            shape = (len(self.bands), max(1, self.height // scale), max(1, self.width // scale))
            sample = self.ds.read(self.bands, out_shape=shape, masked=True).astype(np.float64).filled(np.nan)
            sample = sample.reshape(len(self.bands), -1)
            sample[:, ~np.isfinite(sample).all(axis=0)] = np.nan
            if np.isnan(sample).all():
                return np.full(len(self.bands), -np.inf)
            low = np.minimum(0.0, np.nanmin(sample, axis=1))
            high = np.nanpercentile(sample, 99.9, axis=1)
        return low + BLACK_LEVEL * (high - low)

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, fits): top-left pixel of the patch centred on each place, and whether it lies in the raster."""
        x, y, inside = self.footprint.project(lon, lat)
        col, row = ~self.transform * (x, y)
        half = self.size / 2.0 - 0.5
        with np.errstate(invalid="ignore"):
            row0, col0 = np.floor(row - half), np.floor(col - half)
            fits = inside & (row0 >= 0) & (col0 >= 0) & (row0 + self.size <= self.height) & \
                (col0 + self.size <= self.width)
        return np.where(fits, row0, 0).astype(np.int64), np.where(fits, col0, 0).astype(np.int64), fits

    def read(self, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(patches (n, C, S, S) in the raster's dtype, valid (n,)): a patch is invalid if any pixel is nodata,
        masked or not finite in any band."""
        s = self.size
        if self.data is not None:
            patches = sliding_window_view(self.data, (s, s), axis=(0, 1))[row, col]
            if self.valid is None:
                return patches, np.ones(len(row), bool)
            return patches, sliding_window_view(self.valid, (s, s))[row, col].all(axis=(1, 2))
        patches = np.empty((len(row), len(self.bands), s, s), self.dtype)
        valid = np.ones(len(row), bool)
        for i, (r, c) in enumerate(zip(row.tolist(), col.tolist())):
            patches[i], masks = self._read_window(r, c, s, s)
            if masks is not None:
                valid[i] = bool(masks.all())
        if self.dtype.kind == "f":
            valid &= np.isfinite(patches).all(axis=(1, 2, 3))
        return patches, valid

    def is_black(self, patches: np.ndarray, max_fraction: float) -> np.ndarray:
        """Whether more than ``max_fraction`` of each patch's pixels are black in every band."""
        dark = (patches <= self.black_level[None, :, None, None]).all(axis=1)
        return dark.mean(axis=(1, 2)) > max_fraction


def layer_geometries(path: str, layer: str | None, kinds: tuple, parameter: str) -> tuple[list, object]:
    """(geometries, CRS) of every feature of a layer, which must all be of ``kinds``."""
    with as_parameter(parameter):
        ds = open_vector(str(path))
        lyr = pick_layer(ds, layer)
        crs = layer_crs(lyr)
    geoms = []
    for feature in lyr:
        geom = feature.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        flat = ogr.GT_Flatten(geom.GetGeometryType())
        if flat not in kinds:
            what = "points" if kinds == POINT_TYPES else "polygons"
            raise InputError(parameter, f"feature {feature.GetFID()} of {path} is a {ogr.GeometryTypeToName(flat)}; "
                                        f"give a layer of {what}")
        geoms.append((geom.GetLinearGeometry() if geom.HasCurveGeometry() else geom).Clone())
    if not geoms:
        raise InputError(parameter, f"layer {lyr.GetName()!r} of {path} has no geometries")
    return geoms, crs


def _footprint_draw(rasters: list[PatchRaster], rng: np.random.Generator) -> Draw:
    """Places uniform on the sphere over the union of the rasters' lon/lat boxes (where boxes overlap, a place is
    kept with probability 1 / the number of boxes that hold it)."""
    boxes = np.array([r.footprint.lonlat_box() for r in rasters])
    weight = box_area(boxes)
    weight /= weight.sum()

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        which = rng.choice(len(boxes), size=n, p=weight)
        lon, lat = uniform_in_boxes(rng, boxes[which], n)
        cover = np.zeros(n)
        for lon0, lon1, lat0, lat1 in boxes:
            cover += ((lon - lon0) % 360.0 <= lon1 - lon0) & (lat >= lat0) & (lat <= lat1)
        keep = rng.random(n) * cover < 1.0
        return wrap_lon(lon[keep]), lat[keep]
    return draw


def _mask_draw(mask: str, layer: str | None, rng: np.random.Generator) -> Draw:
    """Places uniform on the sphere inside the polygons of a mask layer."""
    parts = polygon_parts(*layer_geometries(mask, layer, POLYGON_TYPES, "MASK"))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        with as_parameter("MASK"):
            return sample_parts(parts, n, rng, None)[:2]
    return draw


def _points_draw(points: str, layer: str | None, rng: np.random.Generator) -> Draw:
    """The points of a layer in random order, each once; then nothing."""
    geoms, crs = layer_geometries(points, layer, POINT_TYPES, "POINTS")
    with as_parameter("POINTS"):
        lon, lat, _ = point_positions(geoms, crs, np.arange(len(geoms)))
    order = rng.permutation(len(lon))
    taken = 0

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        nonlocal taken
        idx = order[taken:taken + n]
        taken += len(idx)
        return lon[idx], lat[idx]
    return draw


def _check_inputs(sources: list, samples: int, patch_size: int, mask, points, max_black_fraction: float,
                  downsample: int) -> None:
    if not isinstance(samples, (int, np.integer)) or isinstance(samples, bool) or samples < 1:
        raise InputError("SAMPLES", f"the number of patches must be a whole number of at least 1, got {samples!r}")
    if not isinstance(patch_size, (int, np.integer)) or isinstance(patch_size, bool) or patch_size < 1:
        raise InputError("PATCH_SIZE", f"the patch size must be a whole number of pixels, at least 1, got "
                                       f"{patch_size!r}")
    if not isinstance(downsample, (int, np.integer)) or isinstance(downsample, bool) or downsample < 1:
        raise InputError("DOWNSAMPLE", f"the downsampling factor must be a whole number, at least 1, got "
                                       f"{downsample!r}")
    if not sources:
        raise InputError("RASTERS", "give at least one raster to cut patches from")
    if mask is not None and points is not None:
        raise InputError("POINTS", "give either a mask layer or a point layer, not both")
    if not 0.0 <= max_black_fraction <= 1.0:
        raise InputError("MAX_BLACK_FRACTION", f"the largest black fraction must lie in [0, 1], got "
                                               f"{max_black_fraction}")


def _check_yield(counts: dict, accepted: int, where: str) -> None:
    """InputError when the places drawn so far show that the rasters (almost) never give a valid patch."""
    on = counts["drawn"] - counts["outside"]
    if counts["drawn"] >= MIN_DRAWS and on == 0:
        remedy = {"mask": "give a mask that overlaps the rasters", "points": "give points on the rasters",
                  "rasters": "use a smaller patch size"}[where]
        raise InputError(where.upper(), f"none of {counts['drawn']} places drawn from the {where} has a whole patch "
                                        f"on the rasters; {remedy}")
    if on >= MIN_DRAWS and accepted < 0.005 * on or counts["drawn"] >= MAX_DRAWS:
        raise InputError("RASTERS", f"only {accepted} of {on} patches in the sampled area are free of nodata and "
                                    f"black pixels ({counts['nodata']} touch nodata, {counts['black']} are black): "
                                    "the rasters have (almost) no valid pixels there. Give rasters with data in the "
                                    "area, another mask, or a larger max_black_fraction.")


def sample_raster_patches(sources: list[dict], *, samples: int, patch_size: int, seed: int, mask: str | None = None,
                          mask_layer: str | None = None, points: str | None = None, points_layer: str | None = None,
                          bands: list[int] | None = None, normalisation: Mapping | None = None,
                          max_black_fraction: float = 0.25, downsample: int = 1,
                          progress: ProgressFn | None = None) -> ImageSet:
    """``samples`` patches of ``patch_size`` x ``patch_size`` pixels centred on places uniform on the sphere over
    the rasters (or inside the polygons of ``mask``), or on the points of ``points`` (each once, at most
    ``samples``). Each source is {"path": ..., optional "crs" and "bounds" [xmin, ymin, xmax, ymax] that assign
    georeferencing}. Patches that reach past a raster's edge, touch nodata, or are more than
    ``max_black_fraction`` black are rejected; where rasters overlap, one of them at random gives the patch.
    ``bands`` (1-based, the same for every raster) default to all. With ``downsample`` k > 1 a patch pixel is the
    mean of k x k raster pixels, so a patch covers k times more ground. ``normalisation`` {"mean", "std"} per band
    defaults to statistics of a sample of the patches. The description records each raster's nominal ``pixel_km``
    and the patches' ground width ``patch_km`` (on the coarsest raster)."""
    _check_inputs(sources, samples, patch_size, mask, points, max_black_fraction, downsample)
    rng = np.random.default_rng(seed)
    with ExitStack() as stack:
        rasters = []
        for source in sources:
            if not isinstance(source, Mapping) or "path" not in source:
                raise InputError("RASTERS", 'each raster is {"path": ..., optional "crs" and "bounds"}, got '
                                            f"{source!r}")
            with as_parameter("RASTERS"):
                ds = stack.enter_context(open_raster(str(source["path"])))
            rasters.append(PatchRaster(ds, source, bands, int(patch_size), int(downsample)))
        if len({len(r.bands) for r in rasters}) > 1:
            raise InputError("RASTERS", "the rasters have different numbers of bands (" + ", ".join(
                f"{r.description['path']}: {len(r.bands)}" for r in rasters) + "); give rasters with the same "
                "bands, or pick the same number of bands from each")
        if points is not None:
            draw, where = _points_draw(points, points_layer, rng), "points"
        elif mask is not None:
            draw, where = _mask_draw(mask, mask_layer, rng), "mask"
        else:
            draw, where = _footprint_draw(rasters, rng), "rasters"
        raw, lonlat, counts = _collect(rasters, draw, samples, max_black_fraction, rng, where, progress)
    if not raw:
        raise InputError("POINTS", f"none of the {counts['drawn']} points has a whole patch of valid pixels on the "
                                   f"rasters ({counts['outside']} off the rasters or too near their edge, "
                                   f"{counts['nodata']} touching nodata, {counts['black']} black); give points on "
                                   "the rasters")
    mean, std, how = band_statistics(raw, normalisation, rng, "NORMALISATION")
    patch_km = patch_size * max(r.description["pixel_km"] for r in rasters)  # the coarsest raster's
    description = {
        "kind": "raster patches", "sources": [r.description for r in rasters], "patch_size": int(patch_size),
        "downsample": int(downsample), "patch_km": round(patch_km, 2),
        "sampling": SAMPLING[where].format(mask=mask, points=points),
        "seed": seed, "samples": int(sum(len(r) for r in raw)), **counts, "max_black_fraction": max_black_fraction,
        "normalisation": how,
    }
    return ImageSet(normalised(raw, mean, std), np.concatenate(lonlat), mean, std, description)


def _collect(rasters: list[PatchRaster], draw: Draw, samples: int, max_black_fraction: float, rng: np.random.Generator,
             where: str, progress: ProgressFn | None) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """Draw places until ``samples`` patches pass (or the points run out): (raw patch blocks, lon/lat blocks,
    counts of places drawn and rejected). Places are taken in the order drawn, whichever raster they fall on."""
    raw: list[np.ndarray] = []
    lonlat: list[np.ndarray] = []
    counts = {"drawn": 0, "outside": 0, "nodata": 0, "black": 0}
    accepted = 0
    while accepted < samples:
        rate = (accepted + 1) / (counts["drawn"] + 1)
        lon, lat = draw(int(min(max(1.2 * (samples - accepted) / rate, 1000), MAX_ROUND)))
        if not len(lon):
            break
        located = [r.locate(lon, lat) for r in rasters]
        fits = np.stack([f for _, _, f in located], axis=1)
        choice = np.where(fits.any(axis=1), np.argmax(np.where(fits, rng.random(fits.shape), -1.0), axis=1), -1)
        for start in range(0, len(lon), READ_CHUNK):
            if accepted >= samples:
                break
            chunk = np.arange(start, min(start + READ_CHUNK, len(lon)))
            judged = _judge(rasters, located, choice, chunk, max_black_fraction)
            good = np.sort(np.concatenate([idx[status == GOOD] for idx, _, status in judged] + [chunk[:0]]))
            last = good[samples - accepted - 1] if len(good) > samples - accepted else chunk[-1]
            counts["drawn"] += int(last - start + 1)
            counts["outside"] += int(np.count_nonzero(choice[start:last + 1] < 0))
            for idx, patches, status in judged:
                status = np.where(idx <= last, status, -1)
                counts["nodata"] += int(np.count_nonzero(status == NODATA))
                counts["black"] += int(np.count_nonzero(status == BLACK))
                keep = np.flatnonzero(status == GOOD)
                if len(keep):
                    raw.append(patches[keep])
                    lonlat.append(np.stack([lon[idx[keep]], lat[idx[keep]]], axis=1))
                    accepted += len(keep)
        if progress:
            progress(accepted / samples, f"{accepted} of {samples} patches")
        if accepted < samples:
            _check_yield(counts, accepted, where)
    return raw, lonlat, counts


def _judge(rasters: list[PatchRaster], located: list, choice: np.ndarray, chunk: np.ndarray,
           max_black_fraction: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each raster that places of ``chunk`` fall on: (place indices, patches, status GOOD, NODATA or BLACK of
    each)."""
    judged = []
    for k, raster in enumerate(rasters):
        idx = chunk[choice[chunk] == k]
        if len(idx):
            patches, valid = raster.read(located[k][0][idx], located[k][1][idx])
            status = np.where(valid, np.where(raster.is_black(patches, max_black_fraction), BLACK, GOOD), NODATA)
            judged.append((idx, patches, status))
    return judged
