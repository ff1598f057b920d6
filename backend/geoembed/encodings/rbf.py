"""Gaussian radial basis functions around fixed centres (the rbf baseline of Mai et al. 2020, ICLR), on the sphere.

    rbf_k = exp(-d_k^2 / (2 sigma^2)),  d_k = great-circle angle in degrees between (lon, lat) and centre k

d_k by the haversine formula, accurate at small distances. Centres are (lon, lat) degrees, part of the parameters;
an integer n stands for n centres spread evenly over the sphere (a Fibonacci lattice).
"""

from __future__ import annotations

import numpy as np
import torch

from ..coords import fibonacci_lattice
from .base import Encoding


class RadialBasis(Encoding):
    """One Gaussian feature per centre."""

    def __init__(self, centres: list[list[float]] | int = 256, sigma: float = 10.0):
        super().__init__()
        if isinstance(centres, int) and not isinstance(centres, bool):
            if not 1 <= centres <= 1 << 16:
                raise ValueError(f"rbf: the number of centres must be from 1 to 65536, got {centres}")
            centres = np.stack(fibonacci_lattice(centres), axis=1).tolist()
        c = torch.as_tensor(centres, dtype=torch.float64)
        if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] != 2 or not torch.isfinite(c).all():
            raise ValueError("rbf: centres must be a non-empty list of finite [lon, lat] pairs (degrees)")
        if not sigma > 0:
            raise ValueError(f"rbf: sigma must be positive (degrees), got {sigma}")
        self.register_buffer("centres", c, persistent=False)
        self.sigma = float(sigma)
        self.dim = c.shape[0]

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        lam, phi = torch.deg2rad(lon)[:, None], torch.deg2rad(lat)[:, None]
        lam_c, phi_c = torch.deg2rad(self.centres[:, 0]), torch.deg2rad(self.centres[:, 1])
        hav = torch.sin((phi - phi_c) / 2) ** 2 + torch.cos(phi) * torch.cos(phi_c) * torch.sin((lam - lam_c) / 2) ** 2
        d = torch.rad2deg(2.0 * torch.asin(torch.sqrt(hav.clamp(0.0, 1.0))))
        return torch.exp(-(d * d) / (2.0 * self.sigma**2))
