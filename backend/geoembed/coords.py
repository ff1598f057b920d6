"""Coordinate helpers. Every array of positions in GeoEmbed is (lon, lat) in degrees, float64."""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

EARTH_RADIUS_KM = 6371.0088  # the mean radius of a spherical Earth


def wrap_lon(lon: np.ndarray) -> np.ndarray:
    """Wrap longitudes (degrees) into [-180, 180); values already inside stay exactly as they are."""
    lon = np.asarray(lon, dtype=np.float64)
    return np.where((lon >= -180.0) & (lon < 180.0), lon, (lon + 180.0) % 360.0 - 180.0)


def fibonacci_lattice(n: int, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` nearly equal-area points on the sphere, returned as (lon, lat) in degrees; ``start``/``stop`` select a
    run of them (they are numbered from the north pole south)."""
    if n < 1:
        raise ValueError("n must be positive")
    i = np.arange(start, n if stop is None else stop, dtype=np.float64) + 0.5
    lat = np.degrees(np.arcsin(1.0 - 2.0 * i / n))
    golden = (1.0 + math.sqrt(5.0)) / 2.0
    lon = wrap_lon(np.degrees(2.0 * math.pi * i / golden))
    return lon, lat


def unit_vectors(lon, lat) -> np.ndarray:
    """(..., 3) float64 unit vectors of (lon, lat) degrees (x towards lon 0, z towards the north pole)."""
    lon, lat = np.radians(np.asarray(lon, np.float64)), np.radians(np.asarray(lat, np.float64))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def great_circle_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Haversine distance in km on a sphere of radius EARTH_RADIUS_KM."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lon1, lat1, lon2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def destination(lon, lat, bearing_deg, km) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) degrees reached from (lon, lat) along the great circle of initial bearing ``bearing_deg``
    (clockwise from north) after ``km``; arrays broadcast, float64, lon wrapped into [-180, 180).

    In vector form q = cos d p + sin d (cos theta north + sin theta east), with (east, north) taken from the
    point's longitude, so it stays exact at the poles (where north is the direction of that meridian).
    """
    point = unit_vectors(lon, lat)
    lon, lat = np.radians(np.asarray(lon, np.float64)), np.radians(np.asarray(lat, np.float64))
    d = np.asarray(km, np.float64)[..., None] / EARTH_RADIUS_KM
    theta = np.radians(np.asarray(bearing_deg, np.float64))[..., None]
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], axis=-1)
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], axis=-1)
    q = np.cos(d) * point + np.sin(d) * (np.cos(theta) * north + np.sin(theta) * east)
    new_lat = np.degrees(np.arctan2(q[..., 2], np.hypot(q[..., 0], q[..., 1])))
    return wrap_lon(np.degrees(np.arctan2(q[..., 1], q[..., 0]))), new_lat


def check_lonlat(lon: float, lat: float, parameter: str) -> None:
    """Raise InputError unless (lon, lat) is a finite position on the globe."""
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90.0:
        raise InputError(
            parameter,
            f"({lon}, {lat}) is not a valid (lon, lat) position; latitude must lie in [-90, 90]. "
            "Pick a point inside the valid area of its CRS.",
        )
