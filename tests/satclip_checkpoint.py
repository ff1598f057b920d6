"""A small checkpoint laid out like SatCLIP's Lightning checkpoints, built from seeded plain tensors (no SatCLIP code).

Run as ``python -m tests.satclip_checkpoint PATH`` to write one (the QGIS tests do, to keep torch out of QGIS).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch


def hyper_parameters(**overrides) -> dict:
    """SatCLIPLightningModule's saved hyper-parameters for a small L = 10 model."""
    return {"embed_dim": 8, "image_resolution": 256, "vision_layers": "moco_resnet18", "vision_width": 768,
            "vision_patch_size": 32, "in_channels": 13, "le_type": "sphericalharmonics", "pe_type": "siren",
            "frequency_num": 16, "max_radius": 260, "min_radius": 1, "legendre_polys": 10,
            "harmonics_calculation": "analytic", "sh_embedding_dims": 32, "learning_rate": 1e-4,
            "weight_decay": 0.01, "num_hidden_layers": 2, "capacity": 32, **overrides}


def siren_weights(hp: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """SatCLIP's SirenNet parameters in float64 with its initialisation: U(-1/n, 1/n) first, then U(-sqrt(6/n))."""
    generator = torch.Generator().manual_seed(seed)
    widths = [hp["legendre_polys"] ** 2] + [hp["capacity"]] * hp["num_hidden_layers"]
    names = [f"layers.{i}" for i in range(hp["num_hidden_layers"])] + ["last_layer"]
    outs = widths[1:] + [hp["embed_dim"]]
    weights = {}
    for i, (name, fan_in, fan_out) in enumerate(zip(names, widths, outs)):
        bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in)
        for part, shape in (("weight", (fan_out, fan_in)), ("bias", (fan_out,))):
            weights[f"{name}.{part}"] = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
    return weights


def checkpoint(seed: int = 0, **overrides) -> dict:
    """The whole checkpoint: location encoder under model.location.nnet.* and model.nnet.*, plus the rest."""
    hp = hyper_parameters(**overrides)
    nnet = siren_weights(hp, seed)
    state = {"model.visual.conv1.weight": torch.zeros(4, 13, 3, 3), "model.logit_scale": torch.tensor(2.6592)}
    state.update({f"model.location.nnet.{k}": v for k, v in nnet.items()})
    state.update({f"model.nnet.{k}": v for k, v in nnet.items()})
    return {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.0.0", "state_dict": state,
            "hyper_parameters": hp, "loops": {}, "callbacks": {}, "lr_schedulers": [],
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": []}]}]}


def write(path: Path, seed: int = 0, **overrides) -> Path:
    torch.save(checkpoint(seed, **overrides), path)
    return path


if __name__ == "__main__":
    write(Path(sys.argv[1]))
