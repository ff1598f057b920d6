"""Issue 2: how long the demo rasters take and their peak memory; memory against output size."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common import geoembed_cmd, run_measured

CASES = [
    ("Europe embedding, EPSG:3035, 10 km (the demo)", "embed-raster",
     ["--extent", "2500000,1400000,7500000,5500000", "--crs", "EPSG:3035", "--pixel-size", "10000"]),
    ("World similarity to Hong Kong, EPSG:4326, 0.5 deg (the demo)", "similarity",
     ["--extent=-180,-90,180,90", "--crs", "EPSG:4326", "--pixel-size", "0.5", "--reference", "114.1694,22.3193"]),
]
# 512-band rasters of growing size over Paris at 0.001 deg (about 100 m), far finer than the model resolves, so
# band-limited evaluation keeps them fast; the last one is larger than this machine's memory uncompressed.
SCALING = [256, 1024, 4096]
SCALING_PIXEL = 0.001


TITLE = "Embedding and similarity rasters (model geoclip, CPU)"


def ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _scaling_rows(tmp: str) -> list[tuple]:
    rows = []
    for n in SCALING:
        out = Path(tmp) / "out.tif"
        raw = n * n * 512 * 4
        if shutil.disk_usage(tmp).free < raw:
            rows.append((f"512 bands, {n} x {n}", raw, None, None, None))
            continue
        extent = f"2.0,48.0,{2.0 + n * SCALING_PIXEL},{48.0 + n * SCALING_PIXEL}"
        wall, rss, _ = run_measured(geoembed_cmd("embed-raster", "--extent", extent, "--crs", "EPSG:4326",
                                                 "--pixel-size", str(SCALING_PIXEL), "--output", str(out)))
        rows.append((f"512 bands, {n} x {n}", raw, wall, rss, out.stat().st_size))
        out.unlink()
    return rows


def report() -> str:
    demo = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, command, args in CASES:
            out = Path(tmp) / "out.tif"
            wall, rss, _ = run_measured(geoembed_cmd(command, *args, "--output", str(out)))
            demo.append((label, wall, rss, out.stat().st_size))
            out.unlink()
        scaling = _scaling_rows(tmp)
    lines = ["Command: `make bench` (or `.venv/bin/python benchmarks/run.py --only rasters`). Each raster is one "
             "`geoembed` child process, timed from start to exit (Python start, torch import and model load "
             "included); peak memory is that process's maximum resident set size.", "",
             "The demo rasters, as `make demo` makes them:", "",
             "| case | wall time (s) | peak memory (MiB) | file size (MB) |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {wall:.1f} | {rss:.0f} | {size / 1e6:.1f} |" for label, wall, rss, size in demo]
    lines += ["", f"Memory against output size: 512-band float32 rasters over Paris at {SCALING_PIXEL} deg "
              f"(default `--evaluation auto`). This machine has {ram_bytes() / 2**30:.1f} GiB of memory.", "",
              "| raster | uncompressed size (GB) | wall time (s) | peak memory (MiB) | file size (GB) |",
              "|---|---:|---:|---:|---:|"]
    for label, raw, wall, rss, size in scaling:
        if wall is None:
            lines.append(f"| {label} | {raw / 1e9:.1f} | not run: too little free disk | | |")
        else:
            lines.append(f"| {label} | {raw / 1e9:.1f} | {wall:.1f} | {rss:.0f} | {size / 1e9:.2f} |")
    measured = [r[3] for r in scaling if r[3] is not None]
    if len(measured) > 1:
        lines += ["", f"Peak memory stays within {min(measured):.0f}-{max(measured):.0f} MiB while the output grows "
                  f"{scaling[-1][1] / scaling[0][1]:.0f}x: the raster is computed and written one 256 x 256 window "
                  "at a time (130 MiB of float32 for 512 bands, written in place), and GDAL's block cache is capped "
                  "at GDAL_CACHEMAX = 64 MiB (a user's own GDAL_CACHEMAX wins)."]
    return "\n".join(lines)
