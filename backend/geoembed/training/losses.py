"""Contrastive objectives between image and location embeddings, and GeoCLIP's queue of GPS negatives.

Every loss L2-normalises its embeddings, so similarities s(a, b) = a . b / (|a| |b|) are cosines; CE(z, t) below is
the mean over rows of -log softmax(z)[t].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) cosine similarities of the rows of ``a`` and ``b``."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def _diagonal_ce(logits: torch.Tensor) -> torch.Tensor:
    """CE with row i's target in column i."""
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def _check_pairs(image_emb: torch.Tensor, location_emb: torch.Tensor) -> None:
    if image_emb.ndim != 2 or image_emb.shape != location_emb.shape:
        raise ValueError(f"image and location embeddings must both be (B, D), got {tuple(image_emb.shape)} and "
                         f"{tuple(location_emb.shape)}")


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over in-batch pairs with a learnable temperature (Radford et al. 2021, CLIP; as SatCLIP).

        z = exp(logit_scale) * s(I_i, X_j)
        L = (CE(z over [X; Q], i) + CE(z^T, i)) / 2

    ``logit_scale`` starts at log(1 / 0.07) and is clamped in place to <= log(100) at each forward (as CLIP clamps it
    after each step), so that it keeps receiving gradients. ``extra_location_emb`` Q (Q, D), e.g. GeoCLIP's GPS
    queue (Vivanco Cepeda et al. 2023, NeurIPS), adds negatives to the image -> location direction only.
    """

    def __init__(self, temperature: float = 0.07, max_logit_scale: float = math.log(100.0)):
        super().__init__()
        if not 0.0 < temperature < 1e6:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.max_logit_scale = float(max_logit_scale)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @property
    def temperature(self) -> float:
        """The temperature the next forward uses."""
        return math.exp(-min(self.logit_scale.item(), self.max_logit_scale))

    def forward(self, image_emb: torch.Tensor, location_emb: torch.Tensor,
                extra_location_emb: torch.Tensor | None = None) -> torch.Tensor:
        _check_pairs(image_emb, location_emb)
        with torch.no_grad():
            self.logit_scale.clamp_(max=self.max_logit_scale)
        scale = self.logit_scale.exp()
        logits = scale * _cosines(image_emb, location_emb)
        image_logits = logits
        if extra_location_emb is not None:
            image_logits = torch.cat([logits, scale * _cosines(image_emb, extra_location_emb)], dim=1)
        return (_diagonal_ce(image_logits) + _diagonal_ce(logits.T)) / 2


class MCBLDLoss(nn.Module):
    """CSP's multi-sample contrastive loss with in-batch, random-location and SimCSE negatives (Mai et al. 2023, ICML,
    "CSP: Self-Supervised Contrastive Spatial Pre-Training for Geospatial-Visual Representations", MC-BLD; the
    ``contsoftmax`` objective of github.com/gengchenmai/csp).

    With images I, their locations X, the same locations X' under another dropout mask and random locations R
    (uniform on the sphere)::

        L = L_B + random_weight * L_R + simcse_weight * L_S
        L_B = CE(s(X_i, I_j) / tau_batch, i)                   location -> image over the batch
              (+ CE(s(I_i, X_j) / tau_batch, i) if symmetric)
        L_R = CE([s(X_i, I_i), s(R_ik, I_i) for k] / tau_random, 0)
        L_S = CE(s(X_i, X'_j) / tau_simcse, i)                 SimCSE (Gao et al. 2021, EMNLP)

    ``random_location_emb`` is (K, D), K random locations shared by all images, or (B, K, D), K of them per image as
    in CSP's code. Defaults: all temperatures 1 and both weights 1, as in the published CSP runs (the iNat2018 model
    used tau_batch = 20, the fMoW model simcse_weight = 0.1).
    """

    def __init__(self, temperature_batch: float = 1.0, temperature_random: float = 1.0,
                 temperature_simcse: float = 1.0, random_weight: float = 1.0, simcse_weight: float = 1.0,
                 symmetric: bool = False):
        super().__init__()
        temperatures = (temperature_batch, temperature_random, temperature_simcse)
        if not all(0.0 < t < 1e6 for t in temperatures) or not (random_weight >= 0.0 and simcse_weight >= 0.0):
            raise ValueError(f"temperatures must be positive and weights >= 0, got {temperatures!r}, "
                             f"{random_weight!r}, {simcse_weight!r}")
        self.temperature_batch, self.temperature_random, self.temperature_simcse = map(float, temperatures)
        self.random_weight, self.simcse_weight = float(random_weight), float(simcse_weight)
        self.symmetric = bool(symmetric)

    def forward(self, image_emb: torch.Tensor, location_emb: torch.Tensor, location_emb_dropout: torch.Tensor,
                random_location_emb: torch.Tensor) -> torch.Tensor:
        _check_pairs(image_emb, location_emb)
        _check_pairs(image_emb, location_emb_dropout)
        batch = _cosines(location_emb, image_emb) / self.temperature_batch
        loss = _diagonal_ce(batch) + (_diagonal_ce(batch.T) if self.symmetric else 0.0)

        image = F.normalize(image_emb, dim=-1)
        positive = (F.normalize(location_emb, dim=-1) * image).sum(-1, keepdim=True)
        random = F.normalize(random_location_emb, dim=-1)
        if random.ndim == 2:
            negative = image @ random.T
        elif random.ndim == 3 and random.shape[0] == image.shape[0]:
            negative = torch.einsum("bd,bkd->bk", image, random)
        else:
            raise ValueError(f"random location embeddings must be (K, D) or (B, K, D), got {tuple(random.shape)}")
        random_logits = torch.cat([positive, negative], dim=1) / self.temperature_random
        zeros = torch.zeros(image.shape[0], dtype=torch.long, device=image.device)
        loss = loss + self.random_weight * F.cross_entropy(random_logits, zeros)

        simcse = _cosines(location_emb, location_emb_dropout) / self.temperature_simcse
        return loss + self.simcse_weight * _diagonal_ce(simcse)


class LocationQueue:
    """GeoCLIP's first-in first-out queue of the most recent ``size`` GPS positions (lon, lat), float64, whose
    embeddings serve as extra negatives (Vivanco Cepeda et al. 2023, NeurIPS). Read it with ``get`` before pushing
    the batch, so that a batch's own positions are not its negatives. Positions are kept on the CPU."""

    def __init__(self, size: int):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"queue size must be a positive integer, got {size!r}")
        self.size = size
        self._lonlat = torch.zeros((0, 2), dtype=torch.float64)

    def __len__(self) -> int:
        return self._lonlat.shape[0]

    def push(self, lonlat: torch.Tensor) -> None:
        """Append (N, 2) positions, dropping the oldest beyond ``size``."""
        if lonlat.ndim != 2 or lonlat.shape[1] != 2:
            raise ValueError(f"positions must be (N, 2) (lon, lat), got {tuple(lonlat.shape)}")
        new = lonlat.detach().to(device=self._lonlat.device, dtype=torch.float64)
        self._lonlat = torch.cat([self._lonlat, new])[-self.size:].clone()

    def get(self) -> torch.Tensor:
        """The queued positions (Q, 2), oldest first; (0, 2) while empty."""
        return self._lonlat

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"lonlat": self._lonlat.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        lonlat = state["lonlat"]
        if lonlat.ndim != 2 or lonlat.shape[1] != 2 or lonlat.shape[0] > self.size:
            raise ValueError(f"queue state must hold (Q, 2) positions with Q <= {self.size}, "
                             f"got {tuple(lonlat.shape)}")
        self._lonlat = lonlat.to("cpu", torch.float64).clone()
