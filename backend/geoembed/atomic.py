"""Outputs appear only when complete: they are written under a temporary name beside the target, then renamed."""

from __future__ import annotations

import os
from pathlib import Path


def partial_path(path: Path) -> Path:
    """``.<stem>.<pid>.partial<suffix>`` beside ``path``; the QGIS plugin removes it if the backend is killed."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
