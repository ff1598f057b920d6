"""The `geoembed` command line as the plugin and users call it: JSON progress, errors, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import rasterio

GRID = ["--extent", "0,40,4,44", "--crs", "EPSG:4326", "--pixel-size", "1"]


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "geoembed", "--progress", "json", *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_similarity_with_json_progress(store_home, tmp_path):
    out = tmp_path / "sim.tif"
    proc = run("similarity", *GRID, "--reference", "2.5,42.5", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    msgs = records(proc.stdout)
    assert msgs[-1]["type"] == "result" and msgs[-1]["output"] == str(out)
    assert any(m["type"] == "progress" and m["fraction"] == 1.0 for m in msgs)
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.read(1)[1, 2] == pytest.approx(1.0, abs=1e-5)


def test_extent_in_another_crs(store_home, tmp_path):
    out = tmp_path / "emb.tif"
    # Roughly 4 x 3 degrees around (10, 52) given in EPSG:3035, written in EPSG:4326.
    proc = run("embed-raster", "--extent", "4200000,3150000,4450000,3450000", "--extent-crs", "EPSG:3035",
               "--crs", "EPSG:4326", "--pixel-size", "1", "--dims", "3", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out) as ds:
        assert ds.count == 3 and ds.crs.to_epsg() == 4326
        assert 7 < ds.bounds.left < 9 and 50 < ds.bounds.bottom < 52


@pytest.mark.parametrize("args, parameter", [
    (["embed-raster", "--extent", "0,0,0,10", "--crs", "EPSG:4326", "--pixel-size", "1"], "EXTENT"),
    (["embed-raster", "--extent", "5,0,0,10", "--crs", "EPSG:4326", "--pixel-size", "1"], "EXTENT"),
    (["embed-raster", *GRID[:-2], "--pixel-size", "0"], "PIXEL_SIZE"),
    (["embed-raster", *GRID[:-2], "--pixel-size", "-2"], "PIXEL_SIZE"),
    (["embed-raster", *GRID, "--model", "no-such-model"], "MODEL"),
    (["embed-raster", "--extent", "0,40,4,44", "--crs", "EPSG:1234567", "--pixel-size", "1"], "TARGET_CRS"),
    (["similarity", *GRID, "--reference", "0,95"], "REFERENCE"),
    (["similarity", *GRID, "--reference", "90000000,0", "--reference-crs", "EPSG:3035"], "REFERENCE"),
    (["embed-raster", *GRID, "--max-size-gb", "0.000001"], "PIXEL_SIZE"),
    (["embed-raster", *GRID, "--dims", "0"], "DIMS"),
    (["embed-raster", *GRID, "--preview", "/no/such/folder/preview.tif"], "PREVIEW"),
    (["embed-raster", *GRID, "--preview", "preview.png"], "PREVIEW"),
])
def test_bad_input_names_the_parameter(store_home, tmp_path, args, parameter):
    out = tmp_path / "out.tif"
    proc = run(*args, "--output", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = records(proc.stdout)[-1]
    assert error["type"] == "error" and error["parameter"] == parameter
    assert parameter in error["message"]
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(store_home, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for target in (locked / "x.tif", tmp_path / "missing" / "x.tif", tmp_path / "x.png"):
            proc = run("embed-raster", *GRID, "--output", str(target))
            if os.geteuid() == 0 and target.parent == locked:
                continue  # root writes anywhere
            assert proc.returncode == 2 and records(proc.stdout)[-1]["parameter"] == "OUTPUT", target
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_and_removes_partial_output(store_home, tmp_path, sig):
    out = tmp_path / "big.tif"
    proc = subprocess.Popen([sys.executable, "-m", "geoembed", "--progress", "json", "embed-raster",
                             "--extent", "0,0,60,5", "--crs", "EPSG:4326", "--pixel-size", "0.1",
                             "--output", str(out)], stdout=subprocess.PIPE, text=True)
    first = json.loads(proc.stdout.readline())
    assert first["type"] == "log" and "loaded" in first["message"]
    assert json.loads(proc.stdout.readline())["type"] == "progress"  # computing: the partial file exists
    assert any(p.name.endswith(".partial.tif") for p in tmp_path.iterdir())
    started = time.monotonic()
    proc.send_signal(sig)
    rest = records(proc.stdout.read())
    assert proc.wait(timeout=60) == 130
    assert time.monotonic() - started < 20
    assert rest[-1]["type"] == "error" and "cancelled" in rest[-1]["message"]
    assert list(tmp_path.iterdir()) == []


def test_models_lists_geoclip(store_home):
    proc = subprocess.run([sys.executable, "-m", "geoembed", "models", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "geoclip" in [m["id"] for m in json.loads(proc.stdout)["models"]]
