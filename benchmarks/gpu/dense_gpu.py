"""Dense GeoCLIP evaluation on a GPU against the same machine's CPU: points/s by batch size and precision, the
error of TF32 and bfloat16 against float32 on the CPU (1 - cosine), and GEMM rates for the roofline ratio.
Needs only PyTorch and the store's geoclip model (GEOEMBED_HOME); GDAL is not used.

    python3 benchmarks/gpu/dense_gpu.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend"))
from geoembed.coords import fibonacci_lattice  # noqa: E402
from geoembed.embedder import LocationEmbedder  # noqa: E402

GEMMS = [(512, 1024), (1024, 1024), (1024, 1024), (1024, 512)]  # (k, n) of one GeoCLIP branch
FLOPS_PER_POINT = 3 * sum(2 * k * n for k, n in GEMMS)


def gemm_gflops(device: str, dtype: torch.dtype, m: int, repeat: int) -> float:
    mats = [(torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype))
            for k, n in GEMMS]
    for _ in range(2):
        for a, b in mats:
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeat):
            for a, b in mats:
                a @ b
        if device == "cuda":
            torch.cuda.synchronize()
    return repeat * sum(2 * m * k * n for k, n in GEMMS) / (time.perf_counter() - start) / 1e9


def points_per_s(embedder: LocationEmbedder, lon, lat, autocast=None) -> tuple[float, np.ndarray]:
    embedder.embed(lon[:embedder.batch_size], lat[:embedder.batch_size])
    best, out = float("inf"), None
    for _ in range(3):
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=autocast, enabled=autocast is not None):
            out = embedder.embed(lon, lat)
        best = min(best, time.perf_counter() - start)
    return len(lon) / best, out


def one_minus_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((1 - (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).max())


def main() -> None:
    torch.set_num_threads(os.cpu_count())
    lon, lat = fibonacci_lattice(4_000_000)
    n_cpu = 400_000
    results = {"cpu_threads": os.cpu_count(), "flops_per_point": FLOPS_PER_POINT}
    results["cpu_points_per_s"], reference = points_per_s(LocationEmbedder("geoclip"), lon[:n_cpu], lat[:n_cpu])
    results["cpu_gemm_gflops"] = gemm_gflops("cpu", torch.float32, 8192, 5)
    for name, tf32, autocast in (("fp32", False, None), ("tf32", True, None), ("bf16", False, torch.bfloat16)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for batch in (8192, 65536, 1048576):
            rate, out = points_per_s(LocationEmbedder("geoclip", device="cuda", batch_size=batch), lon, lat, autocast)
            results[f"cuda_{name}_batch{batch}"] = {"points_per_s": rate,
                                                    "max_1_minus_cos": one_minus_cos(out[:n_cpu], reference)}
            print(name, batch, results[f"cuda_{name}_batch{batch}"], flush=True)
        results[f"gpu_gemm_{name}_gflops"] = gemm_gflops("cuda", torch.bfloat16 if autocast else torch.float32,
                                                         65536, 20)
    torch.backends.cuda.matmul.allow_tf32 = False
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
