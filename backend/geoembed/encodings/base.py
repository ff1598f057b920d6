"""What every positional encoding shares: the (lon, lat) input contract and exact trigonometry in degrees."""

from __future__ import annotations

import math

import torch
from torch import nn


def check_lonlat(lonlat: torch.Tensor) -> torch.Tensor:
    """``lonlat`` as an (N, 2) float64 tensor of (lon, lat) degrees; ValueError on any other shape."""
    if not isinstance(lonlat, torch.Tensor) or lonlat.ndim != 2 or lonlat.shape[1] != 2:
        shape = tuple(lonlat.shape) if isinstance(lonlat, torch.Tensor) else type(lonlat).__name__
        raise ValueError(f"expected an (N, 2) tensor of (lon, lat) degrees, got {shape}")
    return lonlat.to(torch.float64)


def sincos_deg(angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin, cos) of an angle in degrees, float64, exact at multiples of 90 degrees (sin 90 = 1, cos 90 = 0).

    The angle is reduced to [-45, 45] degrees before the conversion to radians, then rotated by its quadrant.
    """
    angle = angle.to(torch.float64)
    quadrant = torch.round(angle / 90.0)
    rest = torch.deg2rad(angle - 90.0 * quadrant)
    s, c = torch.sin(rest), torch.cos(rest)
    q = torch.remainder(quadrant, 4.0)
    sin = torch.where(q == 0, s, torch.where(q == 1, c, torch.where(q == 2, -s, -c)))
    cos = torch.where(q == 0, c, torch.where(q == 1, -s, torch.where(q == 2, -c, s)))
    return sin, cos


def geometric_scales(min_radius: float, max_radius: float, frequency_num: int) -> torch.Tensor:
    """Angular frequencies 1 / (r_min g^(s/(S-1))), g = r_max / r_min, s = 0..S-1 (Space2Vec, Sphere2Vec), float64."""
    if not (0 < min_radius < max_radius) or not math.isfinite(max_radius):
        raise ValueError(f"need 0 < min_radius < max_radius, got {min_radius} and {max_radius}")
    if not 1 <= int(frequency_num) <= 1024:
        raise ValueError(f"frequency_num must be between 1 and 1024, got {frequency_num}")
    s = torch.arange(int(frequency_num), dtype=torch.float64)
    exponent = s / max(int(frequency_num) - 1, 1)
    return 1.0 / (min_radius * (max_radius / min_radius) ** exponent)


class Encoding(nn.Module):
    """A positional encoding: (N, 2) (lon, lat) degrees -> (N, dim) features.

    Subclasses set ``dim`` and implement ``encode(lon, lat)`` on float64 degree vectors, returning float64.
    """

    dim: int

    def _apply(self, fn, recurse=True):
        """Moves and casts like any module, except that buffers keep their dtype and values (float64 stays float64)."""
        originals = {name: b for name, b in self._buffers.items() if b is not None}
        super()._apply(fn, recurse)
        for name, b in originals.items():
            self._buffers[name] = b.to(device=self._buffers[name].device)
        return self

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, lonlat: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        lonlat = check_lonlat(lonlat)
        return self.encode(lonlat[:, 0], lonlat[:, 1]).to(dtype)
