"""Outputs appear only when complete: they are written under a temporary name beside the target, then renamed."""

from __future__ import annotations

import os
from pathlib import Path


def partial_path(path: Path) -> Path:
    """``.<stem>.<pid>.partial<suffix>`` beside ``path``; the QGIS plugin removes it if the backend is killed."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that it appears complete or not at all."""
    tmp = partial_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
