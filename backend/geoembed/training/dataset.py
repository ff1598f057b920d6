"""Images with the place each shows: training data for location encoders."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

STATS_SAMPLE = 4096  # images drawn to compute the per-band mean and standard deviation
CHUNK_VALUES = 1 << 23  # values converted to floating point at a time
SPLIT_ROWS = 4096  # images moved at a time by ImageSet.split


@dataclass
class ImageSet:
    """``images`` (N, C, S, S) float16, already normalised ((x - mean) / std per band); ``lonlat`` (N, 2) float64
    (lon, lat); ``mean`` and ``std`` (C,) float64; ``description`` (JSON-able) goes into the model card."""

    images: np.ndarray
    lonlat: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    description: dict

    def subset(self, index) -> ImageSet:
        return ImageSet(self.images[index], self.lonlat[index], self.mean, self.std, dict(self.description))

    def split(self, train_index: np.ndarray, val_index: np.ndarray) -> tuple[ImageSet, ImageSet]:
        """The subsets at ``train_index`` and ``val_index`` (each sorted), without a second copy of the pixels: the
        validation subset is copied out, then the training images are moved to the front of this set's array (in
        place, SPLIT_ROWS at a time) and the training subset is a view of them. This set's images are scrambled."""
        val = self.subset(val_index)
        train_index = np.asarray(train_index, np.int64)
        if len(train_index) and (np.any(np.diff(train_index) <= 0) or train_index[0] < 0):
            raise ValueError("the training index must be sorted, without repeats")
        images = self.images
        # rows only move down (train_index[i] >= i), so each is read before anything overwrites it
        for start in range(0, len(train_index), SPLIT_ROWS):
            rows = train_index[start:start + SPLIT_ROWS]
            images[start:start + len(rows)] = images[rows]
        train = ImageSet(images[:len(train_index)], self.lonlat[train_index], self.mean, self.std,
                         dict(self.description))
        return train, val

    def __len__(self) -> int:
        return len(self.lonlat)


@contextmanager
def as_parameter(name: str) -> Iterator[None]:
    """Report InputErrors raised inside as errors of parameter ``name``."""
    try:
        yield
    except InputError as err:
        raise InputError(name, err.reason) from None


def band_statistics(raw: Sequence[np.ndarray], normalisation: Mapping | None, rng: np.random.Generator,
                    parameter: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(mean, std, how) per band: from ``normalisation`` {"mean": [...], "std": [...]} if given, else from up to
    4096 random images of ``raw`` (arrays (n, C, S, S) of any dtype). A constant band gets std 1."""
    channels = raw[0].shape[1]
    if normalisation is not None:
        try:
            mean, std = (np.asarray(normalisation[k], np.float64).reshape(-1) for k in ("mean", "std"))
        except (KeyError, TypeError, ValueError):
            raise InputError(parameter, "the normalisation must be {\"mean\": [...], \"std\": [...]} with one number "
                                        "per band") from None
        if len(mean) != channels or len(std) != channels or not (np.all(np.isfinite(mean)) and np.all(std > 0)):
            raise InputError(parameter, f"the normalisation needs {channels} finite means and {channels} positive "
                                        f"standard deviations (one per band), got mean {mean.tolist()} and std "
                                        f"{std.tolist()}")
        return mean, std, "given"
    sizes = [len(r) for r in raw]
    picked = np.sort(rng.choice(sum(sizes), size=min(sum(sizes), STATS_SAMPLE), replace=False))
    edges = np.cumsum([0, *sizes])
    sample = [(block, picked[(picked >= lo) & (picked < hi)] - lo) for block, lo, hi in zip(raw, edges, edges[1:])]
    count = len(picked) * math.prod(raw[0].shape[2:])
    mean = sum(x.astype(np.float64).sum(axis=(0, 2, 3)) for x in _chunks(sample)) / count
    var = sum(((x.astype(np.float64) - mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
              for x in _chunks(sample)) / count
    std = np.sqrt(var)
    return mean, np.where(std > 0, std, 1.0), f"computed from {len(picked)} random images"


def _chunks(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
    """block[index] for each (block, index), a few million values at a time."""
    for block, index in parts:
        step = max(1, CHUNK_VALUES // max(1, math.prod(block.shape[1:])))
        for start in range(0, len(index), step):
            yield block[index[start:start + step]]


def normalised(raw: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """All of ``raw`` (arrays (n, C, S, S)) in one float16 array of (x - mean) / std per band (computed in float32
    for data that float32 holds exactly, such as 8- and 16-bit integers, else in float64)."""
    out = np.empty((sum(len(r) for r in raw), *raw[0].shape[1:]), np.float16)
    at = 0
    for block in raw:
        work = np.result_type(block.dtype, np.float32)
        shift, scale = mean[None, :, None, None].astype(work), (1.0 / std)[None, :, None, None].astype(work)
        step = max(1, CHUNK_VALUES // max(1, math.prod(block.shape[1:])))
        for start in range(0, len(block), step):
            x = block[start:start + step].astype(work)
            x -= shift
            x *= scale
            np.copyto(out[at:at + len(x)], x, casting="same_kind")
            at += len(x)
    return out
