"""A trained probe, and its file: one safetensors file (``.geoprobe``), never pickle.

The file's tensors hold the standardisation and the heads' weights (and the training positions, labels or
embeddings that the knn and kernel heads need); its string metadata holds the probe's JSON (format, task,
classes, units of regression values, model id, sha256 and dimension, heads, metrics) under ``geoembed_probe``
and, under ``sha256``, a digest of that JSON and of every tensor's name, dtype, shape and bytes, checked on
loading so that any change to the file is caught.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_bytes
from ..errors import InputError
from .heads import KnnIndex, make_inputs, predict_kernel, predict_knn, predict_linear, predict_mlp

FORMAT = "geoembed-probe"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # version 1: no smooth_km (0); version 2: one smoothing radius, a number
BATCH = 65536


@dataclass
class Prediction:
    """``values``: class indices into ``Probe.classes`` (int64) or values (float64); ``confidence``: the largest
    class probability (float32), None for regression."""

    values: np.ndarray
    confidence: np.ndarray | None


@dataclass
class Probe:
    """Heads on [standardised embedding, coordinate features] blended with fixed weights; see heads.py."""

    task: str
    label: str
    classes: list[str] | None
    model: dict  # model_id, weights_sha256, dimension
    coordinate_degrees: int
    heads: list[dict]  # each {"kind": ..., "weight": blend weight, hyperparameters}
    tensors: dict[str, np.ndarray]
    value_range: list[float] | None = None  # regression outputs are clipped to this
    metrics: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    units: str = ""  # of the regression values, e.g. "mm/year" ("" unknown; probes saved before it have none)
    # the probe reads the embeddings smoothed over each of these distances, side by side (LocationEmbedder.embed),
    # in training too; 0: the embedding at the place itself
    smooth_km: tuple[float, ...] = (0.0,)

    def __post_init__(self):
        self._knn: KnnIndex | None = None

    @property
    def model_id(self) -> str:
        return self.model["model_id"]

    @property
    def input_dimension(self) -> int:
        """The width of the embeddings the probe reads: the model's dimension for each smoothing radius."""
        return int(self.model["dimension"]) * len(self.smooth_km)

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    def describe(self) -> dict:
        """What the probe is, without its weights or metrics (JSON-able, small)."""
        return {"format": FORMAT, "version": VERSION, "task": self.task, "label": self.label, "model": self.model,
                "classes": self.classes, "coordinate_degrees": self.coordinate_degrees, "heads": self.heads,
                "value_range": self.value_range, "units": self.units, "smooth_km": list(self.smooth_km)}

    def check_compatible(self, model_id: str, weights_sha256: str, dimension: int) -> None:
        """Raise InputError("PROBE") unless the embeddings come from the model the probe was trained on."""
        mine = self.model
        if weights_sha256 != mine["weights_sha256"] or int(dimension) != int(mine["dimension"]):
            raise InputError(
                "PROBE",
                f"this probe was trained on model {mine['model_id']!r} ({mine['dimension']}-d, weights sha256 "
                f"{mine['weights_sha256'][:12]}...), not on model {model_id!r} ({dimension}-d, weights sha256 "
                f"{weights_sha256[:12]}...): embeddings of different models are not interchangeable. Apply it with "
                f"model {mine['model_id']!r} as trained, or train a new probe on model {model_id!r}.")

    # ---- prediction ----

    def head_outputs(self, embeddings: np.ndarray, lon: np.ndarray, lat: np.ndarray,
                     weighted_only: bool = False) -> list[np.ndarray | None]:
        """Each head's output: class probabilities (n, classes) or values (n,); None for heads of weight 0 if
        ``weighted_only``."""
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.input_dimension:
            raise InputError("PROBE", f"the probe expects {self.input_dimension}-d embeddings (model dimension "
                                      f"{self.model['dimension']} x {len(self.smooth_km)} smoothing radii), got "
                                      f"an array of shape {embeddings.shape}")
        inputs = make_inputs(self.tensors, self.coordinate_degrees, embeddings, lon, lat)
        outputs = []
        for head in self.heads:
            if weighted_only and head["weight"] == 0:
                outputs.append(None)
            elif head["kind"] == "linear":
                outputs.append(predict_linear(self.tensors, inputs, self.task))
            elif head["kind"] == "mlp":
                outputs.append(predict_mlp(self.tensors, inputs, self.task))
            elif head["kind"] == "kernel":
                outputs.append(predict_kernel(head, self.tensors, embeddings, inputs.xyz, self.task))
            else:
                if self._knn is None:
                    self._knn = KnnIndex(self.tensors)
                outputs.append(predict_knn(head, self.tensors, inputs.xyz, self.task, self.n_classes, self._knn))
        if self.value_range is not None:
            outputs = [None if out is None else np.clip(out, *self.value_range) for out in outputs]
        return outputs

    def blend(self, outputs: list[np.ndarray]) -> np.ndarray:
        return sum(head["weight"] * out for head, out in zip(self.heads, outputs) if head["weight"] > 0)

    def predict(self, embeddings: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> Prediction:
        """Blend the heads (probabilities or values, weighted) over batches of BATCH points."""
        lon, lat = np.asarray(lon, np.float64).ravel(), np.asarray(lat, np.float64).ravel()
        n = len(lon)
        values = np.empty(n, np.int64 if self.task == "classification" else np.float64)
        confidence = np.empty(n, np.float32) if self.task == "classification" else None
        for start in range(0, n, BATCH):
            part = slice(start, start + BATCH)
            blend = self.blend(self.head_outputs(embeddings[part], lon[part], lat[part], weighted_only=True))
            if confidence is not None:
                values[part] = blend.argmax(axis=1)
                confidence[part] = blend.max(axis=1)
            else:
                values[part] = blend
        return Prediction(values, confidence)

    # ---- file ----

    def _json(self) -> str:
        return json.dumps({**self.describe(), "metrics": self.metrics, "train": self.train}, sort_keys=True)

    def save(self, path: str | Path) -> Path:
        """Write the probe atomically (a temporary name beside ``path``, then a rename)."""
        from safetensors.numpy import save

        path = Path(path)
        text = self._json()
        data = save(self.tensors, metadata={"geoembed_probe": text, "sha256": _digest(text, self.tensors)})
        write_bytes(path, data)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Probe:
        """Read and verify a probe file; InputError("PROBE") if it is missing, unreadable or altered."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError("PROBE", f"probe file {path} does not exist")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}
            text = meta["geoembed_probe"]
            if meta.get("sha256") != _digest(text, tensors):
                raise ValueError("its checksum does not match its contents")
            info = json.loads(text)
            if info.get("format") != FORMAT or info.get("version") not in READABLE_VERSIONS:
                raise ValueError(f"format {info.get('format')!r} version {info.get('version')!r} is not "
                                 f"{FORMAT!r} version {' or '.join(map(str, READABLE_VERSIONS))}: a newer GeoEmbed "
                                 "wrote it")
            return cls(info["task"], info["label"], info["classes"], info["model"], info["coordinate_degrees"],
                       info["heads"], tensors, info["value_range"], info.get("metrics", {}), info.get("train", {}),
                       info.get("units", ""), _radii(info.get("smooth_km", 0.0)))
        except InputError:
            raise
        except Exception as e:
            raise InputError("PROBE", f"{path} is not a valid GeoEmbed probe file, or it was altered or damaged "
                                      f"({e}); train the probe again with `geoembed probe train`") from None


def _radii(value) -> tuple[float, ...]:
    """Smoothing radii from a probe's JSON: a list (version 3) or one number (version 2)."""
    radii = tuple(float(v) for v in (value if isinstance(value, list) else [value]))
    if not radii:
        raise ValueError("it lists no smoothing radius")
    return radii


def _digest(text: str, tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"\n{name}:{t.dtype.str}:{t.shape}\n".encode())
        h.update(t.tobytes())
    return h.hexdigest()
