"""Low-dimensional encodings: direct, cartesian3d and wrap.

    direct       [lon / 180, lat / 90]                                   (coordinates scaled to [-1, 1])
    cartesian3d  [cos(lat) cos(lon), cos(lat) sin(lon), sin(lat)]         (unit vector, e.g. Russwurm et al. 2024)
    wrap         [sin(pi x), cos(pi x), sin(pi y), cos(pi y)], x = lon / 180, y = lat / 90
                 (Mac Aodha, Cole and Perona 2019, ICCV, "Presence-only geographical priors")
"""

from __future__ import annotations

import torch

from .base import Encoding, sincos_deg


class Direct(Encoding):
    """(lon, lat) scaled to [-1, 1]."""

    dim = 2

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        return torch.stack((lon / 180.0, lat / 90.0), dim=1)


class Cartesian3D(Encoding):
    """Unit vector on the sphere (x towards lon 0, z towards the north pole)."""

    dim = 3

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        sin_lon, cos_lon = sincos_deg(lon)
        sin_lat, cos_lat = sincos_deg(lat)
        return torch.stack((cos_lat * cos_lon, cos_lat * sin_lon, sin_lat), dim=1)


class Wrap(Encoding):
    """Mac Aodha et al.'s wrap: one period over the longitude range, one over the latitude range."""

    dim = 4

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        sin_x, cos_x = sincos_deg(lon)
        sin_y, cos_y = sincos_deg(2.0 * lat)
        return torch.stack((sin_x, cos_x, sin_y, cos_y), dim=1)
