"""Coordinate features of (lon, lat) degrees, in float64: unit vectors and low-degree spherical harmonics."""

from __future__ import annotations

import numpy as np
import torch

from ..encodings import build_encoding


def unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """(n, 3) float64 unit vectors (x towards lon 0, z towards the north pole)."""
    lonlat = torch.from_numpy(np.stack([np.asarray(lon, np.float64).ravel(), np.asarray(lat, np.float64).ravel()], 1))
    return build_encoding({"name": "cartesian3d"})(lonlat).numpy()


def coordinate_features(lon: np.ndarray, lat: np.ndarray, degrees: int) -> np.ndarray:
    """(n, degrees^2 - 1) float64 real spherical harmonics of degrees 1 .. degrees-1 (degree 1 is the unit vector).

    Smooth functions of position, latitude bands included, are linear in these features.
    """
    if degrees < 2:
        return np.zeros((np.size(lon), 0))
    lonlat = torch.from_numpy(np.stack([np.asarray(lon, np.float64).ravel(), np.asarray(lat, np.float64).ravel()], 1))
    return build_encoding({"name": "sh", "degrees": int(degrees)})(lonlat).numpy()[:, 1:]
