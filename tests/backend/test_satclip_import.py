"""Importing SatCLIP checkpoints: the same embeddings as SatCLIP's maths, usable everywhere, and bad files refused
without anything executed or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from pyproj import CRS

from geoembed.embedder import LocationEmbedder
from geoembed.encodings import build_encoding
from geoembed.encodings.spherical_harmonics import SphericalHarmonics
from geoembed.errors import InputError
from geoembed.grid import RasterGrid
from geoembed.model_import import import_model
from geoembed.rasters import embedding_raster, similarity_raster
from geoembed.store import ModelStore, sha256_file

from .. import satclip_checkpoint

POLES = np.array([[0.0, 90.0], [0.0, -90.0], [123.4, 90.0], [-77.0, -90.0], [180.0, 0.0], [-180.0, 45.0]])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(store, model id, checkpoint) for the fixture checkpoint imported once."""
    folder = tmp_path_factory.mktemp("satclip")
    path = satclip_checkpoint.write(folder / "satclip-test-l10.ckpt")
    store = ModelStore(folder / "home")
    import_model(store, path)
    return store, "satclip-test-l10", path


def points(n: int = 500) -> np.ndarray:
    rng = np.random.default_rng(1)
    lonlat = np.stack([rng.uniform(-180, 180, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))], axis=1)
    return np.concatenate([lonlat, POLES])


def satclip_forward(checkpoint: dict, lonlat: np.ndarray) -> np.ndarray:
    """SatCLIP's location encoder written out in float64: harmonics, sin(30 (W x + b)), sin(W x + b), W x + b."""
    hp, state = checkpoint["hyper_parameters"], checkpoint["state_dict"]
    x = SphericalHarmonics(hp["legendre_polys"], "satclip")(torch.from_numpy(lonlat))
    for i in range(hp["num_hidden_layers"]):
        w, b = state[f"model.location.nnet.layers.{i}.weight"], state[f"model.location.nnet.layers.{i}.bias"]
        x = torch.sin((30.0 if i == 0 else 1.0) * (x @ w.T + b))
    return (x @ state["model.location.nnet.last_layer.weight"].T + state["model.location.nnet.last_layer.bias"]).numpy()


def test_embeddings_match_satclips_maths(imported):
    store, model_id, _ = imported
    lonlat = points()
    expected = satclip_forward(satclip_checkpoint.checkpoint(), lonlat)
    got = LocationEmbedder(model_id, store).embed(lonlat[:, 0], lonlat[:, 1])
    assert got.shape == (len(lonlat), 8) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_satclip_convention_matches_its_generated_formulas():
    """A few of SatCLIP's sympy-generated terms (spherical_harmonics_ylm.py), theta = lat + 90, phi = lon + 180."""
    lonlat = points(50)
    theta, phi = np.radians(lonlat[:, 1] + 90.0), np.radians(lonlat[:, 0] + 180.0)
    c = np.cos(theta)
    s = np.sqrt(1.0 - c**2)
    formulas = {(0, 0): 0.886226925452758 * np.ones_like(c),
                (1, -1): 0.48860251190292 * s * np.sin(phi),
                (1, 0): 1.53499006191973 * c,
                (2, -2): 0.18209140509868 * (3.0 - 3.0 * c**2) * np.sin(2 * phi),
                (3, 0): 5.86184012479344 * c**3 - 3.51710407487606 * c,
                (3, 2): 1.44530572132028 * (1.0 - c**2) * np.cos(2 * phi) * c}
    features = SphericalHarmonics(4, "satclip")(torch.from_numpy(lonlat)).numpy()
    for (degree, order), expected in formulas.items():
        assert np.abs(features[:, degree * degree + degree + order] - expected).max() < 1e-12


# SatCLIP's generated expressions (its generator run for L = 40 from a copy outside the repository) evaluated by its
# code at one point each: (lon, lat, l, m, Y_lm). Its expanded polynomials cancel towards the poles, so the degree-39
# and 38 values already differ from the exact harmonics by up to 6.5e-2 at these latitudes.
SATCLIP_L40_VALUES = [
    (-120.5, 62.0, 39, 0, -1.395367734931476), (-120.5, 62.0, 39, 20, 0.10414093487961659),
    (-120.5, 62.0, 36, -7, -0.28382005849899494), (-120.5, 62.0, 38, 1, 0.24041594066886468),
    (33.0, -67.5, 39, 0, -0.8228543767115397), (33.0, -67.5, 39, 20, 0.010978677039517916),
    (33.0, -67.5, 36, -7, -0.29460304635136325), (33.0, -67.5, 38, 1, -0.5938105836804992),
    (150.25, 58.0, 39, 0, 1.0258458236868577), (150.25, 58.0, 39, 20, 0.4516963130314469),
    (150.25, 58.0, 36, -7, 0.2924207671214931), (150.25, 58.0, 38, 1, -0.5107177022342622)]


