"""GeoCLIP's location encoder (Vivanco Cepeda et al., NeurIPS 2023), written from the paper.

(lat, lon) -> Equal Earth projection scaled by 66.50336/180 -> for each sigma a branch
RFF(2 pi B v, 256 frequencies) -> [cos, sin] (512) -> 1024 -> 1024 -> 1024 -> 512 with ReLU;
the branch outputs are summed into a 512-d embedding. Our ``forward`` takes (lon, lat) degrees
like every GeoEmbed encoder; the swap to GeoCLIP's (lat, lon) happens inside.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..coords import EARTH_RADIUS_KM

# Equal Earth polynomial coefficients (Savric, Patterson and Jenny 2018) and GeoCLIP's scale.
_A1, _A2, _A3, _A4 = 1.340264, -0.081106, 0.000893, 0.003796
_SCALE = 66.50336


def equal_earth(lonlat: torch.Tensor) -> torch.Tensor:
    """Equal Earth projection of (lon, lat) degrees, scaled as in GeoCLIP; returns (x, y), float64."""
    lonlat = lonlat.to(torch.float64)
    lon, lat = torch.deg2rad(lonlat[:, 0]), torch.deg2rad(lonlat[:, 1])
    theta = torch.asin(math.sqrt(3.0) / 2.0 * torch.sin(lat))
    t2 = theta * theta
    denominator = 3.0 * (9.0 * _A4 * t2**4 + 7.0 * _A3 * t2**3 + 3.0 * _A2 * t2 + _A1)
    x = 2.0 * math.sqrt(3.0) * lon * torch.cos(theta) / denominator
    y = theta * (_A1 + t2 * (_A2 + t2 * t2 * (_A3 + _A4 * t2)))
    return torch.stack((x, y), dim=1) * (_SCALE / 180.0)


class FourierBranch(nn.Module):
    """One random-Fourier-feature branch: RFF then an MLP with ReLU."""

    def __init__(self, frequencies: int, hidden: int, depth: int, out_dim: int):
        super().__init__()
        # Frequencies are part of the trained model: stored, never re-drawn.
        self.register_buffer("b", torch.zeros(frequencies, 2))
        layers: list[nn.Module] = []
        width = 2 * frequencies
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        # The phase reaches ~1e3 rad for sigma = 256: form it in float64, then drop to float32.
        phase = (2.0 * math.pi) * (xy @ self.b.to(torch.float64).T)
        features = torch.cat((torch.cos(phase), torch.sin(phase)), dim=1).to(self.head.weight.dtype)
        return self.head(self.mlp(features))


class GeoCLIPLocationEncoder(nn.Module):
    """Sum of RFF branches over an Equal Earth projection. Input (N, 2) (lon, lat) degrees."""

    def __init__(self, sigmas=(1.0, 16.0, 256.0), frequencies: int = 256, hidden: int = 1024,
                 depth: int = 3, out_dim: int = 512):
        super().__init__()
        self.sigmas = tuple(float(s) for s in sigmas)
        self.out_dim = out_dim
        self.branches = nn.ModuleList(FourierBranch(frequencies, hidden, depth, out_dim) for _ in self.sigmas)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        xy = equal_earth(lonlat)
        out = self.branches[0](xy)
        for branch in self.branches[1:]:
            out = out + branch(xy)
        return out

    def resolution_km(self, max_lat: float = 60.0) -> float:
        """Shortest ground wavelength (km) of the Fourier features within ``max_lat``: the finest scale resolved.

        Measured from the stored frequencies and Equal Earth's largest stretch (projected units per km);
        the stretch grows toward the poles, where band-limited evaluation refines by verification.
        """
        frequency = max(float(branch.b.norm(dim=1).max()) for branch in self.branches)
        return 1.0 / (frequency * _max_stretch(max_lat))


def _max_stretch(max_lat: float, step: float = 1e-4) -> float:
    """Largest singular value of the scaled Equal Earth Jacobian (units per km) over |lat| <= ``max_lat``."""
    lon, lat = torch.meshgrid(torch.linspace(-179.0, 179.0, 359, dtype=torch.float64),
                              torch.linspace(-max_lat, max_lat, 121, dtype=torch.float64), indexing="ij")
    lonlat = torch.stack((lon.ravel(), lat.ravel()), dim=1)
    xy = equal_earth(lonlat)
    km_per_deg = EARTH_RADIUS_KM * math.pi / 180.0 * step
    east = (equal_earth(lonlat + torch.tensor([step, 0.0], dtype=torch.float64)) - xy) / (
        km_per_deg * torch.cos(torch.deg2rad(lonlat[:, 1:2])))
    north = (equal_earth(lonlat + torch.tensor([0.0, step], dtype=torch.float64)) - xy) / km_per_deg
    return float(torch.linalg.matrix_norm(torch.stack((east, north), dim=2), ord=2).max())


def convert_geoclip_state_dict(state: dict[str, torch.Tensor], n_branches: int = 3) -> dict[str, torch.Tensor]:
    """Map GeoCLIP's released keys (LocEnc{i}.capsule.{0,1,3,5}, head.0) onto ours."""
    mlp_index = {"1": "0", "3": "2", "5": "4"}
    out: dict[str, torch.Tensor] = {}
    for i in range(n_branches):
        src, dst = f"LocEnc{i}.", f"branches.{i}."
        out[dst + "b"] = state[src + "capsule.0.b"]
        for theirs, ours in mlp_index.items():
            for p in ("weight", "bias"):
                out[f"{dst}mlp.{ours}.{p}"] = state[f"{src}capsule.{theirs}.{p}"]
        for p in ("weight", "bias"):
            out[f"{dst}head.{p}"] = state[f"{src}head.0.{p}"]
    expected = {f"LocEnc{i}.{k}" for i in range(n_branches) for k in
                ["capsule.0.b", *(f"capsule.{j}.{p}" for j in "135" for p in ("weight", "bias")),
                 "head.0.weight", "head.0.bias"]}
    unknown = set(state) - expected
    if unknown:
        raise ValueError(f"unexpected keys in GeoCLIP weights: {sorted(unknown)[:5]}")
    return {k: v.contiguous() for k, v in out.items()}
