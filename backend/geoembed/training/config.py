"""The training configuration: every hyper-parameter, with defaults, read from JSON or YAML and checked.

A config file may give any subset of the keys in ``DEFAULTS``; unknown keys are refused (a typo must not silently
fall back to a default). The resolved config (defaults filled in) is saved beside the checkpoints.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from ..errors import InputError

DEFAULTS: dict[str, Any] = {
    "model_id": None,            # id in the model store; default: the config file's stem
    "name": None,                # display name; default: the model id
    "data": {
        "rasters": [],           # [{"path": ..., "crs": optional, "bounds": optional [xmin, ymin, xmax, ymax]}]
        "bands": None,           # 1-based band numbers to use (default: all)
        "mask": None,            # polygon layer: sample locations only inside it (e.g. land)
        "mask_layer": None,
        "points": None,          # point layer: sample patches at these locations instead
        "points_layer": None,
        "photos": None,          # a folder of geotagged photos, or a CSV / vector layer listing them
        "photo_fields": {"path": None, "lon": None, "lat": None},
        "samples": 50000,        # patches drawn from the rasters
        "patch_size": 32,        # pixels; photos are resized to it
        "downsample": 1,         # rasters: a patch pixel is the mean of downsample x downsample raster pixels
        "max_black_fraction": 0.25,
        "validation": {"block_km": 500.0, "fraction": 0.1, "buffer_km": 150.0},
    },
    "location_encoder": {
        "encoding": {"name": "sh", "degrees": 20},
        "network": {"name": "siren", "dim_out": 256, "hidden": 256, "layers": 2},
    },
    "image_encoder": {"name": "cnn", "width": 32, "depth": 4},
    "objective": {
        "loss": "clip",          # clip | mcbld | geoclip (CLIP + a queue of GPS negatives)
        "queue_size": 4096,      # geoclip
        "random_locations": 1024,  # mcbld
        "jitter_km": "auto",     # km, or "auto": half a raster patch's ground width (5 km for photos)
        "flips": True,
        "rotations": True,
    },
    "optimizer": {"lr": 1e-3, "weight_decay": 0.01, "warmup_steps": 100, "min_lr_fraction": 0.01},
    "schedule": {"batch_size": 512, "epochs": 20, "steps": None, "time_limit_minutes": None},
    "checkpoint_every": 200,     # steps
    "gallery": 10000,            # equal-area points for the validation geolocation error
    "seed": 0,
    "device": "auto",            # auto | cpu | cuda | cuda:N | mps
    "precision": "auto",         # auto (bfloat16 autocast on GPU, float32 on CPU) | bfloat16 (everywhere) | float32
}

LOSSES = ("clip", "mcbld", "geoclip")
PRECISIONS = ("auto", "bfloat16", "float32")
# Mappings replaced as a whole: their keys depend on the component they name.
FREE_FORM = {"location_encoder.encoding", "location_encoder.network", "image_encoder"}


def _merge(defaults: dict, given: dict, where: str) -> dict:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError("CONFIG", f"unknown key(s) {', '.join(where + k for k in unknown)}; known keys at this "
                                   f"level: {', '.join(defaults)}")
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(defaults[key], dict) and where + key not in FREE_FORM:
            if not isinstance(value, dict):
                raise InputError("CONFIG", f"{where}{key} must be a mapping, got {value!r}")
            merged[key] = _merge(defaults[key], value, f"{where}{key}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _number(config: dict, path: str, low: float, high: float, integer: bool = False, optional: bool = False,
            word: str | None = None):
    """Check the number at ``path`` (None passes when ``optional``, and so does ``word``)."""
    node: Any = config
    for part in path.split("."):
        node = node[part]
    if (node is None and optional) or (word is not None and node == word):
        return
    ok = isinstance(node, (int, float)) and not isinstance(node, bool) and low <= node <= high
    if not ok or (integer and not float(node).is_integer()):
        kind = "an integer" if integer else "a number"
        alternative = f' or "{word}"' if word else ""
        raise InputError("CONFIG", f"{path} must be {kind} from {low} to {high}{alternative}, got {node!r}")


def _check(config: dict) -> dict:
    data = config["data"]
    if not data["rasters"] and not data["photos"]:
        raise InputError("CONFIG", "give training imagery: data.rasters (raster files) or data.photos (a folder "
                                   "of geotagged photos, or a CSV / vector layer listing them)")
    if data["rasters"] and data["photos"]:
        raise InputError("CONFIG", "give data.rasters or data.photos, not both (they differ in bands and scale)")
    rasters = data["rasters"]
    if not isinstance(rasters, list):
        raise InputError("CONFIG", "data.rasters must be a list of {\"path\": ...} entries or paths")
    data["rasters"] = [{"path": r} if isinstance(r, str) else r for r in rasters]
    for entry in data["rasters"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or set(entry) - {
                "path", "crs", "bounds"}:
            raise InputError("CONFIG", f"data.rasters entry {entry!r}: give {{\"path\": ..., \"crs\": optional, "
                                       "\"bounds\": optional}")
    _number(config, "data.samples", 16, 10_000_000, integer=True)
    _number(config, "data.patch_size", 8, 1024, integer=True)
    _number(config, "data.downsample", 1, 1024, integer=True)
    if data["photos"] and data["downsample"] != 1:
        raise InputError("CONFIG", "data.downsample applies to rasters only; photos are resized to data.patch_size")
    _number(config, "data.max_black_fraction", 0.0, 1.0)
    _number(config, "data.validation.block_km", 1.0, 20000.0)
    _number(config, "data.validation.fraction", 0.01, 0.5)
    _number(config, "data.validation.buffer_km", 0.0, 5000.0)
    for part in ("encoding", "network"):
        if not isinstance(config["location_encoder"][part], dict) or "name" not in config["location_encoder"][part]:
            raise InputError("CONFIG", f"location_encoder.{part} must be a mapping with a name")
    if not isinstance(config["image_encoder"], dict) or "name" not in config["image_encoder"]:
        raise InputError("CONFIG", "image_encoder must be a mapping with a name (cnn or resnet18)")
    if config["objective"]["loss"] not in LOSSES:
        raise InputError("CONFIG", f"objective.loss must be one of {', '.join(LOSSES)}, "
                                   f"got {config['objective']['loss']!r}")
    _number(config, "objective.queue_size", 1, 1_000_000, integer=True)
    _number(config, "objective.random_locations", 1, 1_000_000, integer=True)
    _number(config, "objective.jitter_km", 0.0, 1000.0, word="auto")
    _number(config, "optimizer.lr", 1e-7, 1.0)
    _number(config, "optimizer.weight_decay", 0.0, 10.0)
    _number(config, "optimizer.warmup_steps", 0, 1_000_000, integer=True)
    _number(config, "optimizer.min_lr_fraction", 0.0, 1.0)
    _number(config, "schedule.batch_size", 2, 65536, integer=True)
    _number(config, "schedule.epochs", 1, 100_000, integer=True, optional=True)
    _number(config, "schedule.steps", 1, 100_000_000, integer=True, optional=True)
    _number(config, "schedule.time_limit_minutes", 0.1, 100_000, optional=True)
    _number(config, "checkpoint_every", 1, 100_000_000, integer=True)
    _number(config, "gallery", 100, 10_000_000, integer=True)
    _number(config, "seed", 0, 2**63 - 1, integer=True)
    if config["precision"] not in PRECISIONS:
        raise InputError("CONFIG", f"precision must be one of {', '.join(PRECISIONS)}")
    return config


def resolve(given: dict, default_id: str = "encoder") -> dict:
    """``given`` merged over DEFAULTS and checked; InputError("CONFIG", ...) names the offending key."""
    if not isinstance(given, dict):
        raise InputError("CONFIG", "the config must be a mapping of keys to values")
    config = _check(_merge(DEFAULTS, given, ""))
    config["model_id"] = config["model_id"] or default_id
    config["name"] = config["name"] or config["model_id"]
    return config


def read(path: Path) -> dict:
    """A config file (.json, .yaml or .yml) as a dict, unresolved."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError("CONFIG", f"cannot read {path}: {err.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        return json.loads(text)
    except Exception as err:  # yaml.YAMLError or json.JSONDecodeError, both with a position
        raise InputError("CONFIG", f"{path} is not valid {path.suffix.lstrip('.').upper()}: {err}") from None
