"""Outputs appear only when complete: they are written under a temporary name beside the target, then renamed."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Callable


def partial_path(path: Path) -> Path:
    """``.<stem>.<pid>.partial<suffix>`` beside ``path``; the QGIS plugin removes it if the backend is killed."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def write_via(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary path)``, then rename it to ``path``: the file appears complete or not at all."""
    tmp = partial_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_files_via(path: Path, write: Callable[[Path], object]) -> None:
    """``write_via`` for formats of several files (a Shapefile's .shp, .shx, .dbf, .prj): every file the writer made
    under the temporary name is renamed to ``path``'s name with its own suffix, or removed if writing fails."""
    tmp = partial_path(path)
    made = f"{glob.escape(tmp.stem)}.*"
    try:
        write(tmp)
        for file in sorted(tmp.parent.glob(made)):
            os.replace(file, path.with_suffix(file.suffix))
    finally:
        for file in tmp.parent.glob(made):
            file.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    write_via(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    write_via(path, lambda tmp: tmp.write_bytes(data))
