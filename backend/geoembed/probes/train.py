"""Train a probe: cross-validation of the probe, its heads and the raw-coordinate baselines on random and spatial
block folds, side by side, then the final fit on all points."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import InputError
from .heads import (
    KERNEL_MAX_POINTS,
    fit_kernel,
    fit_knn_xyz,
    fit_linear,
    fit_mlp,
    inner_splits,
    knn_head,
    make_inputs,
    score,
    standardisation,
    validation_rows,
)
from .labels import LabelledPoints
from .probe import Probe
from .validation import BASELINES, block_folds, check_fold_classes, forest_baseline, knn_baseline, metrics, random_folds

ProgressFn = Optional[Callable[[float, str], None]]
PROBE_TYPES = {"auto": ("linear", "knn", "mlp", "kernel"), "linear": ("linear",), "mlp": ("mlp",)}
COORD_DEGREES = 10
BLEND_STEPS = 20  # blend weights are multiples of 1 / BLEND_STEPS
VALUE_MARGIN = 0.05  # regression outputs are clipped to the training labels' range widened by this fraction
CONFUSION_CLASSES = 20
SCATTER_POINTS = 5000


def squared_error(task: str, truth: np.ndarray, out: np.ndarray) -> float:
    """Mean squared error of values, or of class probabilities against one-hot truth (the Brier score)."""
    if task == "regression":
        return float(np.mean((out - truth) ** 2))
    out = np.array(out, np.float64)
    out[np.arange(len(truth)), truth] -= 1.0
    return float(np.mean(np.sum(out * out, axis=1)))


def blend_weights(task: str, truth: np.ndarray, outputs: list[np.ndarray]) -> list[float]:
    """Weights on the simplex (multiples of 1/BLEND_STEPS) whose blend of validation outputs has the least
    squared error: a proper score, steadier on a few validation points than accuracy, which counts only argmaxes."""
    best = None
    for combo in itertools.product(range(BLEND_STEPS + 1), repeat=len(outputs) - 1):
        if sum(combo) > BLEND_STEPS:
            continue
        weights = [c / BLEND_STEPS for c in combo] + [1.0 - sum(combo) / BLEND_STEPS]
        s = -squared_error(task, truth, sum(w * o for w, o in zip(weights, outputs)))
        if best is None or s > best[0] + 1e-12:
            best = (s, weights)
    return best[1]


def head_kinds(probe_type: str, n: int) -> list[str]:
    """The heads of a probe type for ``n`` training points."""
    return [k for k in PROBE_TYPES[probe_type] if k != "kernel" or n <= KERNEL_MAX_POINTS]


def fit_probe(embeddings: np.ndarray, lon: np.ndarray, lat: np.ndarray, y: np.ndarray, *, task: str,
              classes: list[str] | None, label: str, model: dict, probe_type: str = "auto", seed: int = 0,
              kinds: list[str] | None = None, smooth_km: Sequence[float] = (0.0,),
              progress: ProgressFn = None) -> Probe:
    """One probe on these points (y: class indices or float values), heads (default: head_kinds) blended by
    inner CV; ``smooth_km``: the smoothing radii of the embeddings' parts (the probe applies them to new positions)."""
    kinds = kinds or head_kinds(probe_type, len(y))
    n_classes = len(classes) if classes is not None else 0
    tensors = standardisation(embeddings, lon, lat, COORD_DEGREES)
    inputs = make_inputs(tensors, COORD_DEGREES, embeddings, lon, lat)
    splits = inner_splits(len(y), seed)
    heads, validation = [], []
    for i, kind in enumerate(kinds):
        if progress:
            progress(i / len(kinds), f"fitting the {kind} head")
        torch.manual_seed(seed)
        start = time.perf_counter()
        if kind == "linear":
            head, weights, predicted = fit_linear(task, inputs, y, n_classes, splits)
        elif kind == "mlp":
            head, weights, predicted = fit_mlp(task, inputs, y, n_classes, splits, seed)
        elif kind == "kernel":
            head, weights, predicted = fit_kernel(task, embeddings, inputs.xyz, y, n_classes, splits)
        else:
            k, predicted = fit_knn_xyz(task, inputs.xyz, y, n_classes, splits)
            head, weights = knn_head(k, lon, lat, y)
        head["fit_seconds"] = round(time.perf_counter() - start, 2)
        heads.append(head)
        tensors.update(weights)
        validation.append(predicted)
    rows = validation_rows(splits)
    value_range = None
    if task == "regression":
        margin = VALUE_MARGIN * (np.max(y) - np.min(y))
        value_range = [float(np.min(y) - margin), float(np.max(y) + margin)]
        validation = [None if v is None else np.clip(v, *value_range) for v in validation]
    if len(heads) > 1 and len(rows) and all(v is not None for v in validation):
        blend = blend_weights(task, y[rows], validation)
    else:
        blend = [1.0 / len(heads)] * len(heads)
    for head, weight, predicted in zip(heads, blend, validation):
        head["weight"] = weight
        if predicted is not None:
            head["inner_cv_score"] = score(task, y[rows], predicted)
    return Probe(task, label, classes, dict(model), COORD_DEGREES, heads, tensors, value_range,
                 smooth_km=tuple(float(km) for km in smooth_km))


