"""Issue 2: how long the demo rasters take and their peak memory; memory against output size."""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import geoembed_cmd, run_measured

CASES = [
    ("Europe embedding, EPSG:3035, 10 km (the demo)", "embed-raster",
     ["--extent", "2500000,1400000,7500000,5500000", "--crs", "EPSG:3035", "--pixel-size", "10000"]),
    ("World similarity to Hong Kong, EPSG:4326, 0.5 deg (the demo)", "similarity",
     ["--extent=-180,-90,180,90", "--crs", "EPSG:4326", "--pixel-size", "0.5", "--reference", "114.1694,22.3193"]),
]
SCALING = [("512-band raster, 256 x 256", "0,0,25.6,25.6"), ("512-band raster, 512 x 512", "0,0,51.2,51.2")]


TITLE = "Embedding and similarity rasters (model geoclip, CPU, dense evaluation)"


def report() -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, command, args in CASES:
            out = Path(tmp) / "out.tif"
            wall, rss, _ = run_measured(geoembed_cmd(command, *args, "--output", str(out)))
            rows.append((label, wall, rss, out.stat().st_size))
            out.unlink()
        for label, extent in SCALING:
            out = Path(tmp) / "out.tif"
            wall, rss, _ = run_measured(geoembed_cmd("embed-raster", "--extent", extent, "--crs", "EPSG:4326",
                                                     "--pixel-size", "0.1", "--output", str(out)))
            rows.append((label, wall, rss, out.stat().st_size))
            out.unlink()
    lines = ["Command: `make bench` (or `.venv/bin/python benchmarks/run.py --only rasters`). Each raster is one "
             "`geoembed` child process, timed from start to exit (Python start, torch import and model load "
             "included); peak memory is that process's maximum resident set size.", "",
             "| case | wall time (s) | peak memory (MiB) | file size (MB) |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {wall:.1f} | {rss:.0f} | {size / 1e6:.1f} |" for label, wall, rss, size in rows]
    small, large = rows[-2][2], rows[-1][2]
    lines += ["", f"From the 256 x 256 to the 512 x 512 512-band raster the output grows 4x and peak memory "
              f"{large / small:.2f}x ({small:.0f} -> {large:.0f} MiB). The raster is computed and written one "
              "256 x 256 window at a time (about 130 MiB of float32 for 512 bands); the rest is torch, the model "
              "and GDAL's block cache (capped at GDAL_CACHEMAX = 256 MiB). Peak memory still grows with the raster "
              "here, more slowly than the output; where it levels off is not yet measured."]
    return "\n".join(lines)
