"""Probes on real GeoCLIP embeddings: training, validation folds, the probe file and its checks, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geoembed.errors import InputError
from geoembed.probes import heads
from geoembed.probes.labels import LabelledPoints
from geoembed.probes.probe import Probe
from geoembed.probes.report import write_report
from geoembed.probes.train import blend_weights, fit_probe, squared_error, train_probe
from geoembed.probes.validation import block_folds, random_folds, spatial_blocks


def _uniform_sphere(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-180.0, 180.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def _band(lat: np.ndarray) -> np.ndarray:
    return np.where(lat > 30, "north", np.where(lat < -30, "south", "tropics"))


def _smooth(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return 30.0 * np.cos(np.radians(lat)) - 10.0 + 5.0 * np.sin(np.radians(lon))


@pytest.fixture(scope="module")
def model(embedder) -> dict:
    return {"model_id": embedder.model_id, "weights_sha256": embedder.weights_sha256, "dimension": embedder.dim}


@pytest.fixture(scope="module")
def data(embedder):
    """800 points uniform on the sphere (the first 300 or fewer for training, the last 500 for tests)."""
    lon, lat = _uniform_sphere(800, 1)
    return lon, lat, embedder.embed(lon, lat)


def _points(lon, lat, values, task) -> LabelledPoints:
    return LabelledPoints(lon, lat, values, task, "test label", {"test": True})


@pytest.fixture(scope="module")
def band_probe(data, model):
    lon, lat, emb = data
    labels = _band(lat[:300])
    classes, y = np.unique(labels, return_inverse=True)
    return fit_probe(emb[:300], lon[:300], lat[:300], y, task="classification", classes=list(classes),
                     label="band", model=model)


def test_classification_probe_beats_chance(band_probe, data):
    lon, lat, emb = data
    prediction = band_probe.predict(emb[300:], lon[300:], lat[300:])
    accuracy = np.mean(np.array(band_probe.classes)[prediction.values] == _band(lat[300:]))
    assert accuracy > 0.85  # the largest class holds half of the points
    assert prediction.confidence.dtype == np.float32
    assert np.all((prediction.confidence > 0.3) & (prediction.confidence <= 1.0 + 1e-6))
    assert abs(sum(h["weight"] for h in band_probe.heads) - 1.0) < 1e-9


def test_regression_train_probe_fits_and_reports(data, model, tmp_path):
    lon, lat, emb = data
    points = _points(lon[:200], lat[:200], _smooth(lon[:200], lat[:200]), "regression")
    seen = []
    probe, report = train_probe(emb[:200], points, model=model, folds=2, block_km=2000.0, units="degC",
                                progress=lambda f, m: seen.append(f))
    assert probe.units == report["units"] == "degC"
    assert Probe.load(probe.save(tmp_path / "smooth.geoprobe")).units == "degC"
    truth = _smooth(lon[300:], lat[300:])
    predicted = probe.predict(emb[300:], lon[300:], lat[300:]).values
    assert 1.0 - np.mean((predicted - truth) ** 2) / np.var(truth) > 0.9
    assert probe.predict(emb[300:], lon[300:], lat[300:]).confidence is None
    for split in ("random", "block"):
        assert set(report["validation"][split]) >= {"probe", "knn_unit_vectors", "forest_latlon"}
        assert report["validation"][split]["probe"]["r2"] > 0.8
    assert seen == sorted(seen) and seen[-1] == 1.0
    paths = write_report(report, tmp_path, "smooth")
    assert [p.name for p in paths] == ["smooth_report.json", "smooth_report.md", "smooth_report.png",
                                       "smooth_report.html"]
    text = paths[1].read_text()
    assert "spatial blocks" in text and "baseline: random forest on (lat, lon)" in text
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    assert "<table>" in paths[3].read_text() and 'src="smooth_report.png"' in paths[3].read_text()


def test_save_load_round_trip(band_probe, data, tmp_path):
    lon, lat, emb = data
    path = band_probe.save(tmp_path / "band.geoprobe")
    loaded = Probe.load(path)
    before = band_probe.predict(emb[300:], lon[300:], lat[300:])
    after = loaded.predict(emb[300:], lon[300:], lat[300:])
    np.testing.assert_array_equal(before.values, after.values)
    np.testing.assert_array_equal(before.confidence, after.confidence)
    assert loaded.describe() == band_probe.describe()
    assert [p.name for p in tmp_path.iterdir()] == ["band.geoprobe"]  # no temporary file left
    assert path.read_bytes()[8:9] == b"{"  # a safetensors file: 8-byte header length, then JSON


def _write_probe_file(probe: Probe, path, info: dict) -> None:
    from safetensors.numpy import save

    from geoembed.probes.probe import _digest

    text = json.dumps({**info, "metrics": {}, "train": {}}, sort_keys=True)
    path.write_bytes(save(probe.tensors, metadata={"geoembed_probe": text, "sha256": _digest(text, probe.tensors)}))


def test_a_version_1_probe_still_loads(band_probe, tmp_path):
    """Probes of format version 1 have no "smooth_km" and may have no "units": they load with neither."""
    old = {k: v for k, v in band_probe.describe().items() if k not in ("units", "smooth_km")}
    _write_probe_file(band_probe, tmp_path / "old.geoprobe", {**old, "version": 1})
    loaded = Probe.load(tmp_path / "old.geoprobe")
    assert loaded.units == "" and loaded.smooth_km == (0.0,) and loaded.classes == band_probe.classes


def test_a_version_2_probe_reads_its_one_smoothing_radius(band_probe, tmp_path):
    """Version 2 stored one smoothing radius as a number; it loads as a single radius."""
    _write_probe_file(band_probe, tmp_path / "v2.geoprobe", {**band_probe.describe(), "version": 2, "smooth_km": 25.0})
    loaded = Probe.load(tmp_path / "v2.geoprobe")
    assert loaded.smooth_km == (25.0,) and loaded.input_dimension == band_probe.model["dimension"]


def test_a_probe_from_a_newer_version_is_refused(band_probe, tmp_path):
    _write_probe_file(band_probe, tmp_path / "new.geoprobe", {**band_probe.describe(), "version": 99})
    with pytest.raises(InputError, match="a newer GeoEmbed wrote it"):
        Probe.load(tmp_path / "new.geoprobe")


def test_smoothing_radii_are_kept_in_the_probe_file(data, model, tmp_path):
    """Two radii: the probe reads embeddings twice the model's width, and says so when given the wrong width."""
    lon, lat, emb = data
    wide = np.concatenate([emb[:300], emb[:300][:, ::-1]], axis=1)
    probe, _ = train_probe(wide, _points(lon[:300], lat[:300], _smooth(lon[:300], lat[:300]), "regression"),
                           model=model, folds=3, block_km=2000.0, smooth_km=(25.0, 100.0))
    assert probe.smooth_km == (25.0, 100.0) and probe.describe()["smooth_km"] == [25.0, 100.0]
    loaded = Probe.load(probe.save(tmp_path / "p.geoprobe"))
    assert loaded.smooth_km == (25.0, 100.0) and loaded.input_dimension == 2 * model["dimension"]
    np.testing.assert_array_equal(loaded.predict(wide[:20], lon[:20], lat[:20]).values,
                                  probe.predict(wide[:20], lon[:20], lat[:20]).values)
    with pytest.raises(InputError, match=r"x 2 smoothing radii"):
        loaded.predict(emb[:20], lon[:20], lat[:20])
    with pytest.raises(InputError, match="at 2 smoothing radii"):
        train_probe(emb[:300], _points(lon[:300], lat[:300], _smooth(lon[:300], lat[:300]), "regression"),
                    model=model, folds=3, smooth_km=(25.0, 100.0))