def _labels(points: LabelledPoints) -> tuple[np.ndarray, list[str] | None]:
    """(y, classes): class indices and sorted class names, or float values and None."""
    if points.task == "classification":
        names, y = np.unique(np.asarray(points.values).astype(str), return_inverse=True)
        if len(names) < 2:
            raise InputError("INPUT", f"every labelled point has the class {names[0]!r}: a classifier needs at "
                                      "least two classes")
        return y.astype(np.int64), [str(c) for c in names]
    if points.task != "regression":
        raise InputError("TASK", f"unknown task {points.task!r}; use classification or regression")
    y = np.asarray(points.values, np.float64)
    if not np.all(np.isfinite(y)):
        raise InputError("INPUT", "some labels are not finite numbers (NaN or infinite): remove them")
    return y, None


def _check_inputs(embeddings: np.ndarray, points: LabelledPoints, model: dict, radii: int) -> np.ndarray:
    embeddings = np.asarray(embeddings, np.float32)
    width = int(model["dimension"]) * radii
    if embeddings.ndim != 2 or embeddings.shape[0] != len(points) or embeddings.shape[1] != width:
        raise InputError("MODEL", f"embeddings of shape {embeddings.shape} do not match {len(points)} points and "
                                  f"model {model['model_id']!r} of dimension {model['dimension']} at {radii} "
                                  "smoothing radii")
    if not np.all(np.isfinite(embeddings)):
        raise InputError("MODEL", "some embeddings are not finite; check the model")
    return embeddings


def _cross_validate(embeddings, points: LabelledPoints, y, classes, model, kinds, fold, seed, smooth_km,
                    step) -> dict:
    """Out-of-fold predictions of the probe (blend), of each head and of the baselines; their metrics."""
    task, n_classes = points.task, len(classes or [])
    predicted: dict[str, np.ndarray] = {}
    for k in range(int(fold.max()) + 1):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        probe = fit_probe(embeddings[train], points.lon[train], points.lat[train], y[train], task=task,
                          classes=classes, label=points.name, model=model, seed=seed, kinds=kinds,
                          smooth_km=smooth_km, progress=lambda f, m, k=k: step(k + f, m))
        outputs = probe.head_outputs(embeddings[test], points.lon[test], points.lat[test])
        blend = probe.blend(outputs)
        found = {"probe": blend, **{f"{h['kind']} head": o for h, o in zip(probe.heads, outputs)}}
        found = {name: o.argmax(axis=1) if task == "classification" else o for name, o in found.items()}
        args = (points.lon[train], points.lat[train], y[train], points.lon[test], points.lat[test])
        found["knn_unit_vectors"] = knn_baseline(task, *args, n_classes, seed)
        found["forest_latlon"] = forest_baseline(task, *args, seed, threads=torch.get_num_threads())
        for name, values in found.items():
            predicted.setdefault(name, np.zeros(len(y), values.dtype))[test] = values
    return {"metrics": {name: metrics(task, y, p) for name, p in predicted.items()}, "predicted": predicted}


