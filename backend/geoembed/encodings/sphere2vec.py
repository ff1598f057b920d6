"""Sphere2Vec multi-scale encodings (Mai et al. 2023, ISPRS J. Photogramm. 202:439, arXiv:2201.10489).

With lambda = lon and phi = lat in radians and S angular frequencies w_s = 1 / (r_min g^(s/(S-1))),
g = r_max / r_min (radii in radians), features are grouped per scale s (feature-major within a scale):

    sphereC   [sin(phi w), cos(phi w) cos(lambda w), cos(phi w) sin(lambda w)]                         3S
    sphereC+  sphereC and [cos(phi w), sin(lambda w), cos(lambda w)] (sphereC with grid)              6S
    sphereM   [sin(phi w), cos(phi w) cos(lambda), cos(phi) cos(lambda w),
               cos(phi w) sin(lambda), cos(phi) sin(lambda w)]                                          5S
    sphereM+  sphereM and [cos(phi w), sin(lambda w), cos(lambda w)]                                    8S
    dfs       [sin(phi w_s), cos(phi w_s)], [sin(lambda w_s), cos(lambda w_s)] for all s and the products
              {sin, cos}(phi w_n) x {sin, cos}(lambda w_m) for all pairs (n, m)                        4S + 4S^2

(dfs: the Double Fourier Sphere basis of Orszag 1974 as written in Sphere2Vec, eq. 11.)
"""

from __future__ import annotations

import torch

from .base import Encoding, geometric_scales, sincos_deg

VARIANTS = {"spherec": 3, "spherec+": 6, "spherem": 5, "spherem+": 8}


class Sphere2Vec(Encoding):
    """sphereC, sphereC+, sphereM, sphereM+ (``variant``), radii in radians."""

    def __init__(self, variant: str = "spherec+", min_radius: float = 1e-3, max_radius: float = 1.0,
                 frequency_num: int = 16):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown Sphere2Vec variant {variant!r}; known: {', '.join(VARIANTS)}")
        self.variant = variant
        self.register_buffer("scales", geometric_scales(min_radius, max_radius, frequency_num), persistent=False)
        self.dim = VARIANTS[variant] * int(frequency_num)

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        lam, phi = torch.deg2rad(lon)[:, None], torch.deg2rad(lat)[:, None]
        lam_s, phi_s = lam * self.scales, phi * self.scales
        sin_phi_s, cos_phi_s = torch.sin(phi_s), torch.cos(phi_s)
        sin_lam_s, cos_lam_s = torch.sin(lam_s), torch.cos(lam_s)
        if self.variant.startswith("spherec"):
            parts = [sin_phi_s, cos_phi_s * cos_lam_s, cos_phi_s * sin_lam_s]
            if self.variant == "spherec+":
                parts += [cos_phi_s, sin_lam_s, cos_lam_s]
        else:
            sin_lat, cos_lat = sincos_deg(lat)
            sin_lon, cos_lon = sincos_deg(lon)
            cos_lat, sin_lon, cos_lon = cos_lat[:, None], sin_lon[:, None], cos_lon[:, None]
            parts = [sin_phi_s, cos_phi_s * cos_lon, cos_lat * cos_lam_s, cos_phi_s * sin_lon, cos_lat * sin_lam_s]
            if self.variant == "spherem+":
                parts += [cos_phi_s, sin_lam_s, cos_lam_s]
        return torch.stack(parts, dim=2).reshape(lon.shape[0], -1)


class DoubleFourierSphere(Encoding):
    """Sphere2Vec's dfs: single-axis terms then all latitude x longitude products, radii in radians."""

    def __init__(self, min_radius: float = 1e-3, max_radius: float = 1.0, frequency_num: int = 16):
        super().__init__()
        self.register_buffer("scales", geometric_scales(min_radius, max_radius, frequency_num), persistent=False)
        s = int(frequency_num)
        self.dim = 4 * s + 4 * s * s

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        lam_s, phi_s = torch.deg2rad(lon)[:, None] * self.scales, torch.deg2rad(lat)[:, None] * self.scales
        lat_terms = torch.stack((torch.sin(phi_s), torch.cos(phi_s)), dim=2)  # (N, S, 2)
        lon_terms = torch.stack((torch.sin(lam_s), torch.cos(lam_s)), dim=2)
        products = lat_terms[:, :, None, :, None] * lon_terms[:, None, :, None, :]  # (N, S, S, 2, 2)
        n = lon.shape[0]
        return torch.cat((lat_terms.reshape(n, -1), lon_terms.reshape(n, -1), products.reshape(n, -1)), dim=1)
