"""The model store: one folder per model with ``card.json``, ``weights.safetensors`` and ``pca.npz``.

Location: $GEOEMBED_HOME, else $XDG_DATA_HOME/geoembed, else ~/.local/share/geoembed.
Layout: ``<home>/models/<id>/card.json``. The QGIS plugin reads the cards directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import InputError

CARD = "card.json"
WEIGHTS = "weights.safetensors"
PCA = "pca.npz"
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def default_home() -> Path:
    if os.environ.get("GEOEMBED_HOME"):
        return Path(os.environ["GEOEMBED_HOME"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "geoembed"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelStore:
    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else default_home()
        self.models_dir = self.home / "models"

    def ids(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.iterdir() if (p / CARD).is_file() and _ID.match(p.name))

    def path(self, model_id: str) -> Path:
        if not _ID.match(model_id or "") or not (self.models_dir / model_id / CARD).is_file():
            known = ", ".join(self.ids()) or "none"
            raise InputError(
                "MODEL",
                f"unknown model {model_id!r} in the model store {self.models_dir} (installed: {known}). "
                "Run `geoembed models` to list models, or `make setup` to install the default model 'geoclip'.",
            )
        return self.models_dir / model_id

    def card(self, model_id: str) -> dict:
        with open(self.path(model_id) / CARD, encoding="utf-8") as f:
            return json.load(f)

    def cards(self) -> list[dict]:
        return [self.card(i) for i in self.ids()]

    def install(self, model_id: str, files: dict[str, Path], card: dict) -> Path:
        """Move ``files`` (name -> path) and the card into the store atomically; replaces an older copy."""
        if not _ID.match(model_id):
            raise InputError("MODEL", f"{model_id!r} is not a valid model id (lower-case letters, digits, _ . -)")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.", dir=self.models_dir))
        try:
            for name, src in files.items():
                shutil.copyfile(src, staging / name)
            card = {**card, "id": model_id, "weights": {**card.get("weights", {}), "file": WEIGHTS,
                                                        "sha256": sha256_file(staging / WEIGHTS)}}
            (staging / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
            target = self.models_dir / model_id
            old = None
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{model_id}.old.", dir=self.models_dir))
                os.replace(target, old / "m")
            os.replace(staging, target)
            if old:
                shutil.rmtree(old, ignore_errors=True)
            return target
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
