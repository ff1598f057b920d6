"""Put a converted model into the store: safetensors weights, its card and a PCA basis fitted through the stored file.

Every installer (the default GeoCLIP model, imported checkpoints) ends here, so all models are stored alike.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from . import __version__
from .coords import fibonacci_lattice
from .embedder import LocationEmbedder
from .errors import GeoEmbedError
from .pca import PCABasis
from .store import PCA, WEIGHTS, ModelStore

PCA_SAMPLE = 20000


def install_state(store: ModelStore, model_id: str, state: dict[str, torch.Tensor], card: dict,
                  source_sha256: str, extra_files: dict[str, Path] | None = None) -> Path:
    """Install ``state`` (the weights of ``card["architecture"]``) as ``model_id``; returns the model's folder.
    ``extra_files`` (name -> path, e.g. a trained image encoder) are installed beside the weights.

    The PCA basis is fitted on embeddings computed from the staged copy, through the same path every raster takes.
    Nothing reaches ``store`` unless every step succeeds.
    """
    card = {**card, "pca": {"file": PCA, "sample": f"Fibonacci lattice, {PCA_SAMPLE} points, whole globe"},
            "geoembed_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp:
        weights, pca = Path(tmp) / WEIGHTS, Path(tmp) / PCA
        save_file(state, str(weights), metadata={"source_sha256": source_sha256})
        staging = ModelStore(Path(tmp) / "store")
        staging.install(model_id, {WEIGHTS: weights}, card)
        embeddings = LocationEmbedder(model_id, staging).embed(*fibonacci_lattice(PCA_SAMPLE))
        if not np.isfinite(embeddings).all():
            raise GeoEmbedError(f"model {model_id!r} gives non-finite embeddings; refusing to install it")
        PCABasis.fit(embeddings).save(pca)
        return store.install(model_id, {WEIGHTS: weights, PCA: pca, **(extra_files or {})}, card)
