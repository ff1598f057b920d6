"""Training models and objectives: image encoders, contrastive losses, GeoCLIP's queue, position jitter and patch
augmentation, each checked against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoembed.coords import great_circle_km
from geoembed.training.augment import (
    EARTH_RADIUS_KM,
    PHOTO_JITTER_KM,
    augment_patches,
    auto_jitter_km,
    embed_symmetric,
    jitter_lonlat,
    symmetric_views,
    uniform_lonlat,
)
from geoembed.training.image_encoders import build_image_encoder
from geoembed.training.losses import ClipLoss, LocationQueue, MCBLDLoss

SAMPLES = 200_000


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- image encoders ---------------------------------------------------------------------------------------------

SPECS = [{"name": "cnn", "width": 8, "depth": 4}, {"name": "resnet18", "width": 8},
         {"name": "resnet18", "width": 8, "stem": "large"}]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("bands", [1, 3, 7])
@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_encoder_shapes(spec, bands, size):
    net = build_image_encoder(spec, bands, 12).eval()
    x = torch.randn(3, bands, size, size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (3, 12) and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("spec", [{"name": "cnn"}, {"name": "resnet18"}], ids=["cnn", "resnet18"])
def test_encoder_defaults_deterministic_and_trainable(spec):
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        nets.append(build_image_encoder(spec, 4, 16))
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.equal(a, b)
    x = torch.randn(4, 4, 16, 16)
    train_out = nets[0](x)
    assert torch.equal(train_out, nets[1](x))
    train_out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[0].parameters())
    net = nets[0].eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_resnet18_is_resnet18():
    """With ImageNet's stem, 3 bands and 1000 outputs, the parameter count is torchvision's resnet18's."""
    net = build_image_encoder({"name": "resnet18", "width": 64, "stem": "large"}, 3, 1000)
    assert sum(p.numel() for p in net.parameters()) == 11_689_512
    small = build_image_encoder({"name": "resnet18"}, 3, 1000)
    assert sum(p.numel() for p in small.parameters()) == 11_689_512 - 64 * 3 * (49 - 9)


@pytest.mark.parametrize("spec, message", [
    ({"name": "vit"}, "known: cnn, resnet18"),
    ("cnn", "known: cnn, resnet18"),
    ({"name": "cnn", "depht": 3}, "known: width, depth"),
    ({"name": "resnet18", "depth": 3}, "known: width, stem"),
    ({"name": "cnn", "width": 0}, "width"),
    ({"name": "cnn", "depth": 2.5}, "depth"),
    ({"name": "resnet18", "stem": "tiny"}, "small, large"),
])
def test_encoder_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        build_image_encoder(spec, 3, 8)


# --- losses -----------------------------------------------------------------------------------------------------

def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _ce(logits: np.ndarray, targets: np.ndarray) -> float:
    m = logits.max(axis=1, keepdims=True)
    log_z = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return float(np.mean(log_z - logits[np.arange(len(logits)), targets]))


def _clip_reference(img: np.ndarray, loc: np.ndarray, extra: np.ndarray | None, scale: float) -> float:
    img, loc = _normalise(img), _normalise(loc)
    candidates = loc if extra is None else np.concatenate([loc, _normalise(extra)])
    diagonal = np.arange(len(img))
    return (_ce(scale * img @ candidates.T, diagonal) + _ce(scale * loc @ img.T, diagonal)) / 2


def _embeddings(*shapes: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.normal(size=shape)) for shape in shapes]


@pytest.mark.parametrize("queue", [None, 5])
def test_clip_loss_matches_hand_computation(queue):
    img, loc, extra = _embeddings((6, 4), (6, 4), (queue or 1, 4))
    extra = extra if queue else None
    loss = ClipLoss()
    assert loss.logit_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    expected = _clip_reference(img.numpy(), loc.numpy(), None if extra is None else extra.numpy(),
                               math.exp(loss.logit_scale.item()))
    assert loss(img, loc, extra).item() == pytest.approx(expected, rel=1e-6)
    assert loss(3.0 * img, 0.5 * loc, extra).item() == pytest.approx(expected, rel=1e-6)  # normalised inside


def test_clip_queue_adds_negatives_to_image_side_only():
    img, loc, extra = _embeddings((8, 5), (8, 5), (16, 5), seed=1)
    loss = ClipLoss()
    plain = loss(img, loc).item()
    assert loss(img, loc, extra).item() > plain
    assert loss(img, loc, extra[:0]).item() == pytest.approx(plain, rel=1e-12)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        loss(img, loc[:7])


