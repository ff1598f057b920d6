"""Positional encodings of (lon, lat) degrees, by name; ``build_encoding({"name": ..., **params})``."""

from __future__ import annotations

import inspect
from functools import partial
from typing import Callable

from .base import Encoding, check_lonlat, sincos_deg
from .basic import Cartesian3D, Direct, Wrap
from .fourier import NeRF, RandomFourierFeatures
from .rbf import RadialBasis
from .space2vec import Grid, Theory
from .sphere2vec import DoubleFourierSphere, Sphere2Vec
from .spherical_harmonics import SphericalHarmonics

ENCODINGS: dict[str, Callable[..., Encoding]] = {
    "sh": SphericalHarmonics,
    "spherec": partial(Sphere2Vec, "spherec"),
    "spherec+": partial(Sphere2Vec, "spherec+"),
    "spherem": partial(Sphere2Vec, "spherem"),
    "spherem+": partial(Sphere2Vec, "spherem+"),
    "dfs": DoubleFourierSphere,
    "grid": Grid,
    "theory": Theory,
    "wrap": Wrap,
    "rbf": RadialBasis,
    "rff": RandomFourierFeatures,
    "nerf": NeRF,
    "cartesian3d": Cartesian3D,
    "direct": Direct,
}


def build_encoding(spec: dict) -> Encoding:
    """An encoding from ``{"name": ..., **params}``; ValueError for unknown names or parameters."""
    if not isinstance(spec, dict) or spec.get("name") not in ENCODINGS:
        name = spec.get("name") if isinstance(spec, dict) else spec
        raise ValueError(f"unknown encoding {name!r}; known: {', '.join(ENCODINGS)}")
    params = {k: v for k, v in spec.items() if k != "name"}
    factory = ENCODINGS[spec["name"]]
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as err:
        raise ValueError(f"encoding {spec['name']!r}: {err}") from err
    return factory(**params)


__all__ = ["ENCODINGS", "Encoding", "build_encoding", "check_lonlat", "sincos_deg"]