def _plot_data(task: str, y: np.ndarray, classes, predicted: dict[str, np.ndarray], seed: int) -> dict:
    if task == "classification":
        top = np.argsort(-np.bincount(y, minlength=len(classes)), kind="stable")[:CONFUSION_CLASSES]
        code = np.full(len(classes), len(top))
        code[top] = np.arange(len(top))
        matrix = np.zeros((len(top) + (len(classes) > len(top)),) * 2, np.int64)
        np.add.at(matrix, (code[y], code[predicted["probe"]]), 1)
        names = [classes[i] for i in top] + (["other"] if len(classes) > len(top) else [])
        return {"kind": "confusion", "classes": names, "matrix": matrix.tolist()}
    rows = np.sort(np.random.default_rng(seed).permutation(len(y))[:SCATTER_POINTS])
    return {"kind": "scatter", "truth": y[rows].tolist(), "predicted": predicted["probe"][rows].tolist()}


def train_probe(embeddings: np.ndarray, points: LabelledPoints, *, model: dict, probe_type: str = "auto",
                folds: int = 5, block_km: float = 1000.0, seed: int = 0, units: str = "",
                smooth_km: Sequence[float] = (0.0,),
                progress: ProgressFn = None) -> tuple[Probe, dict]:
    """Cross-validate on random and on spatial-block folds, then fit the probe on all points.

    ``model``: model_id, weights_sha256, dimension; ``units``: of regression labels and ``smooth_km``: the
    smoothing of ``embeddings`` (both kept by the probe). Returns (probe, report); raises InputError before any
    work if the folds are impossible.
    """
    if probe_type not in PROBE_TYPES:
        raise InputError("PROBE_TYPE", f"unknown probe type {probe_type!r}; use one of {', '.join(PROBE_TYPES)}")
    embeddings = _check_inputs(embeddings, points, model, len(smooth_km))
    y, classes = _labels(points)
    splits = {"random": random_folds(len(y), folds, seed),
              "block": block_folds(points.lon, points.lat, folds, block_km, seed)}
    if classes is not None:
        check_fold_classes(y, splits["random"], "FOLDS")
        check_fold_classes(y, splits["block"], "BLOCK_KM")
    total = 2 * folds + 1
    done = 0

    def step(offset: float, message: str) -> None:
        if progress:
            progress((done + offset) / total, message)

    kinds = head_kinds(probe_type, len(y))  # the same heads in every fold and in the final probe
    validation = {}
    for name, fold in splits.items():
        validation[name] = _cross_validate(embeddings, points, y, classes, model, kinds, fold, seed, smooth_km,
                                           lambda f, m, name=name: step(f, f"{name} CV: {m}"))
        done += folds
    start = time.perf_counter()
    probe = fit_probe(embeddings, points.lon, points.lat, y, task=points.task, classes=classes, label=points.name,
                      model=model, seed=seed, kinds=kinds, smooth_km=smooth_km,
                      progress=lambda f, m: step(f, f"final fit: {m}"))
    seconds = time.perf_counter() - start
    main = "accuracy" if points.task == "classification" else "r2"
    summary = {f"{split}_{who}_{main}": validation[split]["metrics"][who][main]
               for split in splits for who in ("probe", *BASELINES)}
    probe.metrics = {split: validation[split]["metrics"]["probe"] for split in splits}
    probe.units = units if points.task == "regression" else ""
    probe.train = {"samples": len(y), "probe_type": probe_type, "folds": folds, "block_km": block_km, "seed": seed,
                   "fit_seconds": round(seconds, 2), "source": points.source}
    if progress:
        progress(1.0, "probe trained")
    report = {"label": points.name, "units": probe.units, "task": points.task, "samples": len(y), "classes": classes,
              "model": dict(model), "probe": probe.describe(), "folds": folds, "block_km": block_km, "seed": seed,
              "fit_seconds": round(seconds, 2), "summary": summary, "baselines": BASELINES,
              "validation": {split: v["metrics"] for split, v in validation.items()},
              "plots": {split: _plot_data(points.task, y, classes, v["predicted"], seed)
                        for split, v in validation.items()},
              "source": points.source}
    return probe, report
