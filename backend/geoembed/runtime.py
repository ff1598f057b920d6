"""Thread and floating-point settings for torch, applied before torch is imported.

On a loaded machine OpenMP's default spin-wait makes every parallel region slow; we ask for a
passive wait and an explicit thread count (GEOEMBED_THREADS, default: the CPUs we may use).
Subnormal numbers (below 1.2e-38 in float32) send x86 arithmetic down a slow path: a training run
slowed 2.4x as they appeared in its activations and gradients, so they are flushed to zero. Large
tensors are allocated on transparent huge pages (torch's THP_MEM_ALLOC_ENABLE): filling fresh memory
4 KiB page by page made spherical harmonics 1.35x and GeoCLIP 1.08x slower. Freed memory is kept for
reuse instead of being handed back to the system at once (glibc's mallopt): every fresh block costs a page
fault and the kernel zeroing it, 30 % of the time spherical harmonics spent on batches of 10,000 points at
L = 100 (800 MB each). A long-running worker hands free memory back after every request (release_freed_memory).
"""

from __future__ import annotations

import ctypes
import os

# glibc mallopt parameters (malloc.h) and the free memory kept at the top of the heap
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
KEEP_FREE_BYTES = 1 << 30


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
    keep_freed_memory()
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    for kind in (np.float32, np.float64):
        np.finfo(kind)  # measured and cached now: with subnormals flushed numpy would warn that they are zero
    torch.set_flush_denormal(True)  # for this thread and the threads it starts later (torch's pool included)
    return threads


def _libc_function(name: str):
    """A function of the process's C library, or None (not glibc, not Linux)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap rather than fresh mappings, and keep up to KEEP_FREE_BYTES of freed
    memory, so that a block freed after one batch is reused by the next without new page faults. Returns whether
    the C library took the settings (glibc does; others keep their defaults)."""
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, KEEP_FREE_BYTES) == 1


def release_freed_memory() -> None:
    """Hand the memory freed so far back to the system (glibc's malloc_trim; elsewhere nothing)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)