@pytest.mark.parametrize("where", ["tensors", "header"])
def test_a_flipped_byte_is_caught(band_probe, tmp_path, where):
    path = band_probe.save(tmp_path / "band.geoprobe")
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    at = (header + len(data)) // 2 if where == "tensors" else data.index(b'"label') + 3
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as e:
        Probe.load(path)
    assert e.value.parameter == "PROBE" and "altered or damaged" in e.value.reason


def test_not_a_probe_file(tmp_path):
    path = tmp_path / "x.geoprobe"
    path.write_bytes(b"not a probe")
    with pytest.raises(InputError, match="PROBE"):
        Probe.load(path)
    with pytest.raises(InputError, match="does not exist"):
        Probe.load(tmp_path / "missing.geoprobe")


def test_check_compatible(band_probe, model):
    band_probe.check_compatible(model["model_id"], model["weights_sha256"], model["dimension"])
    with pytest.raises(InputError) as e:
        band_probe.check_compatible("satclip", "0" * 64, 256)
    assert e.value.parameter == "PROBE"
    assert "'geoclip'" in e.value.reason and "'satclip'" in e.value.reason and "train a new probe" in e.value.reason
    with pytest.raises(InputError):  # same id, other weights
        band_probe.check_compatible(model["model_id"], "f" * 64, model["dimension"])


