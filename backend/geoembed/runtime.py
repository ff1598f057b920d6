"""Thread settings for torch, applied before torch is imported.

On a loaded machine OpenMP's default spin-wait makes every parallel region slow; we ask for a
passive wait and an explicit thread count (GEOEMBED_THREADS, default: the CPUs we may use).
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
    import torch

    torch.set_num_threads(threads)
    return threads
