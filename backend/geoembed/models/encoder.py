"""A location encoder assembled from any positional encoding and any network (architecture "encoder").

Card entry: {"name": "encoder", "params": {"encoding": {"name": "sh", "degrees": 40},
                                          "network": {"name": "siren", "dim_out": 256, "hidden": 512}}}.
"""

from __future__ import annotations

import torch
from torch import nn

from ..encodings import build_encoding
from .networks import build_network


class LocationEncoder(nn.Module):
    """network(encoding(lonlat)). Input (N, 2) (lon, lat) degrees; the encoding runs in float64."""

    def __init__(self, encoding: dict, network: dict):
        super().__init__()
        self.encoding = build_encoding(encoding)
        self.network = build_network(network, self.encoding.dim)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        dtype = next(self.network.parameters()).dtype
        return self.network(self.encoding(lonlat, dtype=dtype))