def test_clip_temperature_learnable_and_clamped():
    img, loc = _embeddings((6, 4), (6, 4), seed=2)
    loss = ClipLoss()
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)
    value = loss(img, loc) + loss(img, loc)  # two forwards before one backward
    assert loss.logit_scale.item() == pytest.approx(math.log(100), rel=1e-6)
    assert loss.temperature == pytest.approx(0.01, rel=1e-6)
    assert value.item() / 2 == pytest.approx(_clip_reference(img.numpy(), loc.numpy(), None, 100.0), rel=1e-6)
    value.backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.item() != 0.0


def test_clip_loss_decreases_when_optimised():
    torch.manual_seed(0)
    img = torch.nn.Parameter(torch.randn(16, 8))
    loc = torch.nn.Parameter(torch.randn(16, 8))
    loss = ClipLoss()
    optimiser = torch.optim.Adam([img, loc, *loss.parameters()], lr=0.05)
    values = []
    for _ in range(60):
        optimiser.zero_grad()
        value = loss(img, loc)
        value.backward()
        optimiser.step()
        values.append(value.item())
    assert values[-1] < 0.1 * values[0]
    assert loss.logit_scale.item() != pytest.approx(math.log(1 / 0.07))


def _mcbld_reference(img, loc, loc_dropout, random, t_batch, t_random, t_simcse, w_random, w_simcse, symmetric):
    img, loc, loc_dropout, random = map(_normalise, (img, loc, loc_dropout, random))
    diagonal = np.arange(len(img))
    batch = _ce(loc @ img.T / t_batch, diagonal)
    if symmetric:
        batch += _ce(img @ loc.T / t_batch, diagonal)
    rows = []
    for i in range(len(img)):
        negatives = random if random.ndim == 2 else random[i]
        rows.append(np.concatenate([[loc[i] @ img[i]], negatives @ img[i]]) / t_random)
    random_term = _ce(np.array(rows), np.zeros(len(img), dtype=int))
    simcse = _ce(loc @ loc_dropout.T / t_simcse, diagonal)
    return batch + w_random * random_term + w_simcse * simcse


@pytest.mark.parametrize("random_shape", [(7, 4), (5, 3, 4)], ids=["shared", "per-image"])
@pytest.mark.parametrize("params", [
    {},
    {"temperature_batch": 0.5, "temperature_random": 0.3, "temperature_simcse": 0.7, "random_weight": 0.4,
     "simcse_weight": 1.5, "symmetric": True},
], ids=["defaults", "custom"])
def test_mcbld_matches_hand_computation(random_shape, params):
    img, loc, loc_dropout, random = _embeddings((5, 4), (5, 4), (5, 4), random_shape, seed=3)
    full = {"temperature_batch": 1.0, "temperature_random": 1.0, "temperature_simcse": 1.0, "random_weight": 1.0,
            "simcse_weight": 1.0, "symmetric": False, **params}
    expected = _mcbld_reference(img.numpy(), loc.numpy(), loc_dropout.numpy(), random.numpy(), *full.values())
    assert MCBLDLoss(**params)(img, loc, loc_dropout, random).item() == pytest.approx(expected, rel=1e-9)


def test_mcbld_checks_shapes():
    img, loc, random = _embeddings((5, 4), (5, 4), (4, 3, 4))
    with pytest.raises(ValueError, match=r"\(K, D\) or \(B, K, D\)"):
        MCBLDLoss()(img, loc, loc, random)
    with pytest.raises(ValueError, match="positive"):
        MCBLDLoss(temperature_batch=0.0)


def test_location_queue_fifo_and_resume():
    queue = LocationQueue(5)
    assert len(queue) == 0 and queue.get().shape == (0, 2) and queue.get().dtype == torch.float64
    rows = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    queue.push(rows[:3])
    assert torch.equal(queue.get(), rows[:3].double())
    queue.push(rows[3:7])
    assert len(queue) == 5 and torch.equal(queue.get(), rows[2:7].double())
    queue.push(rows[7:8])
    assert torch.equal(queue.get(), rows[3:8].double())
    resumed = LocationQueue(5)
    resumed.load_state_dict(queue.state_dict())
    for q in (queue, resumed):
        q.push(rows[8:10])
    assert torch.equal(resumed.get(), queue.get()) and torch.equal(queue.get(), rows[5:10].double())
    big = torch.tensor([[179.123456789012345, -89.987654321098765]] * 3 + [[1.0, 2.0]] * 9, dtype=torch.float64)
    queue.push(big)
    assert torch.equal(queue.get(), big[-5:])
    assert all(isinstance(v, torch.Tensor) for v in queue.state_dict().values())
    with pytest.raises(ValueError, match="Q <= 5"):
        LocationQueue(5).load_state_dict({"lonlat": torch.zeros(6, 2)})
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        queue.push(torch.zeros(3))


# --- positions --------------------------------------------------------------------------------------------------

