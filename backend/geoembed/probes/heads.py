"""The heads of a probe, fitted with hyperparameters chosen on inner validation splits of the training points.

- ``linear``: logistic regression (classification) or ridge regression on the standardised embedding next to
  standardised coordinate features; the L2 penalty and the weight of the coordinate block are chosen by CV.
- ``mlp``: one hidden layer on the same inputs, AdamW with weight decay, early stopping on a validation split; on
  small training sets several nets from different seeds, averaged (stored as one wider net).
- ``knn``: k nearest neighbours on unit vectors (raw coordinates, no embedding), k chosen by CV.
- ``kernel`` (up to KERNEL_MAX_POINTS points): kernel ridge regression (a Gaussian process mean; classes as
  one-hot targets) with the sum of a kernel on the embeddings' cosine similarity, one on the great-circle
  proximity of the positions and optionally one on latitude alone; widths and penalty chosen by exact
  leave-one-out.

Every head returns class probabilities (classification, (n, classes) float32) or values in label units
(regression, (n,) float64); ``fit_*`` also return predictions at the validation points of the inner splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from .features import coordinate_features, unit_vectors

Splits = list[tuple[np.ndarray, np.ndarray]]
INNER_FOLDS = 5
ALL_INNER_FOLDS_UP_TO = 2000  # points; larger training sets use the first inner fold only (20%)
RIDGE_L2 = np.logspace(5, -2, 15)  # descending, like every search below: the strongest penalty first
LOGISTIC_L2 = (1e4, 1e3, 1e2, 1e1, 1.0)  # descending: a warm-started path
LBFGS_ITERATIONS = 30
COORD_WEIGHTS = (1.0, 3.0, 10.0)  # the coordinate block's weight relative to the embedding's
TOLERANCE = 1e-3  # validation score (accuracy or R^2) a less regularised candidate must gain
KNN_K = (1, 2, 3, 5, 8, 12, 20, 30, 50)
MLP_HIDDEN = 256
MLP_ENSEMBLE_POINTS = 1000  # members = this // points, 1 to MLP_MAX_MEMBERS: averaging seeds steadies small fits
MLP_MAX_MEMBERS = 5
KERNEL_MAX_POINTS = 1200
KERNEL_TAU_EMBEDDING = (0.5, 1.0, 2.0)  # kernel exp((cos - 1) / tau) on embeddings
KERNEL_TAU_GEO = (0.01, 0.03, 0.1, 0.3, 1.0)  # ... and on unit vectors (0.01: about 900 km; 1.0: a global trend)
KERNEL_TAU_ZONAL = (0.003, 0.03)  # ... and optionally exp(-(sin lat - sin lat')^2 / tau): climate is zonal
KERNEL_L2 = np.logspace(1, -4, 11)


def inner_splits(n: int, seed: int) -> Splits:
    """(train, validation) index pairs: 5 random folds, all used up to ALL_INNER_FOLDS_UP_TO points, else one."""
    folds = min(INNER_FOLDS, n)
    if folds < 2:
        return []
    fold = np.random.default_rng(seed).permutation(np.arange(n) % folds)
    used = range(folds) if n <= ALL_INNER_FOLDS_UP_TO else range(1)
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in used]


def validation_rows(splits: Splits) -> np.ndarray:
    return np.concatenate([v for _, v in splits]) if splits else np.zeros(0, np.int64)


def score(task: str, truth: np.ndarray, out: np.ndarray) -> float:
    """Higher is better. Classification: accuracy, ties broken by the mean log-probability; regression: R^2."""
    if task == "classification":
        chosen = out[np.arange(len(truth)), truth]
        return float(np.mean(out.argmax(axis=1) == truth) + 1e-4 * np.mean(np.log(np.maximum(chosen, 1e-6))))
    return 1.0 - float(np.mean((out - truth) ** 2) / max(np.var(truth), 1e-300))


# ---- inputs ----

def standardisation(embeddings: np.ndarray, lon: np.ndarray, lat: np.ndarray, degrees: int) -> dict[str, np.ndarray]:
    """Means and scales of the embedding and of the coordinate features over the training points."""
    coords = coordinate_features(lon, lat, degrees)
    emb = np.asarray(embeddings, np.float64)

    def scale(x: np.ndarray) -> np.ndarray:
        s = x.std(axis=0)
        return np.where(s > 1e-12, s, 1.0).astype(np.float32)
    return {"emb_mean": emb.mean(axis=0).astype(np.float32), "emb_scale": scale(emb),
            "coord_mean": coords.mean(axis=0).astype(np.float32), "coord_scale": scale(coords)}


@dataclass
class Inputs:
    """Standardised embedding (n, d) and coordinate features (n, q) as float32 tensors, and unit vectors (n, 3)."""

    emb: torch.Tensor
    coords: torch.Tensor
    xyz: np.ndarray

    def joined(self, coord_weight: float = 1.0) -> torch.Tensor:
        return torch.cat([self.emb, coord_weight * self.coords], dim=1)


def make_inputs(tensors: dict[str, np.ndarray], degrees: int, embeddings: np.ndarray, lon: np.ndarray,
                lat: np.ndarray) -> Inputs:
    emb = (torch.from_numpy(np.asarray(embeddings, np.float32)) - torch.from_numpy(tensors["emb_mean"])) \
        / torch.from_numpy(tensors["emb_scale"])
    coords = (coordinate_features(lon, lat, degrees) - tensors["coord_mean"]) / tensors["coord_scale"]
    return Inputs(emb, torch.from_numpy(coords.astype(np.float32)), unit_vectors(lon, lat))


# ---- linear ----

def _ridge_basis(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(eigenvalues e, basis B, b) with ridge coefficients B @ (b / (e + l2)) for any l2 (x, y centred, float64)."""
    if x.shape[0] >= x.shape[1]:
        e, v = torch.linalg.eigh(x.T @ x)
        return e.clamp_min(0.0), v, v.T @ (x.T @ y)
    e, u = torch.linalg.eigh(x @ x.T)
    return e.clamp_min(0.0), x.T @ u, u.T @ y


