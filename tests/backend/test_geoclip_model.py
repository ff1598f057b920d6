"""The converted GeoCLIP encoder against the released weights' own maths and known behaviour."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest
import torch

from geoembed import geoclip_release
from geoembed.errors import GeoEmbedError
from geoembed.store import ModelStore

from ..conftest import geoclip_wheel


def published_forward(state: dict[str, torch.Tensor], lat_lon: torch.Tensor) -> torch.Tensor:
    """GeoCLIP's location encoder written out from its state dict (input (lat, lon), float64 throughout)."""
    lat, lon = torch.deg2rad(lat_lon[:, 0]), torch.deg2rad(lat_lon[:, 1])
    a1, a2, a3, a4 = 1.340264, -0.081106, 0.000893, 0.003796
    theta = torch.asin(math.sqrt(3) / 2 * torch.sin(lat))
    denominator = 3 * (9 * a4 * theta**8 + 7 * a3 * theta**6 + 3 * a2 * theta**2 + a1)
    x = 2 * math.sqrt(3) * lon * torch.cos(theta) / denominator
    y = a4 * theta**9 + a3 * theta**7 + a2 * theta**3 + a1 * theta
    v = torch.stack((x, y), 1) * 66.50336 / 180
    out = 0
    for i in range(3):
        s = {k[len(f"LocEnc{i}."):]: t.double() for k, t in state.items() if k.startswith(f"LocEnc{i}.")}
        vp = 2 * math.pi * v @ s["capsule.0.b"].T
        h = torch.cat((torch.cos(vp), torch.sin(vp)), -1)
        for j in (1, 3, 5):
            h = torch.relu(h @ s[f"capsule.{j}.weight"].T + s[f"capsule.{j}.bias"])
        out = out + h @ s["head.0.weight"].T + s["head.0.bias"]
    return out


def test_matches_published_maths(embedder):
    state = geoclip_release.read_weights(geoclip_wheel())
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 300), rng.uniform(-90, 90, 300)
    lon[:4], lat[:4] = [0, 180, -180, 12.5], [90, -90, 0, 41.9]
    expected = published_forward(state, torch.tensor(np.stack([lat, lon], 1))).numpy()  # (lat, lon) in
    got = embedder.embed(lon, lat)  # (lon, lat) in
    assert got.shape == (300, 512) and got.dtype == np.float32
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-5 * scale


def test_subnormal_weights_are_flushed_on_load(embedder):
    """GeoCLIP's file holds ~97,000 subnormal weights, which made CPU matrix products ~5x slower; the loaded model
    has none (test_matches_published_maths shows the outputs unchanged)."""
    from safetensors.torch import load_file

    from geoembed.store import WEIGHTS

    tiny = torch.finfo(torch.float32).tiny

    def subnormal(tensors) -> int:
        return sum(int(((t.abs() < tiny) & (t != 0)).sum()) for t in tensors if t.dtype == torch.float32)

    assert subnormal(load_file(str(embedder.dir / WEIGHTS)).values()) > 90_000
    assert subnormal([*embedder.model.parameters(), *embedder.model.buffers()]) == 0


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_fast_embedding_is_close_and_independent_of_batch_size(embedder):
    """bfloat16 matrix products where the CPU has AMX: ~1e-4 off in cosine terms; plain float32 elsewhere. Padding
    to a few batch sizes must not change a point's embedding."""
    from geoembed.bandlimited import cos_and_relative, deviation

    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-180, 180, 300), rng.uniform(-60, 75, 300)
    exact, fast = embedder.embed(lon, lat), embedder.embed(lon, lat, fast=True)
    if embedder.fast_available:
        error = deviation(*cos_and_relative(fast, exact))
        assert 0 < error.max() <= 2.5e-4
    else:  # the same float32 model: identical numbers (1 - cos in float64 would still show ~1e-15 of rounding)
        np.testing.assert_array_equal(fast, exact)
    np.testing.assert_allclose(embedder.embed(lon[:5], lat[:5], fast=True), fast[:5], rtol=0, atol=1e-2 *
                               np.abs(exact).max())


def test_near_places_are_more_similar(embedder):
    paris, brussels, sydney, hong_kong, shenzhen = embedder.embed(
        [2.3522, 4.3517, 151.2093, 114.1694, 114.0579], [48.8566, 50.8503, -33.8688, 22.3193, 22.5431])
    assert cosine(paris, brussels) > cosine(paris, sydney)
    assert cosine(hong_kong, shenzhen) > cosine(hong_kong, paris)


def test_card_records_provenance(store_home):
    card = ModelStore().card("geoclip")
    assert card["source"]["sha256"] == geoclip_release.SHA256
    assert card["input"]["order"] == "lon,lat" and card["source"]["input_order"] == "lat,lon"
    assert card["license"] == "MIT" and card["dimension"] == 512
    assert len(card["weights"]["sha256"]) == 64


def test_tampered_wheel_is_refused(tmp_path):
    wheel = tmp_path / "geoclip-1.3.0-py3-none-any.whl"
    buffer = io.BytesIO()
    torch.save({"LocEnc0.capsule.0.b": torch.zeros(256, 2)}, buffer)
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(geoclip_release.MEMBER, buffer.getvalue())
    store = ModelStore(tmp_path / "home")
    with pytest.raises(GeoEmbedError, match="sha256"):
        geoclip_release.install(store, wheel)
    assert store.ids() == []


def test_not_a_wheel_is_refused(tmp_path):
    bad = tmp_path / "geoclip-1.3.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(GeoEmbedError, match="not a geoclip 1.3.0 wheel"):
        geoclip_release.read_weights(bad)
