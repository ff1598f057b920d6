"""Evaluate a stored location encoder on (lon, lat) arrays, in bounded batches."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .coords import destination
from .models import registry
from .pca import PCABasis
from .store import CARD, PCA, WEIGHTS, ModelStore, sha256_file

RING_POINTS = 6  # positions around each point for smooth_km


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (rows of zeros stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class LocationEmbedder:
    """A model from the store, ready to embed positions.

    ``embed(lon, lat)`` takes float64 degrees and returns float32 (N, D) embeddings. ``embed(..., fast=True)``
    evaluates the matrix products in bfloat16 where the CPU has matrix units for it (``fast_available``): about 5x
    faster for GeoCLIP, with embeddings about 1e-4 off in cosine terms, for callers that verify what they get.
    """

    def __init__(self, model_id: str, store: ModelStore | None = None, device: str = "cpu",
                 batch_size: int = 8192, verify: bool = True):
        self.store = store or ModelStore()
        self.model_id = model_id
        self.dir: Path = self.store.path(model_id)
        self.card = self.store.card(model_id)
        weights = self.dir / WEIGHTS
        if verify and sha256_file(weights) != self.card["weights"]["sha256"]:
            raise ValueError(f"{weights} does not match the sha256 in its card: reinstall model {model_id!r}")
        self.device = torch.device(device)
        self.model = registry.load(self.card["architecture"], weights).to(self.device)
        self.dim: int = int(self.card["dimension"])
        self.batch_size = batch_size
        self._pca: PCABasis | None = None
        self._fast: nn.Module | None = None

    @property
    def weights_sha256(self) -> str:
        return self.card["weights"]["sha256"]

    @property
    def resolution_km(self) -> float | None:
        """The finest ground scale (km) the model resolves: from its card, else measured from the network if it can."""
        if self.card.get("resolution_km"):
            return float(self.card["resolution_km"])
        measure = getattr(self.model, "resolution_km", None)
        return measure() if measure else None

    @property
    def pca(self) -> PCABasis:
        if self._pca is None:
            path = self.dir / PCA
            if not path.is_file():
                raise FileNotFoundError(f"model {self.model_id!r} has no PCA basis ({path})")
            self._pca = PCABasis.load(path)
        return self._pca

    @property
    def fast_available(self) -> bool:
        """Whether ``embed(..., fast=True)`` is faster here: on a CPU with AMX tiles (bfloat16 matrix products ran
        8x float32's rate on one); elsewhere it would be slower, and is plain float32."""
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return self.device.type == "cpu" and bool(amx and amx())

    def embed(self, lon: np.ndarray, lat: np.ndarray, on_batch: Callable[[int, int], None] | None = None,
              fast: bool = False, smooth_km: float | Sequence[float] = 0.0) -> np.ndarray:
        """``on_batch(done, total)`` is called before every batch and once at the end (e.g. to report progress
        or to stop on a cancel request). ``smooth_km`` > 0: each embedding is the mean of the unit-length
        embeddings at the position and at RING_POINTS positions ``smooth_km`` away (bearings 0, 60, ... 300
        degrees): the encoder smoothed over that ground distance, at RING_POINTS + 1 times the cost.
        ``smooth_km`` a sequence of radii (0: not smoothed): the embeddings at each, side by side, (N, D x radii);
        the position itself is embedded once for all of them."""
        radii = (smooth_km,) if np.isscalar(smooth_km) else tuple(smooth_km)
        if not radii or not all(math.isfinite(km) and km >= 0 for km in radii):
            raise ValueError(f"smooth_km must be one or more positive numbers of km or 0, got {smooth_km!r}")
        if radii == (0,):
            return self._embed(lon, lat, on_batch, fast)
        lon, lat = np.asarray(lon, np.float64).ravel(), np.asarray(lat, np.float64).ravel()
        rings = [km for km in dict.fromkeys(radii) if km > 0]
        parts = 1 + RING_POINTS * len(rings)

        def report(k: int) -> Callable[[int, int], None] | None:
            return None if on_batch is None else (lambda done, n: on_batch(k * n + done, parts * n))
        centre = self._embed(lon, lat, report(0), fast)
        unit_centre = unit_rows(centre)
        smoothed = {}
        for r, km in enumerate(rings):
            total = unit_centre.copy()
            for k in range(RING_POINTS):
                e = self._embed(*destination(lon, lat, k * 360.0 / RING_POINTS, km), report(1 + r * RING_POINTS + k),
                                fast)
                total += unit_rows(e)
            smoothed[km] = total / (RING_POINTS + 1)
        return np.concatenate([smoothed[km] if km > 0 else centre for km in radii], axis=1)

    @torch.inference_mode()
    def _embed(self, lon: np.ndarray, lat: np.ndarray, on_batch: Callable[[int, int], None] | None,
               fast: bool) -> np.ndarray:
        fast = fast and self.fast_available
        model = self._bfloat16_model() if fast else self.model
        lonlat = np.stack([np.asarray(lon, np.float64).ravel(), np.asarray(lat, np.float64).ravel()], axis=1)
        out = np.empty((len(lonlat), self.dim), dtype=np.float32)
        for start in range(0, len(lonlat), self.batch_size):
            if on_batch:
                on_batch(start, len(lonlat))
            chunk = torch.from_numpy(lonlat[start:start + self.batch_size]).to(self.device)
            rows = len(chunk)
            if fast:  # oneDNN builds a kernel for every new row count (~6 ms each): use a few sizes only
                chunk = torch.cat((chunk, chunk[:1].expand(_bucket(rows) - rows, 2)))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=fast):
                out[start:start + rows] = model(chunk)[:rows].float().cpu().numpy()
        if on_batch:
            on_batch(len(lonlat), len(lonlat))
        return out

    def _bfloat16_model(self) -> nn.Module:
        """The model with its linear layers' weights in bfloat16, cast once (autocast would cast them every call);
        positional encodings keep their own precision."""
        if self._fast is None:
            self._fast = copy.deepcopy(self.model)
            for module in self._fast.modules():
                if isinstance(module, nn.Linear):
                    module.to(torch.bfloat16)
        return self._fast


def _bucket(rows: int) -> int:
    """``rows`` rounded up to a power of two up to 256, then to a multiple of 256."""
    return 1 << max(rows - 1, 0).bit_length() if rows <= 256 else -(-rows // 256) * 256


_LOADED: dict[tuple[str, str], tuple[tuple, LocationEmbedder]] = {}


def _stamp(folder: Path) -> tuple:
    """What changes when a model is re-installed: its files' modification times and sizes."""
    stamp = []
    for name in (CARD, WEIGHTS, PCA):
        try:
            st = (folder / name).stat()
            stamp.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            stamp.append(None)
    return tuple(stamp)


def load_embedder(model_id: str, device: str = "cpu") -> tuple[LocationEmbedder, bool]:
    """The model on ``device``, kept loaded for later calls in this process (the warm worker serves many); and
    whether it was already loaded. A model re-installed since it was loaded is loaded afresh."""
    folder = ModelStore().path(model_id)
    key, stamp = (str(folder), device), _stamp(folder)
    cached = _LOADED.get(key)
    if cached and cached[0] == stamp:
        return cached[1], True
    embedder = LocationEmbedder(model_id, device=device)
    _LOADED[key] = (stamp, embedder)
    return embedder, False
