"""The training loop: contrastive pretraining of a location encoder against imagery, resumable step by step.

Every random draw is derived from (seed, purpose, step) rather than from a running generator, so a run resumed
from any checkpoint continues exactly as the uninterrupted run would have (data order, augmentations, dropout).
With ``torchrun`` the same config trains on several processes (DistributedDataParallel: gloo on CPU, NCCL on GPU);
rank 0 validates, writes checkpoints and installs the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..atomic import write_text
from ..errors import Cancelled, GeoEmbedError, InputError
from ..probable_place import mode_radius_km
from . import checkpoint
from .augment import augment_patches, auto_jitter_km, jitter_lonlat, uniform_lonlat
from .dataset import ImageSet
from .losses import ClipLoss, LocationQueue, MCBLDLoss
from .metrics import gallery_lonlat, validate
from .model import ContrastiveModel, encoding_resolution_km
from .schedule import lr_factor

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CALIBRATION = (5, 30)  # steps timed (after a warm-up) before a time limit is turned into a step count


def derived_seed(seed: int, *purpose: int) -> int:
    """A seed for one purpose (e.g. the data order of epoch 3), independent of every other."""
    return int(np.random.SeedSequence([seed, *purpose]).generate_state(1, np.uint64)[0]) >> 1


def build_model(config: dict, in_channels: int) -> ContrastiveModel:
    """The untrained pair the config describes; InputError("CONFIG") for an invalid encoder spec."""
    try:
        return ContrastiveModel(config["location_encoder"], config["image_encoder"], in_channels)
    except (ValueError, TypeError) as err:
        raise InputError("CONFIG", f"{err} (in location_encoder or image_encoder)") from None


class Objective(nn.Module):
    """The model and its loss as one module (what DistributedDataParallel wraps); ``forward`` returns the loss."""

    def __init__(self, model: ContrastiveModel, objective: dict):
        super().__init__()
        self.model = model
        self.kind = objective["loss"]
        self.loss = MCBLDLoss() if self.kind == "mcbld" else ClipLoss()
        self.random_locations = int(objective["random_locations"])

    @property
    def temperature(self) -> float:
        """The softmax temperature of image -> location similarities (CLIP's learnt one; CSP's fixed one)."""
        loss = self.loss
        return loss.temperature if isinstance(loss, ClipLoss) else loss.temperature_batch

    def forward(self, images: torch.Tensor, lonlat: torch.Tensor, generator: torch.Generator,
                queue: torch.Tensor | None) -> torch.Tensor:
        image_emb = self.model.embed_images(images)
        location_emb = self.model.embed_locations(lonlat)
        if self.kind == "mcbld":
            randoms = uniform_lonlat(self.random_locations, generator, lonlat.device)
            return self.loss(image_emb, location_emb, self.model.embed_locations(lonlat),
                             self.model.embed_locations(randoms))
        extra = self.model.embed_locations(queue.to(lonlat.device)) if queue is not None and len(queue) else None
        return self.loss(image_emb, location_emb, extra)


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Distributed:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, dist: Distributed) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; InputError("DEVICE") if the requested one is missing."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError("DEVICE", f"{name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("DEVICE", "CUDA was requested but torch sees no GPU; use --device cpu or auto")
    if device.type == "mps" and not getattr(torch.backends, "mps", None) or (
            device.type == "mps" and not torch.backends.mps.is_available()):
        raise InputError("DEVICE", "MPS was requested but is not available; use --device cpu or auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return device


def fingerprint(data: ImageSet) -> str:
    """sha256 of the sampled positions and pixels: a resumed run must see the same data."""
    h = hashlib.sha256(np.ascontiguousarray(data.lonlat))  # hashed through the buffer: no copy of the pixels
    h.update(np.ascontiguousarray(data.images))
    return h.hexdigest()


@dataclass
class RunState:
    """What a checkpoint restores besides the weights."""

    step: int = 0
    total_steps: int = 0
    elapsed_s: float = 0.0
    losses: list[float] = field(default_factory=list)     # mean training loss per logged interval
    loss_steps: list[int] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)     # validation metrics per epoch
    total_steps_fixed_by_time: bool = False


class Trainer:
    """One training run in ``run_dir`` from a resolved config and its data split."""

    def __init__(self, config: dict, train: ImageSet, val: ImageSet, run_dir: Path, device: torch.device,
                 progress: Callable[[float, str], None], log: Callable[[str], None],
                 dist: Distributed | None = None):
        if config["objective"]["jitter_km"] == "auto":
            jitter = auto_jitter_km(train.description)
            config = {**config, "objective": {**config["objective"], "jitter_km": jitter}}
            log(f"objective.jitter_km auto: positions jittered within {jitter:g} km")
        self.config, self.train, self.val, self.run_dir = config, train, val, Path(run_dir)
        self.device, self.progress, self.log = device, progress, log
        self.dist = dist or Distributed()
        self.seed = int(config["seed"])
        torch.manual_seed(self.seed)
        self.model = build_model(config, in_channels=train.images.shape[1]).to(device)
        self.objective = Objective(self.model, config["objective"]).to(device)
        self.step_module: nn.Module = self.objective
        if self.dist.world > 1:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[device.index] if device.type == "cuda" else None)
        decay = [p for p in self.objective.parameters() if p.ndim >= 2]
        rest = [p for p in self.objective.parameters() if p.ndim < 2]
        opt = config["optimizer"]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": opt["weight_decay"]},
                                            {"params": rest, "weight_decay": 0.0}], lr=opt["lr"])
        self.queue = LocationQueue(int(config["objective"]["queue_size"])) \
            if config["objective"]["loss"] == "geoclip" else None
        self.batch = int(config["schedule"]["batch_size"])
        self.steps_per_epoch = len(train) // (self.batch * self.dist.world)
        if self.steps_per_epoch < 1:
            raise InputError("SAMPLES", f"{len(train)} training samples do not fill one batch of "
                                        f"{self.batch * self.dist.world}; lower schedule.batch_size or raise "
                                        "data.samples")
        self.state = RunState(total_steps=self._planned_steps())
        self.gallery = gallery_lonlat(int(config["gallery"]))
        self.data_fingerprint = fingerprint(train) + fingerprint(val)
        precision = config["precision"]
        self.autocast = precision == "bfloat16" or (precision == "auto" and device.type == "cuda")
        self._order: tuple[int, torch.Tensor] | None = None
        self._validation_s: float | None = None  # the last validation pass took this long
        self._validation_total_s = 0.0  # all validation passes of this process took this long
        self._timed_from: tuple[int, float, float] | None = None  # (step, elapsed, validation) when timing began

    # ---- schedule -------------------------------------------------------------------------------------------

    def _planned_steps(self) -> int:
        schedule = self.config["schedule"]
        if schedule["steps"]:
            return int(schedule["steps"])
        return int(schedule["epochs"] or 1) * self.steps_per_epoch

    def _set_lr(self, step: int) -> float:
        opt = self.config["optimizer"]
        lr = opt["lr"] * lr_factor(step, self.state.total_steps, int(opt["warmup_steps"]), opt["min_lr_fraction"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _plan_by_time(self) -> None:
        """With a time limit, fix the step count that fits in the time left: first after timing CALIBRATION[1] -
        CALIBRATION[0] steps (after a warm-up of CALIBRATION[0], counted from the start or the resumption), then again
        after every epoch from all steps timed so far, so that the learning-rate schedule ends when the time does."""
        limit = self.config["schedule"]["time_limit_minutes"]
        s = self.state
        warmup, window = CALIBRATION[0], CALIBRATION[1] - CALIBRATION[0]
        if not limit:
            return
        if s.step == self._first_step + warmup:
            self._timed_from = (s.step, self._elapsed(), self._validation_total_s)
        first_plan = s.step == self._first_step + warmup + window and not s.total_steps_fixed_by_time
        replan = s.total_steps_fixed_by_time and s.step % self.steps_per_epoch == 0 and s.step < s.total_steps
        if not (first_plan or replan) or self._timed_from is None:
            return
        if self._validation_s is None:  # time one validation pass now (it also gives an early point on the curve)
            self._validate()
        step0, elapsed0, validation0 = self._timed_from
        per_step = (self._elapsed() - elapsed0 - (self._validation_total_s - validation0)) / (s.step - step0)
        per_step += self._validation_s / self.steps_per_epoch  # one validation per epoch
        fits = s.step + int((60.0 * limit - self._elapsed()) / per_step)
        total = torch.tensor([max(s.step + 1, min(self._planned_steps(), fits))], device=self.device)
        if self.dist.world > 1:
            torch.distributed.broadcast(total, 0)  # every process must stop at the same step
        if first_plan:
            self.log(f"time limit {limit:g} min: {int(total.item())} steps at {per_step:.2f} s per step")
        s.total_steps = int(total.item())
        s.total_steps_fixed_by_time = True

    # ---- data ---------------------------------------------------------------------------------------------

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        epoch, within = divmod(step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            g = torch.Generator().manual_seed(derived_seed(self.seed, 1, epoch))
            self._order = (epoch, torch.randperm(len(self.train), generator=g))
        start = (within * self.dist.world + self.dist.rank) * self.batch
        index = np.sort(self._order[1][start:start + self.batch].numpy())
        generator = torch.Generator().manual_seed(derived_seed(self.seed, 2, step, self.dist.rank))
        objective = self.config["objective"]
        images = augment_patches(torch.from_numpy(self.train.images[index]).float(), generator,
                                 flips=objective["flips"], rotations=objective["rotations"])
        lonlat = jitter_lonlat(torch.from_numpy(self.train.lonlat[index]), float(objective["jitter_km"]), generator)
        return images.to(self.device), lonlat.to(self.device), generator

    # ---- checkpoints ----------------------------------------------------------------------------------------

    def _config_text(self) -> str:
        """The config as the checkpoint records it; the device may differ between a run and its resumption."""
        return json.dumps({k: v for k, v in self.config.items() if k != "device"}, sort_keys=True)

    def state_dict(self) -> dict:
        s = self.state
        return {"format": "geoembed-training-checkpoint", "config": self._config_text(),
                "data_fingerprint": self.data_fingerprint, "objective": self.objective.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "queue": self.queue.state_dict() if self.queue is not None else {},
                "step": s.step, "total_steps": s.total_steps, "elapsed_s": s.elapsed_s,
                "total_steps_fixed_by_time": s.total_steps_fixed_by_time,
                "losses": list(s.losses), "loss_steps": list(s.loss_steps), "history": json.dumps(s.history)}

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self._config_text():
            raise InputError("RESUME", "the config differs from the one the checkpoint was trained with; resume "
                                       f"with the run folder's own {CONFIG_FILE}, or start a new run")
        if state["data_fingerprint"] != self.data_fingerprint:
            raise InputError("RESUME", "the training data differ from the checkpoint's (were the rasters or photos "
                                       "changed?); start a new run")
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.queue is not None:
            self.queue.load_state_dict(state["queue"])
        self.state = RunState(step=state["step"], total_steps=state["total_steps"], elapsed_s=state["elapsed_s"],
                              losses=list(state["losses"]), loss_steps=list(state["loss_steps"]),
                              history=json.loads(state["history"]),
                              total_steps_fixed_by_time=state["total_steps_fixed_by_time"])

    def save(self) -> None:
        self.state.elapsed_s = self._elapsed()
        if self.dist.main:
            checkpoint.save(self.run_dir / checkpoint.FILE, self.state_dict())

    # ---- the loop -----------------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        """Seconds spent on this run so far, over all its resumptions (training and validation)."""
        return self._elapsed_before + time.monotonic() - self._started

    def _message(self, loss: float) -> str:
        s = self.state
        epoch = s.step // self.steps_per_epoch + (s.step % self.steps_per_epoch > 0)
        epochs = math.ceil(s.total_steps / self.steps_per_epoch)
        spent = time.monotonic() - self._started
        done_here = max(s.step - self._first_step, 1)
        eta = spent / done_here * (s.total_steps - s.step)
        eta_text = f"{eta / 60:.0f} min" if eta >= 90 else f"{eta:.0f} s"
        return (f"epoch {epoch}/{epochs} · step {s.step}/{s.total_steps} · loss {loss:.3f} · "
                f"{self.samples_per_s(spent, done_here):.0f} samples/s · ETA {eta_text}")

    def samples_per_s(self, seconds: float, steps: int) -> float:
        return steps * self.batch * self.dist.world / max(seconds, 1e-9)

    def _validate(self) -> None:
        s = self.state
        started = time.monotonic()
        if self.dist.main:
            radius = mode_radius_km(encoding_resolution_km(self.config["location_encoder"]["encoding"]))
            objective = self.config["objective"]
            metrics = validate(self.model, self.val.images, self.val.lonlat, self.gallery, self.batch, self.device,
                               self.objective.temperature, radius, objective["flips"], objective["rotations"])
            recent = s.losses[-1] if s.losses else float("nan")
            s.history.append({"epoch": math.ceil(s.step / self.steps_per_epoch), "step": s.step,
                              "train_loss": recent, **metrics})
            self.log(f"validation after step {s.step}: median error {metrics['median_km']:,.0f} km, "
                     f"{metrics['within_750_km']:.1f}% within 750 km, retrieval top-1 {metrics['retrieval_top1']:.1f}%"
                     f" / top-5 {metrics['retrieval_top5']:.1f}% (batches of {metrics['retrieval_batch']})")
            write_text(self.run_dir / METRICS_FILE, json.dumps(self.metrics(), indent=2) + "\n")
        self._barrier()
        self._validation_s = time.monotonic() - started
        self._validation_total_s += self._validation_s

    def _barrier(self) -> None:
        if self.dist.world > 1:
            torch.distributed.barrier()

    def _any_process(self, flag: bool) -> bool:
        """Whether ``flag`` holds in any process (all processes must take the same decisions)."""
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)  # NCCL reduces GPU tensors only
        if self.dist.world > 1:
            torch.distributed.all_reduce(value)
        return bool(value.item() > 0)

    def metrics(self) -> dict:
        s = self.state
        return {"steps": s.step, "total_steps": s.total_steps, "epochs_done": s.step / self.steps_per_epoch,
                "training_time_s": round(s.elapsed_s, 1),
                "samples_per_s": round(self.samples_per_s(s.elapsed_s, s.step), 1) if s.step else None,
                "device": str(self.device), "precision": "bfloat16 autocast" if self.autocast else "float32",
                "processes": self.dist.world, "train_samples": len(self.train), "validation_samples": len(self.val),
                "loss_curve": {"step": s.loss_steps, "loss": s.losses}, "validation": s.history,
                "final": s.history[-1] if s.history else None}

    def run(self, cancel_check: Callable[[], bool]) -> dict:
        """Train to the planned step count; on a cancel request save a checkpoint and raise Cancelled."""
        s = self.state
        self._first_step, self._started, self._elapsed_before = s.step, time.monotonic(), s.elapsed_s
        limit = self.config["schedule"]["time_limit_minutes"]
        log_every = max(1, min(50, self.steps_per_epoch // 4))
        running: list[float] = []
        recent: float | None = None  # the loss, smoothed, for progress messages
        self.objective.train()
        while s.step < s.total_steps:
            if self._any_process(cancel_check()):
                self.save()
                raise Cancelled(f"training stopped at step {s.step} of {s.total_steps}; the checkpoint in "
                                f"{self.run_dir} keeps it: continue with --resume")
            self._set_lr(s.step)
            images, lonlat, generator = self._batch(s.step)
            torch.manual_seed(derived_seed(self.seed, 3, s.step, self.dist.rank))  # dropout masks
            queue = self.queue.get() if self.queue is not None else None
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss = self.step_module(images, lonlat, generator, queue)
            if not torch.isfinite(loss):
                raise GeoEmbedError(f"the loss became {loss.item()} at step {s.step}; lower optimizer.lr and start "
                                    "a new run (the last checkpoint holds the state before it)")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.queue is not None:
                self.queue.push(lonlat.detach().cpu())
            running.append(float(loss.item()))
            recent = running[-1] if recent is None else 0.9 * recent + 0.1 * running[-1]
            s.step += 1
            if s.step % log_every == 0 or s.step == s.total_steps:
                s.losses.append(float(np.mean(running)))
                s.loss_steps.append(s.step)
                running = []
            self._plan_by_time()
            if limit and s.step < s.total_steps and self._any_process(self._elapsed() > 60.0 * limit):
                self.log(f"time limit reached after {s.step} of {s.total_steps} planned steps")
                s.total_steps = s.step
            if s.step % self.steps_per_epoch == 0 or s.step == s.total_steps:
                self._validate()
                self.save()
            elif s.step % int(self.config["checkpoint_every"]) == 0:
                self.save()
            self.progress(s.step / s.total_steps, self._message(recent))
        s.elapsed_s = self._elapsed()
        return self.metrics()