def _ridge(x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, l2s) -> tuple[list[torch.Tensor], Callable]:
    """Validation predictions for every penalty in ``l2s`` (y: (n,) or (n, outputs)), and a function
    l2 -> (coefficients, intercept)."""
    x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
    e, basis, b = _ridge_basis(x - x_mean, y - y_mean)
    projected = (x_val - x_mean) @ basis
    shape = (-1,) + (1,) * (y.dim() - 1)
    predicted = [projected @ (b / (e + l2).reshape(shape)) + y_mean for l2 in l2s]

    def coefficients(l2: float) -> tuple[torch.Tensor, torch.Tensor]:
        coef = basis @ (b / (e + l2).reshape(shape))
        return coef, y_mean - x_mean @ coef
    return predicted, coefficients


def _logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, start=None):
    """Multinomial logistic regression, mean cross-entropy + l2 / (2 n) |W|^2, by L-BFGS from ``start`` (W, b)
    or from zero weights and the class priors. Returns (W, b)."""
    n, p = x.shape
    if start is None:
        prior = torch.bincount(y, minlength=n_classes).double() + 0.5
        start = (torch.zeros(p, n_classes), torch.log(prior / prior.sum()).float())
    w, b = (t.clone().requires_grad_(True) for t in start)
    opt = torch.optim.LBFGS([w, b], max_iter=LBFGS_ITERATIONS, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-5, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * l2 / n * (w * w).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return w.detach(), b.detach()


def _search_ridge(task: str, inputs: Inputs, y: np.ndarray, n_classes: int, splits: Splits):
    """Best (score, coordinate weight, l2, validation predictions) over COORD_WEIGHTS x RIDGE_L2; for
    classification, of least squares on one-hot classes (scored by accuracy)."""
    rows, best = validation_rows(splits), None
    target = np.eye(n_classes)[y] if task == "classification" else np.asarray(y, np.float64)
    target = torch.from_numpy(target)
    for weight in COORD_WEIGHTS:
        x = inputs.joined(weight).double()
        parts = [_ridge(x[t], target[t], x[v], RIDGE_L2)[0] for t, v in splits]
        for i, l2 in enumerate(RIDGE_L2):
            predicted = torch.cat([p[i] for p in parts]).numpy()
            s = score(task, y[rows], predicted.clip(1e-6) if task == "classification" else predicted)
            if best is None or s > best[0] + TOLERANCE:
                best = (s, weight, float(l2), predicted)
    return best


def _search_logistic(inputs: Inputs, y: np.ndarray, n_classes: int, splits: Splits, weight: float):
    """Best (score, coordinate weight, l2, validation predictions, (W, b) of the first split) over LOGISTIC_L2:
    a warm-started path that stops once the score falls off its peak."""
    rows, best, peak = validation_rows(splits), None, -math.inf
    x, yt = inputs.joined(weight), torch.from_numpy(y)
    states = [None] * len(splits)
    for l2 in LOGISTIC_L2:
        parts = []
        for i, (t, v) in enumerate(splits):
            states[i] = _logistic(x[t], yt[t], n_classes, l2, states[i])
            parts.append(torch.softmax(x[v] @ states[i][0] + states[i][1], dim=1).numpy())
        s = score("classification", y[rows], np.concatenate(parts))
        if best is None or s > best[0] + TOLERANCE:
            best = (s, weight, l2, np.concatenate(parts), states[0])
        if s < peak - TOLERANCE:
            break
        peak = max(peak, s)
    return best


def fit_linear(task: str, inputs: Inputs, y: np.ndarray, n_classes: int, splits: Splits):
    """(head, tensors, validation predictions at validation_rows(splits)).

    Candidates are tried from the most to the least regularised; a weaker penalty must beat the best so far by
    more than TOLERANCE, since a near-tie on validation points often hides wild extrapolation elsewhere.
    """
    if task == "regression":
        _, weight, l2, validation = _search_ridge(task, inputs, y, 0, splits) if splits else (0, 1.0, 1e2, None)
        x = inputs.joined(weight).double()
        coef, intercept = _ridge(x, torch.from_numpy(np.asarray(y, np.float64)), x[:0], [l2])[1](l2)
        w, b = coef[:, None], intercept[None]
    else:
        # The coordinate weight is the one that suits least squares on one-hot classes (cheap); a search of
        # the logistic over every weight costs three times as much for little gain once the heads are blended.
        weight = _search_ridge(task, inputs, y, n_classes, splits)[1] if splits else 1.0
        _, weight, l2, validation, start = _search_logistic(inputs, y, n_classes, splits, weight) if splits \
            else (0, 1.0, 1e2, None, None)
        w, b = _logistic(inputs.joined(weight), torch.from_numpy(y), n_classes, l2, start)
    w = w.clone()
    w[inputs.emb.shape[1]:] *= weight  # fold the coordinate weight in: the head reads unweighted inputs
    head = {"kind": "linear", "model": "ridge" if task == "regression" else "logistic", "l2": l2,
            "coordinate_weight": weight}
    # Ridge weights stay float64: with a small penalty they are large, and float32 sums would cancel badly.
    dtype = torch.float64 if task == "regression" else torch.float32
    return head, {"linear.weight": w.to(dtype).numpy(), "linear.bias": b.to(dtype).numpy()}, validation


def predict_linear(tensors: dict[str, np.ndarray], inputs: Inputs, task: str) -> np.ndarray:
    w, b = torch.from_numpy(tensors["linear.weight"]), torch.from_numpy(tensors["linear.bias"])
    out = inputs.joined().to(w.dtype) @ w + b
    return torch.softmax(out, dim=1).numpy() if task == "classification" else out[:, 0].numpy()


# ---- mlp ----

def _mlp(n_in: int, n_out: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(n_in, MLP_HIDDEN), torch.nn.GELU(),
                               torch.nn.Dropout(0.2), torch.nn.Linear(MLP_HIDDEN, n_out))


def _train_mlp(task: str, x: torch.Tensor, y: torch.Tensor, n_out: int, seed: int, epochs: int,
               x_val: torch.Tensor | None = None, y_val: torch.Tensor | None = None):
    """Train for ``epochs`` (or until the validation loss stops improving); returns (net, best epoch)."""
    torch.manual_seed(seed)
    net = _mlp(x.shape[1], n_out)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    loss_fn = F.cross_entropy if task == "classification" else (lambda o, t: F.mse_loss(o[:, 0], t))
    generator = torch.Generator().manual_seed(seed)
    batch = 512
    best = (math.inf, epochs, None)
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        if x_val is not None and epoch % 5 == 0:
            net.eval()
            with torch.no_grad():
                loss = float(loss_fn(net(x_val), y_val))
            if loss < best[0]:
                best = (loss, epoch, {k: t.clone() for k, t in net.state_dict().items()})
            elif epoch - best[1] >= 15:
                break
    if best[2] is not None:
        net.load_state_dict(best[2])
    return net.eval(), best[1]


def mlp_members(n: int) -> int:
    """How many nets the mlp head averages for ``n`` training points."""
    return int(np.clip(MLP_ENSEMBLE_POINTS // max(n, 1), 1, MLP_MAX_MEMBERS))


def fit_mlp(task: str, inputs: Inputs, y: np.ndarray, n_classes: int, splits: Splits, seed: int):
    """(head, tensors, validation predictions at validation_rows(splits)).

    The head averages the outputs (logits or standardised values) of mlp_members nets trained from different
    seeds; they are stored as one net with their hidden units side by side."""
    x = inputs.joined()
    if task == "regression":
        mean, std = float(np.mean(y)), float(np.std(y)) or 1.0
        target = torch.from_numpy(((y - mean) / std).astype(np.float32))
    else:
        mean, std, target = 0.0, 1.0, torch.from_numpy(y)
    n_out = n_classes if task == "classification" else 1
    seeds = [seed + m for m in range(mlp_members(len(y)))]
    parts, epochs = [], []
    for t, v in splits:
        outputs = []
        for member in seeds:
            net, epoch = _train_mlp(task, x[t], target[t], n_out, member, 150, x[v], target[v])
            epochs.append(epoch)
            with torch.no_grad():
                outputs.append(net(x[v]))
        parts.append(_mlp_output(torch.stack(outputs).mean(dim=0), task, mean, std))
    epochs_all = int(np.median(epochs)) if epochs else 100
    nets = [_train_mlp(task, x, target, n_out, member, epochs_all)[0] for member in seeds]
    firsts, lasts = [net[1] for net in nets], [net[4] for net in nets]
    weight2 = torch.cat([la.weight.detach().T for la in lasts]) * (std / len(nets))  # the mean of the members
    tensors = {"mlp.weight1": torch.cat([f.weight.detach().T for f in firsts], dim=1).contiguous().numpy(),
               "mlp.bias1": torch.cat([f.bias.detach() for f in firsts]).numpy(),
               "mlp.weight2": weight2.contiguous().numpy(),
               "mlp.bias2": (torch.stack([la.bias.detach() for la in lasts]).mean(dim=0) * std + mean).numpy()}
    head = {"kind": "mlp", "hidden": MLP_HIDDEN * len(nets), "members": len(nets), "epochs": epochs_all,
            "weight_decay": 1e-2, "dropout": 0.2}
    return head, tensors, np.concatenate(parts) if parts else None


def _mlp_output(out: torch.Tensor, task: str, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    return torch.softmax(out, dim=1).numpy() if task == "classification" else out[:, 0].double().numpy() * std + mean


def predict_mlp(tensors: dict[str, np.ndarray], inputs: Inputs, task: str) -> np.ndarray:
    hidden = F.gelu(inputs.joined() @ torch.from_numpy(tensors["mlp.weight1"]) + torch.from_numpy(tensors["mlp.bias1"]))
    return _mlp_output(hidden @ torch.from_numpy(tensors["mlp.weight2"]) + torch.from_numpy(tensors["mlp.bias2"]), task)


# ---- knn ----

def _knn_output(labels: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Class frequencies (classification) or means (regression) over the neighbours' labels (n, k)."""
    if task == "regression":
        return labels.mean(axis=1)
    n, k = labels.shape
    out = np.zeros((n, n_classes), np.float32)
    np.add.at(out, (np.repeat(np.arange(n), k), labels.ravel()), np.float32(1.0 / k))
    return out


def _neighbours(tree: cKDTree, xyz: np.ndarray, k: int) -> np.ndarray:
    return tree.query(xyz, k=k, workers=-1)[1].reshape(len(xyz), k)


def fit_knn_xyz(task: str, xyz: np.ndarray, y: np.ndarray, n_classes: int, splits: Splits):
    """(k, validation predictions at validation_rows(splits)) with k chosen on the splits."""
    rows = validation_rows(splits)
    ks = [k for k in KNN_K if all(k <= len(t) for t, _ in splits)]
    if not splits or not ks:
        return 1, None
    found = [y[t][_neighbours(cKDTree(xyz[t]), xyz[v], max(ks))] for t, v in splits]
    best = None
    for k in ks:
        predicted = np.concatenate([_knn_output(f[:, :k], task, n_classes) for f in found])
        s = score(task, y[rows], predicted)
        if best is None or s > best[0]:
            best = (s, k, predicted)
    return best[1], best[2]


def fit_knn(task: str, lon: np.ndarray, lat: np.ndarray, y: np.ndarray, n_classes: int, seed: int):
    """(head, tensors) of k nearest neighbours on unit vectors, k chosen by inner CV."""
    k, _ = fit_knn_xyz(task, unit_vectors(lon, lat), y, n_classes, inner_splits(len(y), seed))
    return knn_head(k, lon, lat, y)


def knn_head(k: int, lon: np.ndarray, lat: np.ndarray, y: np.ndarray):
    tensors = {"knn.lon": np.asarray(lon, np.float64), "knn.lat": np.asarray(lat, np.float64),
               "knn.labels": np.asarray(y, np.int64 if y.dtype.kind in "iu" else np.float64)}
    return {"kind": "knn", "k": int(min(k, len(y))), "on": "unit vectors"}, tensors


class KnnIndex:
    """A k-d tree over a knn head's training unit vectors, built once per probe."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.tree = cKDTree(unit_vectors(tensors["knn.lon"], tensors["knn.lat"]))
        self.labels = tensors["knn.labels"]


def predict_knn(head: dict, tensors: dict[str, np.ndarray], xyz: np.ndarray, task: str, n_classes: int,
                index: KnnIndex | None = None) -> np.ndarray:
    index = index or KnnIndex(tensors)
    return _knn_output(index.labels[_neighbours(index.tree, xyz, head["k"])], task, n_classes)


# ---- kernel ----

def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, rounded to float32 (as stored in the probe) and returned as float64."""
    x = np.asarray(x, np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)).astype(np.float32).astype(np.float64)


def _kernel(emb_a, xyz_a, emb_b, xyz_b, tau_embedding: float, tau_geo: float, tau_zonal: float | None):
    """exp((cos_emb - 1) / tau_embedding) + exp((cos_geo - 1) / tau_geo) [+ exp(-(dz)^2 / tau_zonal)], z = sin(lat)."""
    k = np.exp((emb_a @ emb_b.T - 1.0) / tau_embedding) + np.exp((xyz_a @ xyz_b.T - 1.0) / tau_geo)
    if tau_zonal:
        k += np.exp(-((xyz_a[:, 2:3] - xyz_b[:, 2][None, :]) ** 2) / tau_zonal)
    return k


def _kernel_output(out: np.ndarray, task: str) -> np.ndarray:
    """Regression: values; classification: one-hot regression outputs clipped at 0 and normalised to sum 1."""
    if task == "regression":
        return out
    out = np.maximum(out, 0.0)
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / out.shape[1]).astype(np.float32)


def _kernel_loo(task: str, kernel: np.ndarray, target: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(best leave-one-out score, its l2) of kernel ridge regression over KERNEL_L2 (exact, by eigendecomposition)."""
    e, u = np.linalg.eigh(kernel)
    e = np.maximum(e, 0.0)
    centred = target - target.mean(axis=0)
    uy = u.T @ centred.reshape(len(y), -1)
    best = None
    for l2 in KERNEL_L2:
        inverse = 1.0 / (e + l2)
        residual = (u @ (inverse[:, None] * uy)) / ((u * u) @ inverse)[:, None]
        s = score(task, y, _kernel_output((target.reshape(len(y), -1) - residual).reshape(target.shape), task))
        if best is None or s > best[0] + TOLERANCE:
            best = (s, float(l2))
    return best


def fit_kernel(task: str, embeddings: np.ndarray, xyz: np.ndarray, y: np.ndarray, n_classes: int, splits: Splits):
    """(head, tensors, validation predictions at validation_rows(splits)); classes are regressed as one-hot.

    The embedding and geographic widths are searched first, then whether a zonal (latitude) term helps."""
    emb = _unit_rows(embeddings)
    target = np.eye(n_classes)[y] if task == "classification" else np.asarray(y, np.float64)
    best = None
    for tau_e in KERNEL_TAU_EMBEDDING:
        for tau_g in KERNEL_TAU_GEO:
            s, l2 = _kernel_loo(task, _kernel(emb, xyz, emb, xyz, tau_e, tau_g, None), target, y)
            if best is None or s > best[0] + TOLERANCE:
                best = (s, tau_e, tau_g, None, l2)
    for tau_z in KERNEL_TAU_ZONAL:
        s, l2 = _kernel_loo(task, _kernel(emb, xyz, emb, xyz, best[1], best[2], tau_z), target, y)
        if s > best[0] + TOLERANCE:
            best = (s, best[1], best[2], tau_z, l2)
    _, *taus, l2 = best

    def solve(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = target[rows].mean(axis=0)
        return np.linalg.solve(_kernel(emb[rows], xyz[rows], emb[rows], xyz[rows], *taus) + l2 * np.eye(len(rows)),
                               target[rows] - m), m
    validation = []
    for t, v in splits:
        alpha, m = solve(t)
        validation.append(_kernel_output(_kernel(emb[v], xyz[v], emb[t], xyz[t], *taus) @ alpha + m, task))
    alpha, m = solve(np.arange(len(y)))
    head = {"kind": "kernel", "tau_embedding": taus[0], "tau_geo": taus[1], "tau_zonal": taus[2], "l2": l2}
    tensors = {"kernel.embedding": emb.astype(np.float32), "kernel.xyz": xyz, "kernel.alpha": alpha,
               "kernel.mean": np.atleast_1d(m)}
    return head, tensors, np.concatenate(validation) if validation else None


def predict_kernel(head: dict, tensors: dict[str, np.ndarray], embeddings: np.ndarray, xyz: np.ndarray,
                   task: str) -> np.ndarray:
    emb, train = _unit_rows(embeddings), tensors["kernel.embedding"].astype(np.float64)
    parts = []
    for start in range(0, len(xyz), 4096):
        part = slice(start, start + 4096)
        k = _kernel(emb[part], xyz[part], train, tensors["kernel.xyz"], head["tau_embedding"], head["tau_geo"],
                    head["tau_zonal"])
        out = k @ tensors["kernel.alpha"] + (tensors["kernel.mean"] if task == "classification" else
                                             tensors["kernel.mean"][0])
        parts.append(_kernel_output(out, task))
    return np.concatenate(parts) if parts else np.zeros((0,) + tensors["kernel.alpha"].shape[1:])
