"""Space2Vec multi-scale encodings (Mai et al. 2020, ICLR, arXiv:2002.12071) on (lon, lat) in degrees.

Scales lambda_s = r_min g^(s/(S-1)), g = r_max / r_min (radii in degrees), s = 0..S-1.

    grid    for each s and axis x in (lon, lat): [sin(x / lambda_s), cos(x / lambda_s)]                    4S
    theory  for each s and unit vector a_j at 0, 120 and 240 degrees:
            [sin(<v, a_j> / lambda_s), cos(<v, a_j> / lambda_s)], v = (lon, lat)                           6S
"""

from __future__ import annotations

import math

import torch

from .base import Encoding, geometric_scales

_UNIT_VECTORS = ((1.0, 0.0), (-0.5, math.sqrt(3.0) / 2.0), (-0.5, -math.sqrt(3.0) / 2.0))


class _MultiScale(Encoding):
    DIRECTIONS: tuple[tuple[float, float], ...]

    def __init__(self, min_radius: float = 1.0, max_radius: float = 360.0, frequency_num: int = 16):
        super().__init__()
        self.register_buffer("directions", torch.tensor(self.DIRECTIONS, dtype=torch.float64), persistent=False)
        self.register_buffer("scales", geometric_scales(min_radius, max_radius, frequency_num), persistent=False)
        self.dim = 2 * len(self.DIRECTIONS) * int(frequency_num)

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        projected = torch.stack((lon, lat), dim=1) @ self.directions.T  # (N, D)
        angle = projected[:, None, :] * self.scales[None, :, None]  # (N, S, D)
        return torch.stack((torch.sin(angle), torch.cos(angle)), dim=3).reshape(lon.shape[0], -1)


class Grid(_MultiScale):
    """Space2Vec grid: sinusoids of lon and lat at S scales."""

    DIRECTIONS = ((1.0, 0.0), (0.0, 1.0))


class Theory(_MultiScale):
    """Space2Vec theory: sinusoids along three unit vectors 120 degrees apart, at S scales."""

    DIRECTIONS = _UNIT_VECTORS