def test_generated_convention_reproduces_satclips_values_where_they_drift():
    generated = build_encoding({"name": "sh", "degrees": 40, "convention": "satclip-generated"})
    exact = SphericalHarmonics(40, "satclip")
    drift = []
    for lon, lat, degree, order, expected in SATCLIP_L40_VALUES:
        point = torch.tensor([[lon, lat]], dtype=torch.float64)
        row = degree * degree + degree + order
        assert generated(point)[0, row].item() == pytest.approx(expected, abs=1e-12)
        drift.append(abs(exact(point)[0, row].item() - expected))
    assert max(drift) > 0.05  # the exact harmonics would not do


def test_generated_convention_matches_the_low_degree_formulas_and_is_finite():
    lonlat = points(50)
    encoding = build_encoding({"name": "sh", "degrees": 16, "convention": "satclip-generated"})
    generated = encoding(torch.from_numpy(lonlat))
    assert torch.isfinite(generated).all()
    exact = SphericalHarmonics(16, "satclip")(torch.from_numpy(lonlat))
    assert (generated - exact).abs().max() < 1e-8  # at low degree the rounded constants barely drift


@pytest.mark.parametrize("degrees", [0, -3, 201, 2.5, True])
def test_generated_convention_refuses_bad_degrees(degrees):
    with pytest.raises(ValueError, match="degrees"):
        build_encoding({"name": "sh", "degrees": degrees, "convention": "satclip-generated"})


def test_card_records_the_source(imported):
    store, model_id, path = imported
    card = store.card(model_id)
    assert card["dimension"] == 8 and card["input"]["order"] == "lon,lat"
    assert card["architecture"] == {"name": "encoder", "params": {
        "encoding": {"name": "sh", "degrees": 10, "convention": "satclip-generated"},
        "network": {"name": "siren", "dim_out": 8, "hidden": 32, "layers": 2, "w0": 1.0, "w0_initial": 30.0}}}
    assert card["resolution_km"] == 2000.0
    assert card["source"]["sha256"] == sha256_file(path) and card["source"]["file"] == path.name
    assert card["source"]["weights"] == "model.location.nnet.*"
    assert "SatCLIP" in card["name"] and "Sentinel-2" in card["training_data"]
    assert sorted(p.name for p in (store.models_dir / model_id).iterdir()) == ["card.json", "pca.npz",
                                                                               "weights.safetensors"]


def test_imported_model_makes_rasters(imported, tmp_path):
    store, model_id, _ = imported
    embedder = LocationEmbedder(model_id, store)
    grid = RasterGrid.create(CRS.from_epsg(4326), (-180.0, -90.0, 180.0, 90.0), 10.0)
    result = embedding_raster(embedder, grid, tmp_path / "emb.tif", dims=3)
    with rasterio.open(tmp_path / "emb.tif") as ds:
        assert (ds.count, ds.width, ds.height) == (3, 36, 18)
        assert ds.tags()["geoembed_model_id"] == model_id
    assert result["bands"] == 3
    similarity_raster(embedder, grid, tmp_path / "sim.tif", (5.0, 5.0), evaluation="dense")
    with rasterio.open(tmp_path / "sim.tif") as ds:
        values = ds.read(1)
    assert values[8, 18] == pytest.approx(1.0, abs=1e-5) and np.all(values <= 1.0 + 1e-5)


def test_a_model_folder_imports_under_another_id(imported):
    store, model_id, _ = imported
    import_model(store, store.models_dir / model_id, model_id="copy", name="A copy")
    card = store.card("copy")
    assert card["name"] == "A copy" and card["imported_from"].endswith(model_id)
    lonlat = points(20)
    assert np.array_equal(LocationEmbedder("copy", store).embed(*lonlat.T), LocationEmbedder(model_id, store).embed(
        *lonlat.T))


def test_an_installed_id_needs_force(tmp_path):
    path = satclip_checkpoint.write(tmp_path / "m.ckpt")
    store = ModelStore(tmp_path / "home")
    import_model(store, path, model_id="m")
    with pytest.raises(InputError, match="already installed") as err:
        import_model(store, path, model_id="m")
    assert err.value.parameter == "MODEL_ID"
    import_model(store, path, model_id="m", force=True, name="replaced")
    assert store.card("m")["name"] == "replaced"


def _write_marker(path: str) -> None:
    Path(path).write_text("executed")


