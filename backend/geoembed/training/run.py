"""``geoembed train``: from a config file to a model in the store, through resumable checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from .. import __version__
from ..atomic import write_text
from ..errors import InputError
from ..model_install import install_state
from ..progress import Progress
from ..store import ModelStore, sha256_file
from . import checkpoint
from . import config as configuration
from .dataset import ImageSet
from .model import encoding_resolution_km
from .report import write_plot
from .split import spatial_split
from .trainer import CONFIG_FILE, METRICS_FILE, Distributed, Trainer, build_model, resolve_device

IMAGE_ENCODER = "image_encoder.safetensors"


def load_data(config: dict, progress: Progress) -> ImageSet:
    """The training imagery the config names: patches of rasters, or geotagged photos."""
    data, seed = config["data"], int(config["seed"])

    def step(fraction: float, message: str) -> None:
        progress(0.1 * fraction, message)
    if data["photos"]:
        from .photos import load_photos

        fields = data["photo_fields"]
        return load_photos(data["photos"], size=int(data["patch_size"]), seed=seed, path_field=fields["path"],
                           lon_field=fields["lon"], lat_field=fields["lat"], progress=step)
    from .patches import sample_raster_patches

    return sample_raster_patches(data["rasters"], samples=int(data["samples"]), patch_size=int(data["patch_size"]),
                                 seed=seed, mask=data["mask"], mask_layer=data["mask_layer"], points=data["points"],
                                 points_layer=data["points_layer"], bands=data["bands"],
                                 max_black_fraction=float(data["max_black_fraction"]),
                                 downsample=int(data["downsample"]), progress=step)


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume and (run_dir / checkpoint.FILE).exists():
        raise InputError("RUN_DIR", f"{run_dir} holds the checkpoint of an earlier run: continue it with --resume, "
                                    "or choose another run folder")
    if not os.access(run_dir, os.W_OK):
        raise InputError("RUN_DIR", f"{run_dir} is not writable; choose another run folder")


def _card(config: dict, data: ImageSet, trainer: Trainer, metrics: dict, image_sha256: str) -> dict:
    encoding = config["location_encoder"]["encoding"]
    objective = config["objective"]
    card = {
        "name": config["name"],
        "description": (f"Trained with GeoEmbed {__version__}: {encoding['name']} encoding + "
                        f"{config['location_encoder']['network']['name']} network, contrastive ({objective['loss']}) "
                        f"against a {config['image_encoder']['name']} image encoder on "
                        f"{len(trainer.train):,} patches; validation on held-out blocks."),
        "architecture": {"name": "encoder", "params": config["location_encoder"]},
        "input": {"order": "lon,lat", "units": "degrees", "crs": "EPSG:4326"},
        "dimension": trainer.model.dim,
        "image_encoder": {"architecture": config["image_encoder"], "in_channels": int(data.images.shape[1]),
                          "patch_size": int(data.images.shape[2]), "downsample": int(config["data"]["downsample"]),
                          "normalisation": {"mean": data.mean.tolist(), "std": data.std.tolist()},
                          "file": IMAGE_ENCODER, "sha256": image_sha256},
        "temperature": trainer.objective.temperature,
        "training": {"data": data.description, "objective": objective, "config": config,
                     "metrics": metrics["final"], "steps": metrics["steps"],
                     "training_time_s": metrics["training_time_s"], "samples_per_s": metrics["samples_per_s"],
                     "device": metrics["device"], "precision": metrics["precision"],
                     "processes": metrics["processes"]},
    }
    resolution = encoding_resolution_km(encoding)
    if resolution:
        card["resolution_km"] = resolution
    return card


def install_trained(store: ModelStore, config: dict, data: ImageSet, trainer: Trainer, metrics: dict) -> Path:
    """The location encoder, with the image encoder beside it, into the store as ``config["model_id"]``."""
    with tempfile.TemporaryDirectory() as tmp:
        image_file = Path(tmp) / IMAGE_ENCODER
        save_file({k: v.detach().cpu().contiguous() for k, v in trainer.model.image.state_dict().items()},
                  str(image_file))
        location = {k: v.detach().cpu().contiguous() for k, v in trainer.model.location.state_dict().items()}
        card = _card(config, data, trainer, metrics, sha256_file(image_file))
        return install_state(store, config["model_id"], location, card, "", {IMAGE_ENCODER: image_file})


def _init_distributed(dist: Distributed, device: torch.device) -> None:
    if dist.world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")


def train_from_config(config_path: Path, run_dir: Path | None, resume: bool, device: str | None,
                      model_id: str | None, force: bool, progress: Progress, store: ModelStore | None = None) -> dict:
    """Train as ``config_path`` says; returns the CLI result (model id, run folder, report, metrics)."""
    from ..runtime import configure_threads

    config_path = Path(config_path)
    given = configuration.read(config_path)
    if model_id:
        given = {**given, "model_id": model_id}
    if device:
        given = {**given, "device": device}
    config = configuration.resolve(given, default_id=config_path.stem.lower())
    threads = configure_threads()  # before torch starts its threads, which inherit the settings
    build_model(config, in_channels=1)  # a bad encoder spec fails now, not after the imagery is read
    store = store or ModelStore()
    if config["model_id"] in store.ids() and not force:
        raise InputError("MODEL_ID", f"a model {config['model_id']!r} is already installed in {store.models_dir}; "
                                     "choose another id or replace it (--force)")
    run_dir = Path(run_dir) if run_dir else config_path.with_name(f"{config_path.stem}-run")
    dist = Distributed.from_environment()
    torch_device = resolve_device(config["device"], dist)
    if dist.main:
        _prepare_run_dir(run_dir, resume)
    _init_distributed(dist, torch_device)
    progress.log(f"training {config['model_id']!r} on {torch_device} ({threads} threads, {dist.world} process"
                 f"{'es' if dist.world > 1 else ''}); run folder {run_dir}")

    data = load_data(config, progress)
    validation = config["data"]["validation"]
    train_idx, val_idx = spatial_split(data.lonlat, block_km=float(validation["block_km"]),
                                       val_fraction=float(validation["fraction"]),
                                       buffer_km=float(validation["buffer_km"]), seed=int(config["seed"]))
    train, val = data.split(train_idx, val_idx)
    progress.log(f"{len(data):,} samples: {len(train):,} for training, {len(val):,} for validation in held-out "
                 f"blocks of {validation['block_km']:g} km ({len(data) - len(train) - len(val):,} training samples "
                 f"within {validation['buffer_km']:g} km of them left out)")
    # The card needs the statistics, not the (now scrambled) pixels: an empty index copies none.
    data = data.subset(np.zeros(0, np.int64))
    trainer = Trainer(config, train, val, run_dir, torch_device,
                      progress=lambda f, m: progress.report(0.1 + 0.85 * f, m), log=progress.log, dist=dist)
    config = trainer.config  # "auto" settings resolved for the data
    if resume:  # refused when the config differs: the run folder's own config.json stays as it was
        trainer.load_state_dict(checkpoint.load(run_dir / checkpoint.FILE))
        progress.log(f"resumed at step {trainer.state.step} of {trainer.state.total_steps}")
    if dist.main:
        write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    metrics = trainer.run(cancel_check=lambda: progress.cancelled)
    result = {"model": config["model_id"], "run_dir": str(run_dir), "metrics": str(run_dir / METRICS_FILE)}
    if dist.main:
        write_text(run_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
        result["report"] = str(write_plot(metrics, f"{config['name']}: {metrics['steps']} steps", run_dir))
        progress(0.96, "installing the model")
        result["folder"] = str(install_trained(store, config, data, trainer, metrics))
        final = metrics["final"] or {}
        progress.log(f"installed model {config['model_id']!r}: median error {final.get('median_km', 'n/a')} km on "
                     f"held-out blocks, {metrics['samples_per_s']} samples/s")
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    progress(1.0, "done")
    return result
