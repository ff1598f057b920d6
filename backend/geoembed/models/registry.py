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
    return model.eval().requires_grad_(False).to(torch.float32)