class RunsCode:
    """Unpickling this calls ``_write_marker`` (or exec): what a malicious checkpoint does."""

    def __init__(self, marker: Path, via_exec: bool):
        self.marker, self.via_exec = str(marker), via_exec

    def __reduce__(self):
        if self.via_exec:
            return exec, (f"open({self.marker!r}, 'w').write('executed')",)
        return _write_marker, (self.marker,)


def _bad_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected message) for every kind of bad input."""
    def save(name, content):
        torch.save(content, tmp_path / name)
        return tmp_path / name

    good = satclip_checkpoint.write(tmp_path / "good.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    marker = tmp_path / "marker"

    def changed(hyper_parameters: dict | None = None, state: dict | None = None) -> dict:
        """The good checkpoint with some hyper-parameters or weights replaced (None: removed)."""
        checkpoint = satclip_checkpoint.checkpoint()
        checkpoint["hyper_parameters"].update(hyper_parameters or {})
        for key, value in (state or {}).items():
            if value is None:
                del checkpoint["state_dict"][key]
            else:
                checkpoint["state_dict"][key] = value
        return checkpoint

    nan_bias = torch.zeros(32, dtype=torch.float64)
    nan_bias[0] = float("nan")
    return {
        "truncated": (truncated, "truncated or corrupt"),
        "garbage": (garbage, "truncated or corrupt"),
        "pickled function": (save("evil.ckpt", changed({"callback": RunsCode(marker, via_exec=False)})),
                             "not plain tensors.*refusing to execute"),
        "pickled exec": (save("exec.ckpt", {"state_dict": RunsCode(marker, via_exec=True)}), "refusing to execute"),
        "not a checkpoint": (save("tensor.ckpt", torch.zeros(3)), "needs 'hyper_parameters' and 'state_dict'"),
        "unknown encoding": (save("theory.ckpt", changed({"le_type": "theory"})),
                             "le_type='theory' cannot be mapped.*supported: sphericalharmonics"),
        "unknown network": (save("fcnet.ckpt", changed({"pe_type": "fcnet"})), "pe_type='fcnet'.*supported: siren"),
        "closed-form harmonics": (save("cf.ckpt", changed({"harmonics_calculation": "closed-form"})),
                                  "harmonics_calculation='closed-form'"),
        "L = 0": (save("l0.ckpt", changed({"legendre_polys": 0})), "legendre_polys must be"),
        "L = 10000": (save("l1e4.ckpt", changed({"legendre_polys": 10000})),
                      "legendre_polys must be an integer from 1 to 101"),
        "L as text": (save("ltext.ckpt", changed({"legendre_polys": "10"})), "legendre_polys must"),
        "mismatched shapes": (save("shapes.ckpt", changed({"legendre_polys": 12})),
                              r"layers.0.weight has shape \(32, 100\), expected \(32, 144\)"),
        "missing weights": (save("missing.ckpt", changed(state={"model.location.nnet.last_layer.bias": None})),
                            "missing model.location.nnet.last_layer.bias"),
        "non-finite weights": (save("nan.ckpt", changed(state={"model.location.nnet.layers.1.bias": nan_bias})),
                               "non-finite"),
        "no such file": (tmp_path / "absent.ckpt", "does not exist"),
        "other file": (save("weights.pt", {}), "neither a SatCLIP checkpoint"),
    }


def test_bad_checkpoints_are_refused_and_nothing_is_written(tmp_path):
    store = ModelStore(tmp_path / "home")
    for name, (path, message) in _bad_checkpoints(tmp_path).items():
        with pytest.raises(InputError, match=message) as err:
            import_model(store, path)
        assert err.value.parameter == "INPUT", name
    assert not (tmp_path / "marker").exists()
    assert not (tmp_path / "home").exists()


def test_command_line(tmp_path):
    path = satclip_checkpoint.write(tmp_path / "satclip-l10.ckpt")
    env = {**os.environ, "GEOEMBED_HOME": str(tmp_path / "home")}

    def geoembed(*args):
        return subprocess.run([sys.executable, "-m", "geoembed", "--progress", "json", "models", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    done = geoembed("import", str(path), "--name", "Mine")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["type"], result["model"], result["dimension"]) == ("result", "satclip-l10", 8)
    shown = geoembed("show", "satclip-l10")
    assert json.loads(shown.stdout.splitlines()[-1])["card"]["name"] == "Mine"
    refused = geoembed("import", str(path))
    error = json.loads(refused.stdout.splitlines()[-1])
    assert refused.returncode == 2 and error["parameter"] == "MODEL_ID" and "--force" in error["message"]
    unknown = geoembed("show", "nope")
    assert unknown.returncode == 2 and json.loads(unknown.stdout.splitlines()[-1])["parameter"] == "MODEL_ID"
