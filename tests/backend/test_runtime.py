"""The backend's thread and floating-point settings, in a fresh interpreter as every backend command starts."""

from __future__ import annotations

import json
import subprocess
import sys

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