def _polar(origin: tuple[float, float], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle distance (km) and initial bearing (radians from north) from ``origin`` to each point."""
    lon1, lat1 = np.radians(origin)
    lon2, lat2 = np.radians(points[:, 0]), np.radians(points[:, 1])
    bearing = np.arctan2(np.sin(lon2 - lon1) * np.cos(lat2),
                         np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(lon2 - lon1))
    return great_circle_km(origin[0], origin[1], points[:, 0], points[:, 1]), bearing % (2 * np.pi)


def _cap_fraction(inner_km: float, km: float) -> float:
    """Fraction of a spherical cap of radius ``km`` lying within ``inner_km`` of its centre."""
    return (1 - math.cos(inner_km / EARTH_RADIUS_KM)) / (1 - math.cos(km / EARTH_RADIUS_KM))


def _jitter(origin: tuple[float, float], km: float, seed: int = 0) -> np.ndarray:
    lonlat = torch.tensor([origin], dtype=torch.float64).expand(SAMPLES, 2)
    out = jitter_lonlat(lonlat, km, _generator(seed))
    assert out.dtype == torch.float64 and out.shape == (SAMPLES, 2)
    out = out.numpy()
    assert (out[:, 0] >= -180).all() and (out[:, 0] < 180).all() and (np.abs(out[:, 1]) <= 90).all()
    return out


# 5000 km: the planar approximation of the cap's area would give 0.25 instead of 0.2596 within r / 2.
# (30, 80) with 1500 km: the cap contains the north pole; (179.99, -5) and (-180, 40): the antimeridian.
@pytest.mark.parametrize("origin, km", [((10.0, 45.0), 100.0), ((-70.0, -20.0), 5000.0), ((30.0, 80.0), 1500.0),
                                        ((179.99, -5.0), 50.0), ((-180.0, 40.0), 300.0)])
def test_jitter_uniform_over_the_cap(origin, km):
    out = _jitter(origin, km)
    distance, bearing = _polar(origin, out)
    assert distance.max() <= km * (1 + 1e-9)
    for share in (0.25, 0.5, 0.75):
        assert np.mean(distance <= share * km) == pytest.approx(_cap_fraction(share * km, km), abs=0.005)
    assert np.histogram(bearing, bins=8, range=(0, 2 * np.pi))[0] / SAMPLES == pytest.approx(1 / 8, abs=0.005)
    # unbiased: the mean displacement in the azimuthal equidistant plane around the origin vanishes
    mean_east, mean_north = np.mean(distance * np.sin(bearing)), np.mean(distance * np.cos(bearing))
    assert abs(mean_east) < 0.005 * km and abs(mean_north) < 0.005 * km
    if abs(origin[0]) > 179:
        assert (out[:, 0] < 0).mean() > 0.3 and (out[:, 0] > 0).mean() > 0.3


@pytest.mark.parametrize("origin", [(0.0, 90.0), (123.0, -90.0)])
def test_jitter_at_the_poles(origin):
    km = 200.0
    out = _jitter(origin, km, seed=1)
    distance = great_circle_km(origin[0], origin[1], out[:, 0], out[:, 1])
    assert distance.max() <= km * (1 + 1e-9)
    colatitude_km = np.radians(90 - np.abs(out[:, 1])) * EARTH_RADIUS_KM
    np.testing.assert_allclose(colatitude_km, distance, atol=1e-6)
    assert np.mean(distance <= km / 2) == pytest.approx(_cap_fraction(km / 2, km), abs=0.005)
    assert np.histogram(out[:, 0], bins=8, range=(-180, 180))[0] / SAMPLES == pytest.approx(1 / 8, abs=0.005)


def test_jitter_zero_reproducible_and_checked():
    lonlat = torch.tensor([[2.35, 48.86], [-180.0, 0.0], [0.0, -90.0]], dtype=torch.float32)
    assert torch.equal(jitter_lonlat(lonlat, 0.0, _generator()), lonlat.double())
    a = jitter_lonlat(lonlat, 10.0, _generator(7))
    assert torch.equal(a, jitter_lonlat(lonlat, 10.0, _generator(7)))
    assert not torch.equal(a, jitter_lonlat(lonlat, 10.0, _generator(8)))
    small = jitter_lonlat(lonlat.double(), 0.001, _generator())  # 1 m: no loss of precision
    distance = great_circle_km(lonlat[:, 0].double(), lonlat[:, 1].double(), small[:, 0], small[:, 1])
    assert (distance <= 0.001 * (1 + 1e-6)).all() and (distance > 0).all()
    for km in (-1.0, float("nan"), 30_000.0):
        with pytest.raises(ValueError, match="jitter"):
            jitter_lonlat(lonlat, km, _generator())
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        jitter_lonlat(lonlat[:, :1], 1.0, _generator())


def test_auto_jitter_is_half_a_patch_or_a_few_km_for_photos():
    assert auto_jitter_km({"kind": "raster patches", "patch_km": 237.2}) == 118.6
    assert auto_jitter_km({"kind": "photos"}) == PHOTO_JITTER_KM == 5.0


def test_uniform_lonlat_is_uniform_on_the_sphere():
    out = uniform_lonlat(SAMPLES, _generator(3)).numpy()
    assert out.shape == (SAMPLES, 2)
    assert (out[:, 0] >= -180).all() and (out[:, 0] < 180).all() and (np.abs(out[:, 1]) <= 90).all()
    z = np.sin(np.radians(out[:, 1]))  # uniform in [-1, 1] on a sphere (Archimedes)
    assert np.histogram(z, bins=8, range=(-1, 1))[0] / SAMPLES == pytest.approx(1 / 8, abs=0.005)
    assert np.histogram(out[:, 0], bins=8, range=(-180, 180))[0] / SAMPLES == pytest.approx(1 / 8, abs=0.005)
    assert torch.equal(uniform_lonlat(5, _generator(3)), torch.from_numpy(out[:5]))


# --- patch augmentation -----------------------------------------------------------------------------------------

def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of a square patch (C, S, S): rotations, then rotations of the mirrored patch."""
    return [torch.rot90(y, k, (-2, -1)) for y in (x, x.flip(-1)) for k in range(4)]


def _variants(images: torch.Tensor, out: torch.Tensor) -> list[int]:
    found = []
    for x, y in zip(images, out):
        matches = [i for i, v in enumerate(_dihedral(x)) if torch.equal(v, y)]
        assert len(matches) == 1
        found.append(matches[0])
    return found


@pytest.mark.parametrize("flips, rotations, expected", [
    (True, True, set(range(8))), (True, False, {0, 2, 4, 6}), (False, True, {0, 1, 2, 3}), (False, False, {0})])
def test_augment_patches_is_a_random_symmetry(flips, rotations, expected):
    images = torch.randn(400, 3, 7, 7, generator=_generator(5))
    before = images.clone()
    out = augment_patches(images, _generator(1), flips=flips, rotations=rotations)
    assert torch.equal(images, before) and out.shape == images.shape
    assert torch.equal(out.flatten(1).sort(dim=1).values, images.flatten(1).sort(dim=1).values)
    counts = np.bincount(_variants(images, out), minlength=8)
    assert set(np.flatnonzero(counts)) == expected
    assert counts[sorted(expected)].min() > 0.5 * 400 / len(expected)


@pytest.mark.parametrize("flips, rotations, expected", [
    (True, True, set(range(8))), (True, False, {0, 2, 4, 6}), (False, True, {0, 1, 2, 3}), (False, False, {0})])
def test_symmetric_views_are_the_symmetries_augmentation_draws(flips, rotations, expected):
    images = torch.randn(3, 2, 5, 5, generator=_generator(4))
    views = symmetric_views(images, flips, rotations)
    found = [set(_variants(images, v)) for v in views]
    assert all(len(f) == 1 for f in found) and set.union(*found) == expected and len(views) == len(expected)


@pytest.mark.parametrize("flips, rotations", [(True, True), (True, False), (False, True)])
def test_embed_symmetric_is_the_same_for_every_view(flips, rotations):
    """An embedding that tells views apart (a fixed linear map of the pixels) becomes one that does not."""
    images = torch.randn(4, 3, 6, 6, generator=_generator(2), dtype=torch.float64)
    weights = torch.randn(3 * 36, 5, generator=_generator(3), dtype=torch.float64)

    def embed(x):
        return x.flatten(1) @ weights
    views = symmetric_views(images, flips, rotations)
    assert not torch.allclose(embed(views[0]), embed(views[1]))
    plain = embed_symmetric(embed, images, flips, rotations)
    assert torch.allclose(plain.norm(dim=1), torch.ones(4, dtype=torch.float64))
    for view in views:
        assert torch.allclose(embed_symmetric(embed, view, flips, rotations), plain, atol=1e-12)
    mean = sum(torch.nn.functional.normalize(embed(v), dim=-1) for v in views)
    assert torch.allclose(plain, mean / mean.norm(dim=1, keepdim=True))
    assert torch.allclose(embed_symmetric(embed, images, False, False),
                          torch.nn.functional.normalize(embed(images), dim=-1))


def test_augment_patches_reproducible():
    images = torch.randn(64, 2, 16, 16, generator=_generator(5))
    a = augment_patches(images, _generator(9))
    assert torch.equal(a, augment_patches(images, _generator(9)))
    assert not torch.equal(a, augment_patches(images, _generator(10)))
    with pytest.raises(ValueError, match=r"\(B, C, S, S\)"):
        augment_patches(torch.zeros(2, 1, 8, 9), _generator())
