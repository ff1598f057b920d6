"""Band-limited evaluation: agreement with dense evaluation, reported error, refinement and seams."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.windows import Window

from geoembed import bandlimited
from geoembed.bandlimited import BandLimited, cos_and_relative, deviation
from geoembed.cli import main
from geoembed.grid import RasterGrid
from geoembed.rasters import embedding_raster, similarity_raster

TOL = 1e-3


@pytest.fixture(scope="module")
def city():
    """Paris at 10 m in UTM 31N: 300 x 300 pixels, four windows (boundaries at row and column 256)."""
    return RasterGrid.create(CRS.from_epsg(32631), (448000, 5408000, 451000, 5411000), 10.0)


@pytest.fixture(scope="module")
def city_raster(embedder, city, tmp_path_factory):
    out = tmp_path_factory.mktemp("bl") / "city.tif"
    embedding_raster(embedder, city, out, tolerance=TOL)
    with rasterio.open(out) as ds:
        return ds.read(), ds.tags()


def exact(embedder, grid, rows, cols):
    lon, lat, _ = grid.lonlat(Window(0, 0, grid.width, grid.height))
    return embedder.embed(lon[rows, cols], lat[rows, cols])


def test_agrees_with_dense_within_tolerance(embedder, city, city_raster):
    data, _ = city_raster
    rng = np.random.default_rng(7)
    rows, cols = rng.integers(0, city.height, 300), rng.integers(0, city.width, 300)
    assert deviation(*cos_and_relative(data[:, rows, cols].T, exact(embedder, city, rows, cols))).max() <= TOL


def test_metadata_reports_verified_error(city_raster):
    _, tags = city_raster
    report = json.loads(tags["geoembed_evaluation"])
    assert report["mode"] == "auto" and report["tolerance"] == TOL
    assert report["start_stride"] >= 16 and report["windows_by_stride"] == {str(report["start_stride"]): 4}
    assert report["verified_pixels"] == 4 * bandlimited.SAMPLES
    error = float(tags["geoembed_verified_max_error"])
    assert 0 < error <= TOL and report["max_1_minus_cos"] <= error
    assert json.loads(tags["geoembed_parameters"])["evaluation"] == "auto"


@pytest.mark.parametrize("axis", [0, 1])
def test_no_seam_between_windows(embedder, city, city_raster, axis):
    """The jump across a window boundary (255 -> 256) is what dense evaluation shows, plus the tolerance."""
    data, _ = city_raster
    across = np.arange(0, 300, 15)
    before, after = (np.full_like(across, 255), np.full_like(across, 256))
    (r0, c0), (r1, c1) = ((before, across), (after, across)) if axis == 0 else ((across, before), (across, after))
    dense0, dense1 = exact(embedder, city, r0, c0), exact(embedder, city, r1, c1)
    fast0, fast1 = data[:, r0, c0].T, data[:, r1, c1].T
    dense_jump, fast_jump = (np.linalg.norm(b - a, axis=1) / np.linalg.norm(dense0, axis=1)
                             for a, b in ((dense0, dense1), (fast0, fast1)))
    assert np.all(fast_jump <= dense_jump + np.sqrt(2 * TOL))
    assert np.all(cos_and_relative(fast1, fast0)[0] <= cos_and_relative(dense1, dense0)[0] + TOL)


def test_coarse_start_is_refined_until_verified(embedder, city, tmp_path, monkeypatch):
    monkeypatch.setattr(bandlimited, "NODES_PER_WAVELENGTH", 0.5)  # start far too coarse: 256-pixel lattice
    out = tmp_path / "pca.tif"
    embedding_raster(embedder, city, out, dims=3, tolerance=TOL)
    with rasterio.open(out) as ds:
        data, tags = ds.read(), ds.tags()
    report = json.loads(tags["geoembed_evaluation"])
    assert report["start_stride"] == 256 and all(int(s) < 256 for s in report["windows_by_stride"])
    assert float(tags["geoembed_verified_max_error"]) <= TOL
    rows, cols = np.arange(0, 299, 23), np.arange(7, 300, 23)
    expected = embedder.pca.project(exact(embedder, city, rows, cols), 3)
    assert np.abs(data[:, rows, cols].T - expected).max() <= 0.05 * np.abs(expected).max()


def test_fast_lattice_is_reported(embedder, city_raster):
    report = json.loads(city_raster[1]["geoembed_evaluation"])
    if embedder.fast_available:
        assert report["lattice_precision"] == "bfloat16" and 0 < report["bfloat16_max_error"] <= TOL / 4
    else:
        assert report["lattice_precision"] == "float32" and "bfloat16_max_error" not in report


def test_poor_fast_nodes_are_abandoned(embedder, city):
    """A fast evaluation off by more than tolerance / 4 at the exact samples is dropped for the exact one."""
    rng = np.random.default_rng(5)

    def poor(lon, lat):
        e = embedder.embed(lon, lat)
        return e + 0.05 * np.linalg.norm(e, axis=1, keepdims=True) * rng.standard_normal(e.shape) / np.sqrt(e.shape[1])

    limited = BandLimited(city, embedder.embed, lambda e: e, embedder.resolution_km, TOL, embed_fast=poor)
    window = Window(0, 0, 256, 256)
    lon, lat, valid = city.lonlat(window)
    out = limited(window, lon, lat, valid).reshape(256, 256, -1)
    report = json.loads(limited.tags()["geoembed_evaluation"])
    assert report["lattice_precision"] == "bfloat16 then float32" and report["bfloat16_max_error"] > TOL / 4
    assert report["windows_by_stride"] == {str(limited.stride): 1}
    rows, cols = np.arange(0, 255, 17), np.arange(5, 256, 17)
    assert deviation(*cos_and_relative(out[rows, cols], embedder.embed(lon[rows, cols], lat[rows, cols]))).max() <= TOL


def test_tight_tolerance_refines_to_dense(embedder, tmp_path, monkeypatch):
    monkeypatch.setattr(bandlimited, "NODES_PER_WAVELENGTH", 0.01)  # start coarse despite the tight tolerance
    grid = RasterGrid.create(CRS.from_epsg(32631), (448000, 5408000, 448320, 5408320), 10.0)  # 32 x 32
    out = {}
    for evaluation, tolerance in (("auto", 1e-9), ("dense", TOL)):
        path = tmp_path / f"{evaluation}.tif"
        similarity_raster(embedder, grid, path, reference=(2.35, 48.85), evaluation=evaluation, tolerance=tolerance)
        with rasterio.open(path) as ds:
            out[evaluation] = ds.read(1), ds.tags()
    report = json.loads(out["auto"][1]["geoembed_evaluation"])
    assert report["start_stride"] > 1 and report["windows_by_stride"] == {"1": 1}
    assert json.loads(out["dense"][1]["geoembed_evaluation"]) == {"mode": "dense"}
    np.testing.assert_array_equal(out["auto"][0], out["dense"][0])


def test_similarity_interpolates_embeddings(embedder, city, tmp_path):
    out = tmp_path / "sim.tif"
    similarity_raster(embedder, city, out, reference=(2.35, 48.85))
    with rasterio.open(out) as ds:
        sim = ds.read(1)
    rows, cols = np.arange(3, 290, 37), np.arange(250, 298, 6)
    e = exact(embedder, city, rows, cols)
    ref = embedder.embed([2.35], [48.85])[0]
    expected = e @ ref / np.linalg.norm(e, axis=1) / np.linalg.norm(ref)
    assert np.abs(sim[rows, cols] - expected).max() <= np.sqrt(2 * TOL)


def test_cli_rejects_non_positive_tolerance(store_home, tmp_path, capsys):
    code = main(["--progress", "text", "similarity", "--extent", "0,0,1,1", "--crs", "EPSG:4326", "--pixel-size",
                 "0.5", "--reference", "0,0", "--tolerance", "0", "--output", str(tmp_path / "x.tif")])
    assert code == 2 and "TOLERANCE (--tolerance)" in capsys.readouterr().err
