"""Progress, log and result messages, and cooperative cancellation on SIGTERM/SIGINT.

With ``mode="json"`` every message is one JSON object per line on stdout, which the QGIS plugin reads:
``{"type": "progress", "fraction": 0.5, "message": "..."}``, ``{"type": "log", "message": "..."}``,
``{"type": "result", ...}`` and ``{"type": "error", "message": "...", "parameter": "EXTENT"}``.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from .errors import Cancelled


class Progress:
    def __init__(self, mode: str = "text", stream=None):
        if mode not in ("json", "text", "none"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.stream = stream
        self.cancelled = False
        self._last_text = 0.0

    def _out(self):
        return self.stream or (sys.stdout if self.mode == "json" else sys.stderr)

    def _emit(self, record: dict) -> None:
        if self.mode == "json":
            print(json.dumps(record), file=self._out(), flush=True)
        elif self.mode == "text":
            kind = record["type"]
            if kind == "progress":
                now = time.monotonic()
                if now - self._last_text < 1.0 and record["fraction"] < 1.0:
                    return
                self._last_text = now
                print(f"{100 * record['fraction']:5.1f}%  {record.get('message', '')}", file=self._out(), flush=True)
            elif kind in ("log", "error"):
                print(("error: " if kind == "error" else "") + record["message"], file=self._out(), flush=True)

    def __call__(self, fraction: float, message: str = "") -> None:
        self.check()
        self.report(fraction, message)

    def report(self, fraction: float, message: str = "") -> None:
        """Progress without the cancel check, for loops that stop at a point of their own choosing."""
        self._emit({"type": "progress", "fraction": round(min(max(fraction, 0.0), 1.0), 5), "message": message})

    def log(self, message: str) -> None:
        self._emit({"type": "log", "message": message})

    def error(self, message: str, parameter: str | None = None) -> None:
        self._emit({"type": "error", "message": message, "parameter": parameter})

    def result(self, **data) -> None:
        if self.mode == "json":
            self._emit({"type": "result", **data})

    def check(self) -> None:
        """Raise Cancelled if a stop was requested."""
        if self.cancelled:
            raise Cancelled("cancelled; no output was written")

    def stop_on_signals(self) -> None:
        """Turn SIGTERM and SIGINT into a request to stop at the next check()."""
        def request_stop(signum, frame):
            self.cancelled = True
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
