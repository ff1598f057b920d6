"""Validation of probes: random and spatial-block folds, metrics, and baselines on raw coordinates.

Spatial blocks are equal-area cells of about ``block_km`` x ``block_km`` on the sphere: latitude bands
``block_km`` high, each cut into as many longitude cells as its mid-latitude circumference holds. Whole blocks
are assigned to folds, so a test point never has a training point in its own block.
"""

from __future__ import annotations

import math

import numpy as np

from ..coords import EARTH_RADIUS_KM
from ..errors import InputError
from .features import unit_vectors
from .heads import fit_knn, predict_knn


def check_folds(n: int, folds: int) -> None:
    if folds < 2:
        raise InputError("FOLDS", f"cross-validation needs at least 2 folds, got {folds}")
    if n < folds:
        raise InputError("FOLDS", f"{n} labelled points cannot be split into {folds} folds: use at least {folds} "
                                  "points (more samples) or fewer folds")


def random_folds(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold index (0 .. folds-1) of each of ``n`` points, in random order and as even as possible."""
    check_folds(n, folds)
    return np.random.default_rng(seed).permutation(np.arange(n) % folds)


def spatial_blocks(lon: np.ndarray, lat: np.ndarray, block_km: float) -> np.ndarray:
    """Id of the equal-area block of ``block_km`` that holds each point."""
    if not block_km > 0:
        raise InputError("BLOCK_KM", f"the block size must be a positive number of km, got {block_km}")
    band_deg = math.degrees(block_km / EARTH_RADIUS_KM)
    bands = max(1, math.ceil(180.0 / band_deg))
    band = np.clip(np.floor((np.asarray(lat) + 90.0) / band_deg).astype(np.int64), 0, bands - 1)
    middle = np.radians(np.minimum(-90.0 + (band + 0.5) * band_deg, 90.0))
    cells = np.maximum(1, np.round(2 * math.pi * EARTH_RADIUS_KM * np.cos(middle) / block_km)).astype(np.int64)
    cell = np.floor((np.asarray(lon) + 180.0) % 360.0 / 360.0 * cells).astype(np.int64) % cells
    return band * (1 << 32) + cell


def block_folds(lon: np.ndarray, lat: np.ndarray, folds: int, block_km: float, seed: int) -> np.ndarray:
    """Fold index of each point: blocks in random order, each to the fold with the fewest points so far."""
    check_folds(len(lon), folds)
    ids, block, counts = np.unique(spatial_blocks(lon, lat, block_km), return_inverse=True, return_counts=True)
    if len(ids) < folds:
        raise InputError("BLOCK_KM", f"the points fall in only {len(ids)} spatial blocks of {block_km:g} km, fewer "
                                     f"than the {folds} folds: use a smaller block size or fewer folds")
    fold_of_block = np.empty(len(ids), dtype=np.int64)
    sizes = np.zeros(folds, dtype=np.int64)
    for b in np.random.default_rng(seed).permutation(len(ids)):
        fold_of_block[b] = int(np.argmin(sizes))
        sizes[fold_of_block[b]] += counts[b]
    return fold_of_block[block]


def check_fold_classes(labels: np.ndarray, fold: np.ndarray, parameter: str) -> None:
    """Every training part (all folds but one) must hold at least two classes."""
    for k in np.unique(fold):
        if len(np.unique(labels[fold != k])) < 2:
            raise InputError(parameter, f"fold {k + 1}'s training points all have one class, so no classifier can "
                                        "be trained on them: use more samples, fewer folds or (for block folds) "
                                        "smaller blocks")


def metrics(task: str, truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Classification: accuracy, macro-F1 (over classes in truth or prediction); regression: R^2, MAE, RMSE,
    max error."""
    if task == "classification":
        labels = np.union1d(truth, predicted)
        f1 = []
        for c in labels:
            tp = np.sum((predicted == c) & (truth == c))
            denominator = np.sum(predicted == c) + np.sum(truth == c)
            f1.append(2.0 * tp / denominator if denominator else 0.0)
        return {"accuracy": float(np.mean(truth == predicted)), "macro_f1": float(np.mean(f1))}
    error = np.asarray(predicted, np.float64) - truth
    total = np.sum((truth - truth.mean()) ** 2)
    return {"r2": float(1.0 - np.sum(error ** 2) / total) if total > 0 else float("nan"),
            "mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
            "max_error": float(np.max(np.abs(error)))}


def knn_baseline(task: str, lon, lat, labels: np.ndarray, lon_test, lat_test, n_classes: int, seed: int) -> np.ndarray:
    """k nearest neighbours on unit vectors (k chosen by inner CV): class indices or values at the test points."""
    head, tensors = fit_knn(task, lon, lat, labels, n_classes, seed)
    out = predict_knn(head, tensors, unit_vectors(lon_test, lat_test), task, n_classes)
    return out.argmax(axis=1) if task == "classification" else out


def forest_baseline(task: str, lon, lat, labels: np.ndarray, lon_test, lat_test, seed: int,
                    threads: int = -1) -> np.ndarray:
    """A random forest (100 trees) on (lat, lon) degrees: class indices or values at the test points."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    forest = (RandomForestClassifier if task == "classification" else RandomForestRegressor)(
        n_estimators=100, n_jobs=threads, random_state=seed)
    forest.fit(np.stack([lat, lon], axis=1), labels)
    return forest.predict(np.stack([lat_test, lon_test], axis=1))


BASELINES = {"knn_unit_vectors": "kNN on unit vectors", "forest_latlon": "random forest on (lat, lon)"}
