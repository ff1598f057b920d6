"""Smoothed embeddings (``LocationEmbedder.embed(..., smooth_km=...)``) and the great-circle destinations they use."""

from __future__ import annotations

import numpy as np
import pytest

from geoembed.coords import EARTH_RADIUS_KM, destination, great_circle_km, wrap_lon
from geoembed.embedder import RING_POINTS


@pytest.mark.parametrize("lon, lat", [(2.35, 48.86), (-70.0, -33.0), (179.99, -5.0), (-180.0, 0.0), (30.0, 89.9)])
@pytest.mark.parametrize("km", [0.001, 25.0, 3000.0])
def test_destination_is_km_away_along_its_bearing(lon, lat, km):
    bearings = np.arange(0.0, 360.0, 45.0)
    to_lon, to_lat = destination(np.full(8, lon), np.full(8, lat), bearings, km)
    assert ((to_lon >= -180.0) & (to_lon < 180.0)).all()
    np.testing.assert_allclose(great_circle_km(lon, lat, to_lon, to_lat), km, rtol=1e-6)
    # the initial bearing back from the formula: atan2(sin dlon cos lat2, cos lat1 sin lat2 - sin lat1 cos lat2 cos
    # dlon); near the pole its precision is poor for tiny steps, so check it where it is well defined
    if abs(lat) < 80.0:
        p1, p2, dl = np.radians(lat), np.radians(to_lat), np.radians(to_lon - lon)
        found = np.degrees(np.arctan2(np.sin(dl) * np.cos(p2), np.cos(p1) * np.sin(p2) -
                                      np.sin(p1) * np.cos(p2) * np.cos(dl))) % 360.0
        difference = (found - bearings + 180.0) % 360.0 - 180.0
        np.testing.assert_allclose(difference, 0.0, atol=1e-6)


def test_destination_over_the_pole_and_the_antimeridian():
    km_per_degree = np.pi * EARTH_RADIUS_KM / 180.0
    lon, lat = destination(10.0, 89.0, 0.0, 2.0 * km_per_degree)  # 2 degrees north from 89 N: over the pole
    assert lat == pytest.approx(89.0) and lon == pytest.approx(-170.0)
    lon, lat = destination(0.0, 90.0, 180.0, km_per_degree)  # south from the pole along lon 0's meridian
    assert lat == pytest.approx(89.0) and lon == pytest.approx(0.0, abs=1e-9)
    lon, lat = destination(179.9, 0.0, 90.0, 0.2 * km_per_degree)  # east across the antimeridian
    assert lon == pytest.approx(-179.9) and lat == pytest.approx(0.0, abs=1e-12)
    assert wrap_lon(np.array([180.0]))[0] == -180.0  # atan2 may give exactly 180 degrees


def test_smoothed_embedding_is_the_mean_over_the_ring(embedder):
    lon, lat = np.array([2.35, -3.70, 179.95, 0.0]), np.array([48.86, 40.42, 65.0, 90.0])
    expected = np.zeros((len(lon), embedder.dim))
    for k in range(RING_POINTS + 1):
        where = (lon, lat) if k == 0 else destination(lon, lat, (k - 1) * 360.0 / RING_POINTS, 25.0)
        e = embedder.embed(*where).astype(np.float64)
        expected += e / np.linalg.norm(e, axis=1, keepdims=True)
    calls = []
    got = embedder.embed(lon, lat, lambda done, total: calls.append((done, total)), smooth_km=25.0)
    np.testing.assert_allclose(got, expected / (RING_POINTS + 1), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32 and got.shape == (len(lon), embedder.dim)
    # progress runs once from 0 to the end over all the ring's positions, never backwards
    assert calls[-1] == ((RING_POINTS + 1) * len(lon),) * 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and {t for _, t in calls} == {calls[-1][1]}
    # GeoCLIP's finest Fourier features vary within 25 km: smoothing changes its embeddings markedly
    plain = embedder.embed(lon, lat)
    cosine = np.sum(plain * got, axis=1) / np.linalg.norm(plain, axis=1) / np.linalg.norm(got, axis=1)
    assert (cosine < 0.99).all() and (cosine > 0.3).all()


def test_several_radii_give_their_smoothed_embeddings_side_by_side(embedder):
    """(0, 25, 100): the plain embedding and the two smoothed ones, each as if asked for alone; the position itself
    is embedded once for all three (progress counts 1 + 2 x RING_POINTS positions per point)."""
    lon, lat = np.array([2.35, 179.95, -60.0]), np.array([48.86, 65.0, -80.0])
    calls = []
    got = embedder.embed(lon, lat, lambda done, total: calls.append((done, total)), smooth_km=(0.0, 25.0, 100.0))
    assert got.shape == (len(lon), 3 * embedder.dim) and got.dtype == np.float32
    parts = np.split(got, 3, axis=1)
    np.testing.assert_array_equal(parts[0], embedder.embed(lon, lat))
    for part, km in zip(parts[1:], (25.0, 100.0)):
        np.testing.assert_allclose(part, embedder.embed(lon, lat, smooth_km=km), rtol=1e-6, atol=1e-7)
    assert calls[-1] == ((1 + 2 * RING_POINTS) * len(lon),) * 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize("km", [-1.0, float("nan"), float("inf"), (25.0, -1.0), ()])
def test_smoothing_radius_is_checked(embedder, km):
    with pytest.raises(ValueError, match="smooth_km"):
        embedder.embed(np.array([0.0]), np.array([0.0]), smooth_km=km)
