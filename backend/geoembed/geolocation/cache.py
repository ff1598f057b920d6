"""Gallery embeddings, computed once per (model weights, gallery) and kept under ``<store home>/cache/galleries/``.

One ``.npz`` per model id and gallery (no pickles): float16 unit vectors and the key they were computed for, the
weights' and the gallery's sha256. A key that no longer matches (the model was retrained or re-installed) is a miss
and the file is replaced; a changed gallery has another file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..atomic import write_via
from ..embedder import LocationEmbedder
from .galleries import Gallery
from .search import unit_rows

STORED = np.float16


def cache_path(embedder: LocationEmbedder, gallery: Gallery) -> Path:
    return embedder.store.home / "cache" / "galleries" / f"{embedder.model_id}-{gallery.sha256[:20]}.npz"


def _load(path: Path, key: dict[str, str], rows: int) -> Optional[np.ndarray]:
    """The cached embeddings if ``path`` holds them for ``key``, else None (missing, stale or damaged)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if any(str(data[name]) != value for name, value in key.items()):
                return None
            embeddings = data["embeddings"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return embeddings if embeddings.shape[0] == rows and embeddings.dtype == STORED else None


def gallery_embeddings(embedder: LocationEmbedder, gallery: Gallery, on_batch: Callable[[int, int], None] | None,
                       log: Callable[[str], None]) -> tuple[np.ndarray, bool]:
    """(float32 (N, D) unit embeddings of the gallery, whether they came from the cache). Both ways return the
    float16-rounded values, so a hit and a miss give the same answers; ``on_batch(done, total)`` as in
    LocationEmbedder.embed (progress, cancel). A cache that cannot be written is reported through ``log``."""
    path = cache_path(embedder, gallery)
    key = {"weights_sha256": embedder.weights_sha256, "gallery_sha256": gallery.sha256}
    cached = _load(path, key, len(gallery))
    if cached is not None:
        return cached.astype(np.float32), True
    embeddings = unit_rows(embedder.embed(gallery.lonlat[:, 0], gallery.lonlat[:, 1], on_batch)).astype(STORED)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as stream:
            np.savez(stream, embeddings=embeddings, **{name: np.str_(value) for name, value in key.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_via(path, save)
    except OSError as err:
        log(f"warning: the gallery embeddings could not be cached ({err}); they will be computed again next time")
    return embeddings.astype(np.float32), False
