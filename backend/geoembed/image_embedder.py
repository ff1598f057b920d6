"""The image encoder of a model trained by ``geoembed train``: images into the space of its location encoder."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from .errors import InputError
from .models.registry import without_subnormals
from .store import ModelStore, sha256_file
from .training.augment import embed_symmetric
from .training.image_encoders import build_image_encoder


class ImageEmbedder:
    """``embed(images)`` takes raw (N, C, S, S) pixels (any dtype; the model's band count and patch size), applies
    the band normalisation recorded at training and returns L2-normalised float32 (N, D) embeddings: the mean over
    the flips and quarter turns the model was trained with (augment.embed_symmetric), as its validation took them."""

    def __init__(self, model_id: str, store: ModelStore | None = None, device: str = "cpu", batch_size: int = 256):
        store = store or ModelStore()
        card = store.card(model_id)
        entry = card.get("image_encoder")
        if not entry:
            raise InputError("MODEL", f"model {model_id!r} has no image encoder: only models trained with "
                                      "`geoembed train` (or Train location encoder) can embed images")
        path = store.path(model_id) / entry["file"]
        if sha256_file(path) != entry["sha256"]:
            raise InputError("MODEL", f"{path} does not match the sha256 in its card: reinstall model {model_id!r}")
        self.model_id, self.card = model_id, card
        self.in_channels, self.patch_size = int(entry["in_channels"]), int(entry["patch_size"])
        self.downsample = int(entry.get("downsample", 1))  # raster pixels averaged into a patch pixel in training
        self.mean = np.asarray(entry["normalisation"]["mean"], np.float64)
        self.std = np.asarray(entry["normalisation"]["std"], np.float64)
        self.temperature = float(card.get("temperature") or 1.0)
        objective = card.get("training", {}).get("objective", {})
        self.flips, self.rotations = bool(objective.get("flips")), bool(objective.get("rotations"))
        self.device = torch.device(device)
        self.batch_size = batch_size
        network = build_image_encoder(entry["architecture"], self.in_channels, int(card["dimension"]))
        network.load_state_dict(load_file(str(path)), strict=True)
        self.network = without_subnormals(network.eval().requires_grad_(False)).to(self.device)

    def check(self, images: np.ndarray, parameter: str = "IMAGES") -> None:
        """InputError unless ``images`` is (N, C, S, S) with the model's band count and patch size."""
        expected = (self.in_channels, self.patch_size, self.patch_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise InputError(parameter, f"model {self.model_id!r} takes images of {self.in_channels} band(s) and "
                                        f"{self.patch_size} x {self.patch_size} pixels; got shape "
                                        f"{tuple(images.shape[1:])}")

    @torch.inference_mode()
    def embed(self, images: np.ndarray) -> np.ndarray:
        self.check(images)
        shift, scale = self.mean[None, :, None, None], 1.0 / self.std[None, :, None, None]
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = (images[start:start + self.batch_size].astype(np.float64) - shift) * scale
            x = torch.from_numpy(batch.astype(np.float32)).to(self.device)
            out.append(embed_symmetric(self.network, x, self.flips, self.rotations).cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, int(self.card["dimension"])), np.float32)