def test_fewer_samples_than_folds(data, model):
    lon, lat, emb = data
    points = _points(lon[:4], lat[:4], _smooth(lon[:4], lat[:4]), "regression")
    with pytest.raises(InputError) as e:
        train_probe(emb[:4], points, model=model, folds=5)
    assert e.value.parameter == "FOLDS" and "at least 5" in e.value.reason


def test_impossible_class_layout(data, model):
    lon, lat, emb = data
    labels = np.where(np.arange(20) == 0, "rare", "common")
    with pytest.raises(InputError, match="one class"):
        train_probe(emb[:20], _points(lon[:20], lat[:20], labels, "classification"), model=model, folds=2)
    with pytest.raises(InputError, match="at least two classes"):
        train_probe(emb[:20], _points(lon[:20], lat[:20], np.full(20, "a"), "classification"), model=model)


def test_block_folds_keep_blocks_together():
    lon, lat = _uniform_sphere(5000, 2)
    blocks = spatial_blocks(lon, lat, 1000.0)
    fold = block_folds(lon, lat, 5, 1000.0, seed=0)
    for b in np.unique(blocks):
        assert len(np.unique(fold[blocks == b])) == 1
    assert np.bincount(fold).min() > 0.8 * len(lon) / 5  # balanced
    # Equal area: about 510 million km^2 / (1000 km)^2 blocks, each holding a similar number of points.
    ids, counts = np.unique(spatial_blocks(*_uniform_sphere(200_000, 3), 1000.0), return_counts=True)
    assert 480 < len(ids) < 540
    assert np.percentile(counts, 90) < 1.5 * np.median(counts)
    with pytest.raises(InputError, match="BLOCK_KM"):
        block_folds(lon, lat, 5, 20000.0, seed=0)


def test_random_folds_are_even():
    fold = random_folds(103, 5, seed=0)
    assert sorted(np.bincount(fold)) == [20, 20, 21, 21, 21]


def test_blend_weights_follow_the_brier_score_not_the_argmax():
    # Head a: right on all three points, barely; head b: sure and right on two, narrowly wrong on the third.
    # Accuracy would keep head a alone; the squared error of the probabilities prefers mostly head b.
    truth = np.array([0, 0, 0])
    a = np.array([[0.51, 0.49]] * 3)
    b = np.array([[1.0, 0.0], [1.0, 0.0], [0.45, 0.55]])
    weights = blend_weights("classification", truth, [a, b])
    assert weights[1] > 0.5
    blended = weights[0] * a + weights[1] * b
    assert squared_error("classification", truth, blended) < squared_error("classification", truth, a)
    assert squared_error("classification", truth, a) == pytest.approx(2 * 0.49 ** 2)
    assert squared_error("regression", np.array([1.0, 3.0]), np.array([2.0, 3.0])) == pytest.approx(0.5)


def test_mlp_members_fall_with_the_training_set():
    assert [heads.mlp_members(n) for n in (10, 100, 200, 250, 500, 999, 1000, 10000)] == [5, 5, 5, 4, 2, 1, 1, 1]


def test_the_mlp_head_stores_the_average_of_its_members(data):
    """The folded wide net predicts exactly the mean of the member nets' standardised outputs."""
    lon, lat, emb = data
    y = _smooth(lon[:100], lat[:100])
    tensors = heads.standardisation(emb[:100], lon[:100], lat[:100], 4)
    inputs = heads.make_inputs(tensors, 4, emb[:100], lon[:100], lat[:100])
    head, weights, _ = heads.fit_mlp("regression", inputs, y, 0, [], seed=3)
    assert head["members"] == 5 and head["hidden"] == 5 * heads.MLP_HIDDEN
    assert weights["mlp.weight1"].shape == (inputs.joined().shape[1], 5 * heads.MLP_HIDDEN)
    test = heads.make_inputs(tensors, 4, emb[300:], lon[300:], lat[300:])
    target = torch.from_numpy(((y - y.mean()) / y.std()).astype(np.float32))
    members = [heads._train_mlp("regression", inputs.joined(), target, 1, 3 + m, head["epochs"])[0]
               for m in range(5)]
    with torch.no_grad():
        mean = torch.stack([net(test.joined()) for net in members]).mean(dim=0)
    expected = mean[:, 0].double().numpy() * y.std() + y.mean()
    np.testing.assert_allclose(heads.predict_mlp(weights, test, "regression"), expected, rtol=1e-4, atol=1e-3)
