"""Thread and floating-point settings for torch, applied before torch is imported.

On a loaded machine OpenMP's default spin-wait makes every parallel region slow; we ask for a
passive wait and an explicit thread count (GEOEMBED_THREADS, default: the CPUs we may use).
Subnormal numbers (below 1.2e-38 in float32) send x86 arithmetic down a slow path: a training run
slowed 2.4x as they appeared in its activations and gradients, so they are flushed to zero. Large
tensors are allocated on transparent huge pages (torch's THP_MEM_ALLOC_ENABLE): filling fresh memory
4 KiB page by page made spherical harmonics 1.35x and GeoCLIP 1.08x slower.
"""

from __future__ import annotations

import os


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def configure_threads() -> int:
    threads = int(os.environ.get("GEOEMBED_THREADS") or cpu_count())
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # read by torch at its first large allocation
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    for kind in (np.float32, np.float64):
        np.finfo(kind)  # measured and cached now: with subnormals flushed numpy would warn that they are zero
    torch.set_flush_denormal(True)  # for this thread and the threads it starts later (torch's pool included)
    return threads
