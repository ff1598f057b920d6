"""Training speed and quality on a GPU machine that has PyTorch but no GDAL (as the lent benchmark machines).

Here (GDAL present), cut the training benchmark's patches and keep the split:

    .venv/bin/python benchmarks/gpu/train_gpu.py prepare bm4x.npz

There (copy the repository and bm4x.npz), train with the same Trainer, config and split, one run per spec
NAME:MINUTES:STEPS:PRECISION:BATCH (MINUTES 0: run STEPS steps):

    python3 benchmarks/gpu/train_gpu.py run bm4x.npz bf16_512:5:0:auto:512 fp32_512:0:300:float32:512
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "backend"), str(ROOT / "benchmarks")]
import train_bench  # noqa: E402


def prepare(out: Path) -> None:
    import rasterio

    from geoembed.training.patches import PatchRaster

    data, train, val = train_bench.split_data(train_bench.CONFIG)
    source, size = train_bench.CONFIG["data"]["rasters"][0], train_bench.CONFIG["data"]["patch_size"]
    with rasterio.open(source["path"]) as ds:
        raster = PatchRaster(ds, source, None, size, train_bench.CONFIG["data"]["downsample"])
        row, col, fits = raster.locate(data.lonlat[:, 0], data.lonlat[:, 1])
    assert fits.all()
    np.savez_compressed(out, mosaic=raster.data, row=row.astype(np.int32), col=col.astype(np.int32),
                        lonlat=data.lonlat, mean=data.mean, std=data.std, train=train.astype(np.int32),
                        val=val.astype(np.int32), size=size)


def run(data_file: Path, specs: list[str]) -> None:
    import torch
    from numpy.lib.stride_tricks import sliding_window_view

    from geoembed.runtime import configure_threads
    from geoembed.training import config as configuration
    from geoembed.training.dataset import ImageSet, normalised
    from geoembed.training.trainer import Trainer

    d = np.load(data_file)
    size = int(d["size"])
    raw = sliding_window_view(d["mosaic"], (size, size), axis=(0, 1))[d["row"], d["col"]]
    data = ImageSet(normalised([raw], d["mean"], d["std"]), d["lonlat"], d["mean"], d["std"], {})
    train, val = data.subset(d["train"]), data.subset(d["val"])
    print(torch.__version__, torch.cuda.get_device_name(0), configure_threads(), "threads", flush=True)
    out = Path(os.environ.get("OUT", "."))
    for spec in specs:
        name, minutes, steps, precision, batch = spec.split(":")
        schedule = {**train_bench.CONFIG["schedule"], "batch_size": int(batch)}
        schedule.update({"time_limit_minutes": float(minutes)} if float(minutes) else {"steps": int(steps)})
        config = configuration.resolve({**train_bench.CONFIG, "device": "cuda", "precision": precision,
                                        "schedule": schedule})
        torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = Trainer(config, train, val, Path(run_dir), torch.device("cuda"), progress=lambda f, m: None,
                              log=lambda m, name=name: print(name, m, flush=True))
            started = time.monotonic()
            metrics = trainer.run(cancel_check=lambda: False)
        final = metrics["final"] or {}
        summary = {"run": name, "precision": precision, "batch": int(batch), "steps": metrics["steps"],
                   "wall_s": round(time.monotonic() - started, 1), "samples_per_s": metrics["samples_per_s"],
                   "peak_gpu_mib": torch.cuda.max_memory_allocated() >> 20,
                   **{k: final.get(k) for k in ("median_km", "within_25_km", "within_200_km", "within_750_km",
                                                "within_2500_km", "retrieval_top1", "retrieval_top5")}}
        print(json.dumps(summary), flush=True)
        (out / f"{name}.json").write_text(json.dumps({**summary, "history": metrics["validation"]}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["prepare"]:
        prepare(Path(sys.argv[2]))
    else:
        run(Path(sys.argv[2]), sys.argv[3:])
