"""The backend's thread and floating-point settings, in a fresh interpreter as every backend command starts."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest


def keep_freed_memory_supported() -> bool:
    return hasattr(ctypes.CDLL(None), "mallopt") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")

SCRIPT = """
import json, os, threading, warnings
warnings.simplefilter("error")  # numpy must not warn about subnormals once they are flushed
from geoembed.runtime import configure_threads
threads = configure_threads()
import torch
tiny = torch.full((1 << 20,), 1e-39)  # subnormal in float32; 1M values: torch's thread pool shares the product
pool = float((tiny * 1.0).abs().max())
side = []
worker = threading.Thread(target=lambda: side.append(float((tiny[:10] * 1.0).abs().max())))
worker.start(); worker.join()
print(json.dumps({"threads": threads, "torch": torch.get_num_threads(), "pool": pool, "thread": side[0],
                  "huge_pages": os.environ.get("THP_MEM_ALLOC_ENABLE")}))
"""


def test_subnormals_are_flushed_in_every_thread(monkeypatch):
    """Subnormal arithmetic takes the CPU's slow path (a training run slowed 2.4x): after configure_threads,
    products that would be subnormal are 0 in torch's thread pool and in threads started later; torch is told to
    use huge pages for large tensors."""
    monkeypatch.setenv("GEOEMBED_THREADS", "2")
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result == {"threads": 2, "torch": 2, "pool": 0.0, "thread": 0.0, "huge_pages": "1"}


REUSE_SCRIPT = """
import json, resource, sys
from geoembed.runtime import configure_threads, keep_freed_memory
if sys.argv[1] == "backend":
    configure_threads()
import torch

def faults_of_a_fresh_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(64 << 20, dtype=torch.float32).fill_(1.0)  # 256 MB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults = [faults_of_a_fresh_block() for _ in range(4)]
print(json.dumps({"first": faults[0], "again": max(faults[2:])}))
"""


def _fault_counts(setting: str) -> dict:
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "1"}  # as the backend runs
    out = subprocess.run([sys.executable, "-c", REUSE_SCRIPT, setting], capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(out.stdout)


@pytest.mark.skipif(not keep_freed_memory_supported(), reason="the C library is not glibc")
def test_freed_blocks_are_reused_without_page_faults():
    """256 MB blocks freed after each batch are reused by the next ones: (almost) no page faults from the third
    batch on in a backend process, while a process with the C library's defaults faults as often every time."""
    backend, default = _fault_counts("backend"), _fault_counts("default")
    assert default["again"] > default["first"] // 2 > 0
    assert backend["again"] < backend["first"] // 10


RELEASE_SCRIPT = """
import json, os
from geoembed.runtime import configure_threads, release_freed_memory
configure_threads()
import torch

def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

base = resident_mib()
blocks = [torch.ones(32 << 20) for _ in range(4)]  # 4 x 128 MB
del blocks
kept = resident_mib()
release_freed_memory()
print(json.dumps({"kept": kept - base, "released": resident_mib() - base}))
"""


@pytest.mark.skipif(not keep_freed_memory_supported(), reason="the C library is not glibc")
def test_freed_memory_is_handed_back_on_request():
    """What a backend process kept after freeing 512 MB goes back to the system when the worker ends a request."""
    out = subprocess.run([sys.executable, "-c", RELEASE_SCRIPT], capture_output=True, text=True, check=True,
                         env={**os.environ, "THP_MEM_ALLOC_ENABLE": "1"})
    result = json.loads(out.stdout)
    assert result["kept"] > 400 and result["released"] < 100
