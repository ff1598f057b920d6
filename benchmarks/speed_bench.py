"""Issue 7: pixels/s of dense against band-limited evaluation, verified error, peak memory, GEMM roofline.

Each case runs in a child process (``python speed_bench.py CASE``) so its peak memory is its own.
Band-limited: the whole raster through ``embedding_raster`` (3 PCA bands, GeoTIFF written). Dense: a
256 x 256 block (one window) of the same grid (positions, encoder, PCA; no GeoTIFF write, which flatters dense),
extrapolated to the whole raster.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from common import run_measured

TITLE = "Band-limited against dense evaluation (model geoclip, CPU, 3 PCA bands)"
CASES = {
    "world": ("World, EPSG:4326, 0.1 deg", "EPSG:4326", (-180, -90, 180, 90), 0.1),
    "country": ("Belgium, EPSG:3035, 100 m", "EPSG:3035", (3770000, 2950000, 4070000, 3200000), 100.0),
    "city": ("Paris, EPSG:32631, 10 m", "EPSG:32631", (442000, 5401000, 462000, 5421000), 10.0),
}
SAMPLE = 256  # dense block side, pixels: one whole window, embedded in batches of 8,192 as a dense raster is
AUTO_CROP = 256  # band-limited runs on at most this many pixels a side where it would be dense anyway
GEMMS = [(8192, 512, 1024), (8192, 1024, 1024), (8192, 1024, 1024), (8192, 1024, 512)]  # one GeoCLIP branch
FLOPS_PER_POINT = 3 * sum(2 * k * n for _, k, n in GEMMS)  # three branches


def gemm_gflops(repeat: int = 3) -> float:
    """float32 torch.matmul throughput over the encoder's own matrix shapes, GFLOP/s (best of ``repeat``)."""
    import torch

    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in GEMMS]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for a, b in mats:
            torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return sum(2 * m * k * n for m, k, n in GEMMS) / best / 1e9


def measure(case: str) -> dict:
    """Run one case in this process and return its numbers."""
    import rasterio
    from pyproj import CRS
    from rasterio.windows import Window

    from geoembed.bandlimited import cos_and_relative, deviation, start_stride
    from geoembed.embedder import LocationEmbedder
    from geoembed.grid import RasterGrid
    from geoembed.rasters import embedding_raster
    from geoembed.runtime import configure_threads

    configure_threads()
    _, crs, extent, pixel = CASES[case]
    embedder = LocationEmbedder("geoclip")
    grid = RasterGrid.create(CRS.from_user_input(crs), extent, pixel)
    pixels = grid.width * grid.height

    start = time.perf_counter()
    lon, lat, valid = grid.lonlat(Window(grid.width // 2, grid.height // 2, SAMPLE, SAMPLE))
    exact = embedder.embed(lon[valid], lat[valid])
    embedder.pca.project(exact, 3)
    dense_rate = valid.size / (time.perf_counter() - start)
    embedder.embed(lon[valid][:8192], lat[valid][:8192], fast=True)  # bfloat16 weights cast once
    start = time.perf_counter()
    fast = embedder.embed(lon[valid], lat[valid], fast=True)
    embedder.pca.project(fast, 3)
    fast_rate = valid.size / (time.perf_counter() - start)
    fast_error = float(deviation(*cos_and_relative(fast[:8192], exact[:8192])).max()) \
        if embedder.fast_available else None  # on one batch: float64 copies of the whole block would set the peak
    del exact, fast

    stride = start_stride(grid, embedder.resolution_km, 1e-3)
    crop = grid if stride > 1 else RasterGrid.create(
        grid.crs, (grid.xmin, grid.ymax - AUTO_CROP * pixel, grid.xmin + AUTO_CROP * pixel, grid.ymax), pixel)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "auto.tif"
        start = time.perf_counter()
        embedding_raster(embedder, crop, out, dims=3)
        auto_seconds = time.perf_counter() - start
        with rasterio.open(out) as ds:
            tags = ds.tags()
    return {"pixels": pixels, "auto_pixels": crop.width * crop.height, "auto_seconds": auto_seconds,
            "dense_rate": dense_rate, "fast_rate": fast_rate, "fast_error": fast_error,
            "report": json.loads(tags["geoembed_evaluation"]),
            "error": float(tags["geoembed_verified_max_error"]), "gemm_gflops": gemm_gflops(),
            "dense_gflops": dense_rate * FLOPS_PER_POINT / 1e9}


def report() -> str:
    rows = []
    for case, (label, *_) in CASES.items():
        _, rss, proc = run_measured([sys.executable, __file__, case])
        rows.append((label, json.loads(proc.stdout.strip().splitlines()[-1]), rss))
    lines = ["Command: `.venv/bin/python benchmarks/run.py --only speed`. Band-limited (`--evaluation auto`, "
             "tolerance 1e-3): the whole raster through `embedding_raster --dims 3`, GeoTIFF written, lattice nodes in "
             "bfloat16 where the CPU has AMX (verified against float32 samples like the rest), timed after the model "
             "is loaded (where the start stride is 1, i.e. auto is dense, a 256 x 256 crop). "
             "Dense: a 256 x 256 block (one window) at the raster centre (positions, encoder, PCA, no GeoTIFF "
             "write) timed in the same process and extrapolated to the whole raster. Peak memory: the child "
             "process's maximum RSS. GEMM: float32 `torch.matmul` of GeoCLIP's layer shapes (8192 x 512 x 1024, "
             "2 x 8192 x 1024 x 1024, 8192 x 1024 x 512) in the same process. Dense bfloat16: the same block through "
             "`embed(fast=True)`, its max error in cosine terms against float32 on the first 8,192 pixels (dense "
             "output stays float32).", "",
             "| raster | pixels | dense px/s | dense time (extrapolated) | auto px/s | auto time | speed-up | "
             "windows by stride | verified max error | max 1-cos / rel. L2 | peak MiB | GEMM GFLOP/s | "
             "dense GFLOP/s (ratio) | dense bfloat16 px/s (max error) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for label, m, rss in rows:
        auto_rate = m["auto_pixels"] / m["auto_seconds"]
        report = m["report"]
        crop = "" if m["auto_pixels"] == m["pixels"] else f" ({m['auto_pixels']:,} px crop)"
        strides = ", ".join(f"{s}: {n}" for s, n in report.get("windows_by_stride", {}).items()) + (
            f" ({report['lattice_precision']} lattice)" if "lattice_precision" in report else "")
        lines.append(
            f"| {label} | {m['pixels']:,} | {m['dense_rate']:,.0f} | {m['pixels'] / m['dense_rate']:,.0f} s | "
            f"{auto_rate:,.0f}{crop} | {m['pixels'] / auto_rate:,.0f} s | {auto_rate / m['dense_rate']:,.1f}x | "
            f"{strides} | {m['error']:.2g} | {report.get('max_1_minus_cos', 0):.1g} / "
            f"{report.get('max_relative_l2', 0):.2g} | {rss:,.0f} | {m['gemm_gflops']:.0f} | "
            f"{m['dense_gflops']:.0f} ({m['gemm_gflops'] / m['dense_gflops']:.1f}x below GEMM) | " +
            (f"{m['fast_rate']:,.0f} ({m['fast_error']:.1g}) |" if m["fast_error"] is not None else "no AMX |"))
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
