"""SatCLIP location encoders (Klemmer et al., AAAI 2025) from their PyTorch Lightning checkpoints (.ckpt).

The file is read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only; any other
pickled object is refused and never executed. ``hyper_parameters`` select SatCLIP's location encoder, mapped as

    le_type "sphericalharmonics", harmonics_calculation "analytic", legendre_polys L
        -> encoding {"name": "sh", "degrees": L, "convention": "satclip-generated"}
    pe_type "siren", capacity, num_hidden_layers, embed_dim
        -> network {"name": "siren", "hidden": capacity, "layers": num_hidden_layers, "dim_out": embed_dim}

and the weights under ``model.location.nnet.`` (the same tensors also appear under ``model.nnet.``) become
``network.``. Absent hyper-parameters take SatCLIPLightningModule's defaults, as SatCLIP's own loader does.
SatCLIP's input order is (lon, lat), like GeoEmbed's. Whatever cannot be mapped is refused with what is supported.
"""

from __future__ import annotations

import pickle  # nosec B403  # only pickle.UnpicklingError; loading is torch.load(weights_only=True)
import re
import warnings
from pathlib import Path

import torch

from .errors import InputError
from .store import sha256_file

SOURCE = "SatCLIP (Klemmer, Rolf, Robinson, Mackey, Russwurm; AAAI 2025)"
# SatCLIPLightningModule's defaults for the location encoder.
DEFAULTS = {"le_type": "grid", "pe_type": "siren", "harmonics_calculation": "analytic", "legendre_polys": 16,
            "num_hidden_layers": 2, "capacity": 256, "embed_dim": 512}
SUPPORTED = {"le_type": ("sphericalharmonics",), "pe_type": ("siren",), "harmonics_calculation": ("analytic",)}
MEANING = {"le_type": "positional encoding", "pe_type": "network", "harmonics_calculation": "harmonics calculation"}
# SatCLIP's analytic harmonics are generated for degrees 0..100; sizes as GeoEmbed's networks accept them.
LIMITS = {"legendre_polys": 101, "num_hidden_layers": 1 << 16, "capacity": 1 << 16, "embed_dim": 1 << 16}
PREFIXES = ("model.location.", "model.")


