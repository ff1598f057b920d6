"""Warm backend: 100 small similarity rasters in a row, as QGIS batch mode runs them, one-shot against warm.

Both modes go through the plugin's own client (geoembed_plugin.backend_client.BackendRun, without a QGIS window):
one-shot starts ``python -m geoembed`` per raster; warm sends every raster to one worker, which the first raster
starts (its start and model load are included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TITLE = "Warm backend: 100 small rasters in batch (model geoclip, CPU)"
COUNT = 100
SIDE, PIXEL = 16, 0.05  # 16 x 16 pixels of 0.05 deg


def _extents() -> list[tuple[float, float]]:
    """South-west corners spread over the globe."""
    return [(-170.0 + 3.4 * i, -60.0 + (i * 37) % 120) for i in range(COUNT)]


def _batch(folder: Path, warm: bool) -> list[float]:
    """Seconds per raster, in order, for one batch."""
    from geoembed_plugin.backend_client import run_backend

    os.environ["GEOEMBED_WARM"] = "1" if warm else "0"
    times = []
    for i, (x, y) in enumerate(_extents()):
        size = SIDE * PIXEL
        out = folder / f"{'warm' if warm else 'once'}_{i:03d}.tif"
        options = [f"--extent={x},{y},{x + size},{y + size}", "--crs=EPSG:4326", f"--pixel-size={PIXEL}",
                   f"--reference={x + size / 2},{y + size / 2}", "--device=cpu", f"--output={out}"]
        start = time.perf_counter()
        run_backend(["similarity"], options, str(out))
        times.append(time.perf_counter() - start)
    return times


def _stop_workers(runtime: Path) -> None:
    for lock in (runtime / "geoembed").glob("*.lock"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(lock.read_text()), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while list((runtime / "geoembed").glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.1)


def report() -> str:
    sys.path.insert(0, str(REPO))
    saved = {k: os.environ.get(k) for k in ("GEOEMBED_WARM", "GEOEMBED_PYTHON", "XDG_RUNTIME_DIR")}
    runtime = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))  # a worker of our own, started cold
    os.environ.update(GEOEMBED_PYTHON=sys.executable, XDG_RUNTIME_DIR=str(runtime))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            once = _batch(Path(tmp), warm=False)
            warm = _batch(Path(tmp), warm=True)
    finally:
        _stop_workers(runtime)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    rows = [("one-shot: a `python -m geoembed` process per raster", once),
            ("warm: one worker, started by the first raster", warm)]
    lines = [f"Command: `.venv/bin/python benchmarks/run.py --only warm`. {COUNT} similarity rasters of {SIDE} x "
             f"{SIDE} pixels ({PIXEL} deg) at different places, one after another as QGIS batch mode runs them, "
             "through the plugin's backend client (no QGIS window). Times are wall-clock per raster as the client "
             "sees them.", "",
             "| mode | total (s) | per raster, mean (s) | first raster (s) | later rasters, median (s) |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {label} | {sum(t):.1f} | {sum(t) / len(t):.3f} | {t[0]:.2f} | {statistics.median(t[1:]):.3f} |"
              for label, t in rows]
    lines += ["", f"Speed-up of the batch: {sum(once) / sum(warm):.1f}x; per later raster: "
              f"{statistics.median(once[1:]) / statistics.median(warm[1:]):.0f}x (Python start, torch import and "
              "model load are paid once)."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
