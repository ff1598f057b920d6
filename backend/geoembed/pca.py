"""A PCA basis of a model's embeddings, fitted once on an equal-area global sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PCABasis:
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (K, D), rows orthonormal, by decreasing variance
    explained_variance_ratio: np.ndarray  # (K,)

    @classmethod
    def fit(cls, embeddings: np.ndarray) -> PCABasis:
        x = np.asarray(embeddings, dtype=np.float64)
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        var = s**2
        return cls(mean, vt, var / var.sum())

    def project(self, embeddings: np.ndarray, dims: int) -> np.ndarray:
        """The first ``dims`` principal components of (N, D) embeddings, float32."""
        basis = self.components[:dims].astype(np.float32)
        return (embeddings - self.mean.astype(np.float32)) @ basis.T

    @property
    def max_dims(self) -> int:
        return self.components.shape[0]

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, mean=self.mean, components=self.components,
                     explained_variance_ratio=self.explained_variance_ratio)

    @classmethod
    def load(cls, path: Path) -> PCABasis:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["components"], data["explained_variance_ratio"])
