"""Register a model file in the store: a SatCLIP checkpoint (.ckpt) or a GeoEmbed model folder (card.json +
weights.safetensors, e.g. copied from another store). Everything is checked before anything is written."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import InputError
from .model_install import install_state
from .models import registry
from .satclip_import import read_satclip
from .store import _ID, CARD, WEIGHTS, ModelStore, sha256_file

# Card entries that describe one installed copy; the store and the installer write them afresh.
_INSTALL_ENTRIES = ("id", "weights", "pca", "geoembed_version", "created")


def read_geoembed_model(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(weights, card) from a GeoEmbed model folder, or its card.json or weights file; InputError if they disagree."""
    folder = path if path.is_dir() else path.parent
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
        state = load_file(str(folder / WEIGHTS))
    except (OSError, ValueError, SafetensorError) as err:
        raise InputError("INPUT", f"{folder} is not a readable GeoEmbed model folder ({CARD} and {WEIGHTS}): "
                                  f"{err}") from None
    if not isinstance(card, dict) or not isinstance(card.get("architecture"), dict):
        raise InputError("INPUT", f"{folder / CARD} has no architecture entry")
    recorded = (card.get("weights") or {}).get("sha256")
    if recorded and recorded != sha256_file(folder / WEIGHTS):
        raise InputError("INPUT", f"{folder / WEIGHTS} does not match the sha256 in its card")
    try:
        model = registry.build(card["architecture"])
        model.load_state_dict(state, strict=True)
        with torch.inference_mode():
            dim = model.eval()(torch.zeros((1, 2), dtype=torch.float64)).shape[-1]
    except (ValueError, TypeError, RuntimeError) as err:
        raise InputError("INPUT", f"the weights in {folder} do not fit the card's architecture: {err}") from None
    if card.get("dimension") != dim:
        raise InputError("INPUT", f"{folder / CARD} says dimension {card.get('dimension')!r}, the model gives {dim}")
    card = {k: v for k, v in card.items() if k not in _INSTALL_ENTRIES}
    card["imported_from"] = str(folder.resolve())
    return state, card


def companion_files(path: Path, card: dict) -> dict[str, Path]:
    """Files a GeoEmbed model folder holds besides its weights (a trained model's image encoder), checked against
    the sha256 in its card."""
    entry = card.get("image_encoder")
    if not entry:
        return {}
    folder = path if path.is_dir() else path.parent
    source = folder / entry["file"]
    if not source.is_file() or sha256_file(source) != entry.get("sha256"):
        raise InputError("INPUT", f"{source} is missing or does not match the sha256 in its card; copy the whole "
                                  "model folder")
    return {entry["file"]: source}


def default_id(path: Path) -> str:
    """A model id from a file name: lower case, runs of other characters as '-'."""
    stem = path.parent.name if path.name in (CARD, WEIGHTS) else path.name if path.is_dir() else path.stem
    return re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")[:64] or "model"


def _check_id(store: ModelStore, model_id: str, force: bool) -> None:
    if not _ID.match(model_id):
        raise InputError("MODEL_ID", f"{model_id!r} is not a valid model id: up to 64 lower-case letters, digits, "
                                     "'_', '.' and '-', starting with a letter or digit")
    if model_id in store.ids() and not force:
        raise InputError("MODEL_ID", f"a model {model_id!r} is already installed in {store.models_dir}; choose "
                                     "another id or replace it (--force)")


def import_model(store: ModelStore, path: Path, model_id: str | None = None, name: str | None = None,
                 force: bool = False, progress: Callable[[float, str], None] | None = None) -> Path:
    """Convert and install the model in ``path``; returns its folder in the store."""
    step = progress or (lambda fraction, message: None)
    path = Path(path).expanduser()
    if model_id is not None:
        _check_id(store, model_id, force)
    if path.suffix.lower() == ".ckpt" and path.is_file():
        reader = read_satclip
    elif (path.is_dir() and (path / CARD).is_file()) or path.name in (CARD, WEIGHTS):
        reader = read_geoembed_model
    elif not path.exists():
        raise InputError("INPUT", f"{path} does not exist")
    else:
        raise InputError("INPUT", f"{path} is neither a SatCLIP checkpoint (.ckpt) nor a GeoEmbed model folder "
                                  f"({CARD} + {WEIGHTS})")
    step(0.05, f"reading {path.name}")
    state, card = reader(path)
    extra = companion_files(path, card) if reader is read_geoembed_model else {}
    if model_id is None:
        model_id = default_id(path)
        _check_id(store, model_id, force)
    if name:
        card["name"] = name
    step(0.3, "checking the model and fitting its PCA basis")
    source_sha256 = card.get("source", {}).get("sha256") or ""
    folder = install_state(store, model_id, state, card, source_sha256, extra)
    step(1.0, f"installed model {model_id!r}")
    return folder
