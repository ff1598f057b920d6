"""Fourier-feature encodings: Gaussian random Fourier features and NeRF-style frequency bands.

    rff   [cos(2 pi B v), sin(2 pi B v)], B (F, 2) drawn from N(0, sigma^2) with ``seed``            2F
          (Rahimi and Recht 2007; Tancik et al. 2020). v = (lon, lat) in radians, or with
          projection "equal_earth" the Equal Earth (x, y) scaled as in GeoCLIP (Vivanco Cepeda et al. 2023).
          B is a persistent buffer: it is stored with the weights and never redrawn for a trained model.
    nerf  for k = 0..K-1: [sin(2^k pi x), sin(2^k pi y), cos(2^k pi x), cos(2^k pi y)],
          x = lon / 180, y = lat / 90, optionally preceded by (x, y) (Mildenhall et al. 2020, ECCV)        4K (+2)
"""

from __future__ import annotations

import math

import torch

from ..models.geoclip import equal_earth
from .base import Encoding, sincos_deg

PROJECTIONS = ("none", "equal_earth")


class RandomFourierFeatures(Encoding):
    """Gaussian random Fourier features of (lon, lat) radians or of the Equal Earth projection."""

    def __init__(self, frequencies: int = 256, sigma: float = 1.0, seed: int = 0, projection: str = "none"):
        super().__init__()
        if projection not in PROJECTIONS:
            raise ValueError(f"rff: unknown projection {projection!r}; known: {', '.join(PROJECTIONS)}")
        if not 1 <= int(frequencies) <= 65536 or not sigma > 0:
            raise ValueError(f"rff: need 1 <= frequencies <= 65536 and sigma > 0, got {frequencies} and {sigma}")
        self.projection = projection
        generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("b", torch.randn(int(frequencies), 2, generator=generator, dtype=torch.float64) * sigma)
        self.dim = 2 * int(frequencies)

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        lonlat = torch.stack((lon, lat), dim=1)
        v = equal_earth(lonlat) if self.projection == "equal_earth" else torch.deg2rad(lonlat)
        phase = (2.0 * math.pi) * (v @ self.b.to(torch.float64).T)
        return torch.cat((torch.cos(phase), torch.sin(phase)), dim=1)


class NeRF(Encoding):
    """NeRF positional encoding of (lon, lat) scaled to [-1, 1], K octaves."""

    def __init__(self, frequency_num: int = 10, include_input: bool = False):
        super().__init__()
        if not 1 <= int(frequency_num) <= 40:
            raise ValueError(f"nerf: frequency_num must be between 1 and 40, got {frequency_num}")
        self.frequency_num = int(frequency_num)
        self.include_input = bool(include_input)
        self.dim = 4 * self.frequency_num + (2 if self.include_input else 0)

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        octaves = 2.0 ** torch.arange(self.frequency_num, dtype=torch.float64, device=lon.device)
        # 2^k pi x = 2^k lon degrees; 2^k pi y = 2^(k+1) lat degrees.
        sin_x, cos_x = sincos_deg(lon[:, None] * octaves)
        sin_y, cos_y = sincos_deg(lat[:, None] * (2.0 * octaves))
        features = torch.stack((sin_x, sin_y, cos_x, cos_y), dim=2).reshape(lon.shape[0], -1)
        if self.include_input:
            features = torch.cat((torch.stack((lon / 180.0, lat / 90.0), dim=1), features), dim=1)
        return features
