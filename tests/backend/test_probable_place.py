"""The most probable place among a gallery's best points: the most probability within a radius."""

from __future__ import annotations

import numpy as np

from geoembed.coords import great_circle_km
from geoembed.probable_place import by_probability_mass, mode_radius_km, probability_mass


def candidates() -> tuple[np.ndarray, np.ndarray]:
    """One image: an isolated spike at (100, -40) most similar, a cluster of five near (10, 50) a little less."""
    lonlat = np.array([[[100.0, -40.0], [10.0, 50.0], [10.5, 50.2], [9.6, 49.9], [10.2, 49.6], [9.9, 50.4],
                        [-60.0, 0.0]]])
    cosine = np.array([[0.90, 0.88, 0.87, 0.87, 0.86, 0.86, 0.5]])
    return lonlat, cosine


def test_the_cluster_outweighs_a_lone_spike():
    lonlat, cosine = candidates()
    order = by_probability_mass(lonlat, cosine, temperature=0.05, radius_km=250.0)
    assert order[0, 0] == 1  # the cluster's most similar point
    assert sorted(order[0, :5]) == [1, 2, 3, 4, 5] and order[0, -1] == 6


def test_mass_sums_the_softmax_weights_within_the_radius():
    lonlat, cosine = candidates()
    mass = probability_mass(lonlat, cosine, 0.05, 250.0)[0]
    weights = np.exp((cosine[0] - 0.90) / 0.05)
    lon, lat = lonlat[0, :, 0], lonlat[0, :, 1]
    near = great_circle_km(lon[:, None], lat[:, None], lon[None, :], lat[None, :]) <= 250.0
    assert np.allclose(mass, near @ weights)
    assert mass[0] == 1.0  # the spike has only itself


def test_without_a_resolution_the_most_similar_point_comes_first():
    lonlat, cosine = candidates()
    assert mode_radius_km(None) is None and mode_radius_km(1000.0) == 250.0
    assert by_probability_mass(lonlat, cosine, 0.05, None)[0].tolist() == list(range(7))
