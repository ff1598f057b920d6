"""Architectures by name, so a model card can say how to rebuild its network."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file
from torch import nn

from .encoder import LocationEncoder
from .geoclip import GeoCLIPLocationEncoder

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "geoclip": GeoCLIPLocationEncoder,
    "encoder": LocationEncoder,
}


def build(architecture: dict) -> nn.Module:
    """An untrained network from a card's ``architecture`` entry ({"name", "params"})."""
    name = architecture.get("name")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name](**architecture.get("params", {}))


def load(architecture: dict, weights: Path) -> nn.Module:
    """The network with its weights (safetensors, strict key match), in eval mode."""
    model = build(architecture)
    state = load_file(str(weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"weights in {weights} do not fit architecture {architecture['name']!r}: {err}") from err
    return without_subnormals(model.eval().requires_grad_(False).to(torch.float32))


def without_subnormals(model: nn.Module) -> nn.Module:
    """``model`` with subnormal weights (|w| < 1.2e-38, e.g. 0.6 % of GeoCLIP's) set to 0: on x86 CPUs every
    product with a subnormal takes a slow path, which made GeoCLIP's matrix products 5x slower. Their effect on
    any output is below 1e-30."""
    tiny = torch.finfo(torch.float32).tiny
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.dtype == torch.float32:
                tensor.masked_fill_(tensor.abs() < tiny, 0.0)
    return model
