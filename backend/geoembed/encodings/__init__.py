"""Positional encodings of (lon, lat) degrees, by name; ``build_encoding({"name": ..., **params})``."""

from __future__ import annotations

from functools import partial
from typing import Callable

from ..specs import build_from_spec
from .base import Encoding, check_lonlat, sincos_deg
from .basic import Cartesian3D, Direct, Wrap
from .fourier import NeRF, RandomFourierFeatures
from .rbf import RadialBasis
from .sh_satclip_generated import GeneratedSatclipHarmonics
from .space2vec import Grid, Theory
from .sphere2vec import DoubleFourierSphere, Sphere2Vec
from .spherical_harmonics import SphericalHarmonics


def spherical_harmonics(degrees: int = 10, convention: str = "textbook") -> Encoding:
    """Spherical harmonics: the stable recurrences, or SatCLIP's generated expressions (``satclip-generated``)."""
    if convention == "satclip-generated":
        return GeneratedSatclipHarmonics(degrees)
    return SphericalHarmonics(degrees, convention)


ENCODINGS: dict[str, Callable[..., Encoding]] = {
    "sh": spherical_harmonics,
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
    return build_from_spec(spec, ENCODINGS, "encoding")


__all__ = ["ENCODINGS", "Encoding", "build_encoding", "check_lonlat", "sincos_deg"]
