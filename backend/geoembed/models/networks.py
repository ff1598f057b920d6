"""Networks that map encoded positions to embeddings: linear, MLP, residual FCNet and SIREN, by name.

    linear  y = W x + b
    mlp     (Linear, ReLU, Dropout) x layers, then Linear
    fcnet   Linear, ReLU, then ``blocks`` residual blocks x + ReLU(W2 Dropout(ReLU(W1 x))), then Linear without
            bias (Mac Aodha, Cole and Perona 2019, ICCV)
    siren   ``layers`` sine layers sin(w0 (W x + b)), then Linear (Sitzmann et al. 2020, NeurIPS). Initialisation as
            published: first layer U(-1/n, 1/n), later layers U(-sqrt(6/n)/w0, sqrt(6/n)/w0), n = fan-in, for
            weights and biases; w0 = ``w0_initial`` (30) on the first layer, ``w0`` (1) after it, as in SatCLIP.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..specs import build_from_spec


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 16:
            raise ValueError(f"network: {name} must be an integer from 1 to 65536, got {value!r}")


def mlp(dim_in: int, dim_out: int, hidden: int = 256, layers: int = 2, dropout: float = 0.0) -> nn.Sequential:
    """ReLU multi-layer perceptron with ``layers`` hidden layers."""
    _check_sizes(dim_in=dim_in, dim_out=dim_out, hidden=hidden, layers=layers)
    modules: list[nn.Module] = []
    width = dim_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    return nn.Sequential(*modules, nn.Linear(width, dim_out))


def linear(dim_in: int, dim_out: int) -> nn.Linear:
    _check_sizes(dim_in=dim_in, dim_out=dim_out)
    return nn.Linear(dim_in, dim_out)


class ResidualBlock(nn.Module):
    """x + ReLU(W2 Dropout(ReLU(W1 x)))."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.w2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.w2(self.dropout(torch.relu(self.w1(x)))))


class FCNet(nn.Module):
    """Residual fully connected network."""

    def __init__(self, dim_in: int, dim_out: int, hidden: int = 256, blocks: int = 4, dropout: float = 0.5):
        super().__init__()
        _check_sizes(dim_in=dim_in, dim_out=dim_out, hidden=hidden, blocks=blocks)
        self.stem = nn.Linear(dim_in, hidden)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, dropout) for _ in range(blocks)))
        self.head = nn.Linear(hidden, dim_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(torch.relu(self.stem(x))))


def siren_init_(layer: nn.Linear, w0: float, first: bool) -> nn.Linear:
    """SIREN's uniform initialisation of weights and bias, in place."""
    bound = 1.0 / layer.in_features if first else math.sqrt(6.0 / layer.in_features) / w0
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
        layer.bias.uniform_(-bound, bound)
    return layer


class SineLayer(nn.Linear):
    """sin(w0 (W x + b)) with SIREN's initialisation; dropout on the pre-activation while training."""

    def __init__(self, dim_in: int, dim_out: int, w0: float, first: bool, dropout: float = 0.0):
        super().__init__(dim_in, dim_out)
        self.w0, self.p = float(w0), float(dropout)
        siren_init_(self, self.w0, first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.dropout(super().forward(x), self.p, self.training)
        return torch.sin(self.w0 * out)


class Siren(nn.Module):
    """Sinusoidal representation network: ``layers`` sine layers and a linear last layer."""

    def __init__(self, dim_in: int, dim_out: int, hidden: int = 256, layers: int = 2, w0: float = 1.0,
                 w0_initial: float = 30.0, dropout: float = 0.0):
        super().__init__()
        _check_sizes(dim_in=dim_in, dim_out=dim_out, hidden=hidden, layers=layers)
        self.layers = nn.ModuleList(
            SineLayer(dim_in if i == 0 else hidden, hidden, w0_initial if i == 0 else w0, i == 0, dropout)
            for i in range(layers))
        self.last_layer = siren_init_(nn.Linear(hidden, dim_out), w0, first=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.last_layer(x)


NETWORKS: dict[str, Callable[..., nn.Module]] = {"linear": linear, "mlp": mlp, "fcnet": FCNet, "siren": Siren}


def build_network(spec: dict, dim_in: int) -> nn.Module:
    """A network from ``{"name": ..., "dim_out": ..., **params}`` for inputs of width ``dim_in``."""
    return build_from_spec(spec, NETWORKS, "network", dim_in)