def load_checkpoint(path: Path) -> dict:
    """The checkpoint as plain containers and tensors; InputError for unsafe, damaged or foreign files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it did not write itself
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load raises many kinds of error on damaged files
        found = re.search(r"GLOBAL ([\w.]+)", str(err)) if isinstance(err, pickle.UnpicklingError) else None
        if found:
            raise InputError("INPUT", f"{path} contains Python objects that are not plain tensors or containers "
                                      f"({found.group(1)}); refusing to execute it") from None
        detail = str(err).split(". ")[0][:200]
        raise InputError("INPUT", f"{path} is not a readable PyTorch checkpoint of plain tensors (truncated or "
                                  f"corrupt?): {type(err).__name__}: {detail}; nothing in it was executed") from None
    if not (isinstance(checkpoint, dict) and isinstance(checkpoint.get("hyper_parameters"), dict)
            and isinstance(checkpoint.get("state_dict"), dict)):
        raise InputError("INPUT", f"{path} is not a SatCLIP Lightning checkpoint: it needs 'hyper_parameters' "
                                  "and 'state_dict'")
    return checkpoint


def hyper_parameters(given: dict) -> dict:
    """The location encoder's hyper-parameters, defaults filled in and checked."""
    hp = {key: given.get(key, default) for key, default in DEFAULTS.items()}
    for key, supported in SUPPORTED.items():
        if hp[key] not in supported:
            raise InputError("INPUT", f"the checkpoint's {MEANING[key]} {key}={hp[key]!r} cannot be mapped onto "
                                      f"GeoEmbed's encoders; supported: {', '.join(supported)}")
    for key, high in LIMITS.items():
        value = hp[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise InputError("INPUT", f"the checkpoint's {key} must be an integer from 1 to {high}, got {value!r}")
    return hp


def architecture(hp: dict) -> dict:
    return {"name": "encoder", "params": {
        "encoding": {"name": "sh", "degrees": hp["legendre_polys"], "convention": "satclip-generated"},
        "network": {"name": "siren", "dim_out": hp["embed_dim"], "hidden": hp["capacity"],
                    "layers": hp["num_hidden_layers"], "w0": 1.0, "w0_initial": 30.0}}}


def _siren_shapes(hp: dict) -> dict[str, tuple[int, ...]]:
    """SatCLIP's SirenNet parameters (the names GeoEmbed's siren uses too) and their shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    width, hidden = hp["legendre_polys"] ** 2, hp["capacity"]
    for i in range(hp["num_hidden_layers"]):
        shapes[f"layers.{i}.weight"], shapes[f"layers.{i}.bias"] = (hidden, width), (hidden,)
        width = hidden
    shapes["last_layer.weight"], shapes["last_layer.bias"] = (hp["embed_dim"], hidden), (hp["embed_dim"],)
    return shapes


def convert_state_dict(state: dict, hp: dict) -> tuple[dict[str, torch.Tensor], str]:
    """GeoEmbed's ``network.*`` weights from the checkpoint's location encoder, and the prefix they came from."""
    prefix = next((p for p in PREFIXES if any(k.startswith(p + "nnet.") for k in state)), None)
    if prefix is None:
        raise InputError("INPUT", "the checkpoint has no location-encoder weights (model.location.nnet.* or "
                                  "model.nnet.*)")
    found = {k[len(prefix):]: v for k, v in state.items() if k.startswith((prefix + "nnet.", prefix + "posenc."))}
    expected = {"nnet." + k: shape for k, shape in _siren_shapes(hp).items()}
    problems = [f"unexpected {prefix}{k}" for k in sorted(set(found) - set(expected))]
    problems += [f"missing {prefix}{k}" for k in sorted(set(expected) - set(found))]
    for key in sorted(set(found) & set(expected)):
        tensor = found[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            problems.append(f"{prefix}{key} is not a floating-point tensor")
        elif tuple(tensor.shape) != expected[key]:
            problems.append(f"{prefix}{key} has shape {tuple(tensor.shape)}, expected {expected[key]}")
        elif not torch.isfinite(tensor).all():
            problems.append(f"{prefix}{key} holds non-finite values")
    if problems:
        more = f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""
        raise InputError("INPUT", "the weights do not fit a SatCLIP location encoder with "
                                  f"legendre_polys={hp['legendre_polys']}, capacity={hp['capacity']}, "
                                  f"num_hidden_layers={hp['num_hidden_layers']}, embed_dim={hp['embed_dim']}: "
                                  f"{'; '.join(problems[:6])}{more}")
    return {"network." + k[len("nnet."):]: v.contiguous() for k, v in found.items()}, prefix + "nnet."


def read_satclip(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(GeoEmbed weights, model card) from a SatCLIP checkpoint; InputError for anything that cannot be mapped."""
    checkpoint = load_checkpoint(path)
    hp = hyper_parameters(checkpoint["hyper_parameters"])
    state, prefix = convert_state_dict(checkpoint["state_dict"], hp)
    degrees, dim = hp["legendre_polys"], hp["embed_dim"]
    source = {"name": SOURCE, "format": "PyTorch Lightning checkpoint", "file": path.name,
              "sha256": sha256_file(path), "input_order": "lon,lat", "weights": prefix + "*", "hyper_parameters": hp}
    if isinstance(checkpoint.get("pytorch-lightning_version"), str):
        source["lightning_version"] = checkpoint["pytorch-lightning_version"]
    card = {
        "name": f"SatCLIP location encoder (L={degrees})",
        "description": f"SatCLIP's location encoder: spherical harmonics of degrees 0 to {degrees - 1} in SatCLIP's "
                       f"convention, then a SIREN with {hp['num_hidden_layers']} hidden layers of {hp['capacity']} to "
                       f"{dim} dimensions.",
        "architecture": architecture(hp),
        "input": {"order": "lon,lat", "units": "degrees", "crs": "EPSG:4326"},
        "dimension": dim,
        # Degree L - 1 resolves half-wavelengths of about 20000 km / L.
        "resolution_km": round(20000.0 / degrees, 3),
        "license": "as published with the checkpoint (SatCLIP's released weights: MIT)",
        "training_data": "SatCLIP: contrastive pretraining against Sentinel-2 image patches (the released models: "
                         "S2-100K, 100,000 patches sampled across the land surface)",
        "source": source,
    }
    return state, card
