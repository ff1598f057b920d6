"""Positional encodings against independent computations (mpmath, scipy, pyproj, plain numpy formulas)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy.special import sph_harm

from geoembed.encodings import ENCODINGS, build_encoding
from geoembed.encodings.sh_reference import real_sh, reference
from geoembed.encodings.spherical_harmonics import SphericalHarmonics

RNG = np.random.default_rng(20240601)


def _points(n: int) -> np.ndarray:
    """n random (lon, lat) degrees uniform on the sphere, then both poles, the antimeridian and the equator."""
    lon = RNG.uniform(-180.0, 180.0, n)
    lat = np.degrees(np.arcsin(RNG.uniform(-1.0, 1.0, n)))
    extra = np.array([[0.0, 90.0], [-73.5, 90.0], [0.0, -90.0], [151.2, -90.0], [180.0, 0.0], [-180.0, 45.0]])
    return np.concatenate([np.stack([lon, lat], axis=1), extra])


def _encode(spec: dict, lonlat: np.ndarray, dtype=torch.float64) -> np.ndarray:
    return build_encoding(spec)(torch.from_numpy(lonlat), dtype=dtype).numpy()


def test_mpmath_reference_matches_mpmath_legenp():
    """The reference's Legendre values agree with mpmath.legenp (which carries the Condon-Shortley phase)."""
    ref = real_sh(6, 50.0, 0.0)
    for deg, m in [(3, 0), (5, 2), (4, 4)]:
        norm = math.sqrt((2 * deg + 1) / (4 * math.pi) * math.factorial(deg - m) / math.factorial(deg + m))
        expected = (-1) ** m * norm * float(mpmath.legenp(deg, m, mpmath.cos(mpmath.radians(50))))
        assert ref[deg * deg + deg + m] == pytest.approx(expected * (math.sqrt(2) if m else 1), abs=1e-14)


@pytest.mark.parametrize("L", [1, 2, 100])
def test_sh_matches_mpmath_everywhere_and_at_the_poles(L):
    lonlat = np.concatenate([_points(4), [[12.0, 89.9999999], [-100.0, -89.9999999]]])
    got = _encode({"name": "sh", "degrees": L}, lonlat)
    assert got.shape == (len(lonlat), L * L) and np.isfinite(got).all()
    ref = reference(L, lonlat)
    assert np.abs(got - ref).max() <= 1e-11


def test_sh_float32_at_L40():
    lonlat = _points(6)
    got = _encode({"name": "sh", "degrees": 40}, lonlat, dtype=torch.float32)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    ref = reference(40, lonlat)
    assert np.abs(got - ref).max() <= 2e-6


def test_sh_matches_scipy_where_finite():
    """scipy 1.10 overflows (l + m)! beyond 170: there its values are inf, nan or, a few, finite but wrong."""
    L = 100
    lonlat = _points(200)
    got = _encode({"name": "sh", "degrees": L}, lonlat)
    theta, phi = np.radians(90.0 - lonlat[:, 1]), np.radians(lonlat[:, 0])
    ref = np.empty_like(got)
    with np.errstate(all="ignore"):
        for deg in range(L):
            for m in range(-deg, deg + 1):
                c = sph_harm(abs(m), deg, phi, theta)  # complex, Condon-Shortley phase
                part = c.real if m >= 0 else c.imag
                ref[:, deg * deg + deg + m] = part if m == 0 else math.sqrt(2) * (-1) ** m * part
    finite = np.isfinite(ref)
    assert finite.mean() > 0.9
    degree = np.repeat(np.arange(L), 2 * np.arange(L) + 1)
    order = np.concatenate([np.arange(-deg, deg + 1) for deg in range(L)])
    finite &= (degree + np.abs(order) <= 170)[None, :]
    assert np.abs(got - ref)[finite].max() <= 1e-10


def test_sh_satclip_convention():
    """theta = lat + 90, phi = lon + 180 and m = 0 scaled by pi, computed directly in mpmath."""
    lonlat = _points(4)
    got = _encode({"name": "sh", "degrees": 20, "convention": "satclip"}, lonlat)
    ref = reference(20, lonlat, "satclip")
    assert np.abs(got - ref).max() <= 1e-11


def test_sh_chunks_give_the_same_values():
    sh = SphericalHarmonics(12)
    lonlat = torch.from_numpy(_points(1000))
    whole = sh(lonlat)
    sh.chunk = 7
    assert torch.equal(sh(lonlat), whole)
    assert torch.equal(sh(lonlat, dtype=torch.float32), whole.float())  # computed in a float64 block per chunk


@pytest.mark.parametrize("degrees", [0, -3, 201, 10**6, 2.5, True, "10"])
def test_sh_rejects_bad_degrees(degrees):
    with pytest.raises(ValueError, match="degrees"):
        build_encoding({"name": "sh", "degrees": degrees})


def test_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="unknown encoding 'spherical'.*known: sh"):
        build_encoding({"name": "spherical"})
    with pytest.raises(ValueError, match="encoding 'grid'"):
        build_encoding({"name": "grid", "radius": 3})
    with pytest.raises(ValueError, match="convention"):
        build_encoding({"name": "sh", "convention": "wikipedia"})
    with pytest.raises(ValueError, match="min_radius"):
        build_encoding({"name": "theory", "min_radius": 10, "max_radius": 1})
    with pytest.raises(ValueError, match="centres"):
        build_encoding({"name": "rbf", "centres": [[1, 2, 3]]})
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        build_encoding({"name": "wrap"})(torch.zeros(3, 3))


# Independent numpy formulas for the other encodings; lon = lam, lat = phi in radians.

def _scales(rmin, rmax, s):
    return np.array([1.0 / (rmin * (rmax / rmin) ** (i / (s - 1))) for i in range(s)])


def _sphere2vec(name, lam, phi, w):
    rows = []
    for ws in w:
        a, b = phi * ws, lam * ws
        if name == "spherec":
            rows += [np.sin(a), np.cos(a) * np.cos(b), np.cos(a) * np.sin(b)]
        elif name == "spherec+":
            rows += [np.sin(a), np.cos(a) * np.cos(b), np.cos(a) * np.sin(b), np.cos(a), np.sin(b), np.cos(b)]
        else:
            rows += [np.sin(a), np.cos(a) * np.cos(lam), np.cos(phi) * np.cos(b), np.cos(a) * np.sin(lam),
                     np.cos(phi) * np.sin(b)]
            if name == "spherem+":
                rows += [np.cos(a), np.sin(b), np.cos(b)]
    return np.stack(rows, axis=1)


@pytest.mark.parametrize("name", ["spherec", "spherec+", "spherem", "spherem+"])
def test_sphere2vec(name):
    lonlat = _points(50)
    spec = {"name": name, "min_radius": 0.01, "max_radius": 1.0, "frequency_num": 5}
    ref = _sphere2vec(name, np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1]), _scales(0.01, 1.0, 5))
    np.testing.assert_allclose(_encode(spec, lonlat), ref, atol=1e-12)


def test_dfs():
    lonlat = _points(30)
    lam, phi = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    w = _scales(0.05, 1.0, 3)
    single = [f(phi * ws) for ws in w for f in (np.sin, np.cos)] + [f(lam * ws) for ws in w for f in (np.sin, np.cos)]
    prod = [f(phi * wn) * g(lam * wm) for wn in w for wm in w for f in (np.sin, np.cos) for g in (np.sin, np.cos)]
    ref = np.stack(single + prod, axis=1)
    got = _encode({"name": "dfs", "min_radius": 0.05, "max_radius": 1.0, "frequency_num": 3}, lonlat)
    np.testing.assert_allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("name", ["grid", "theory"])
def test_space2vec(name):
    lonlat = _points(30)
    dirs = [(1, 0), (0, 1)] if name == "grid" else [(1, 0), (-0.5, 3**0.5 / 2), (-0.5, -(3**0.5) / 2)]
    scales = [1.0 * (360.0 / 1.0) ** (s / 3) for s in range(4)]
    ref = np.stack([f((lonlat @ np.array(d)) / lam) for lam in scales for d in dirs for f in (np.sin, np.cos)], 1)
    got = _encode({"name": name, "min_radius": 1.0, "max_radius": 360.0, "frequency_num": 4}, lonlat)
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_wrap_cartesian_direct():
    lonlat = _points(40)
    lam, phi = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    x, y = lonlat[:, 0] / 180.0, lonlat[:, 1] / 90.0
    wrap = np.stack([np.sin(np.pi * x), np.cos(np.pi * x), np.sin(np.pi * y), np.cos(np.pi * y)], 1)
    np.testing.assert_allclose(_encode({"name": "wrap"}, lonlat), wrap, atol=1e-12)
    np.testing.assert_allclose(_encode({"name": "cartesian3d"}, lonlat),
                               np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], 1),
                               atol=1e-12)
    np.testing.assert_allclose(_encode({"name": "direct"}, lonlat), np.stack([x, y], 1), atol=0)
    poles = _encode({"name": "cartesian3d"}, np.array([[33.0, 90.0], [-150.0, -90.0]]))
    assert (poles == [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]).all()


def test_nerf():
    lonlat = _points(20)
    x, y = lonlat[:, 0] / 180.0, lonlat[:, 1] / 90.0
    cols = [x, y] + [f(2.0**k * np.pi * v) for k in range(6) for f in (np.sin, np.cos) for v in (x, y)]
    ref = np.stack(cols, 1)
    ref[:, 2:] = ref[:, 2:].reshape(len(x), 6, 2, 2).reshape(len(x), -1)  # (sin x, sin y, cos x, cos y) per octave
    np.testing.assert_allclose(_encode({"name": "nerf", "frequency_num": 6, "include_input": True}, lonlat), ref,
                               atol=1e-11)


def test_rff_plain_and_equal_earth():
    from pyproj import Proj

    lonlat = _points(40)
    for projection in ("none", "equal_earth"):
        enc = build_encoding({"name": "rff", "frequencies": 16, "sigma": 3.0, "seed": 7, "projection": projection})
        b = enc.b.numpy()
        if projection == "none":
            v = np.radians(lonlat)
        else:
            v = np.stack(Proj("+proj=eqearth +R=1")(lonlat[:, 0], lonlat[:, 1]), 1) * (66.50336 / 180.0)
        phase = 2 * np.pi * v @ b.T
        ref = np.concatenate([np.cos(phase), np.sin(phase)], 1)
        tol = 1e-12 if projection == "none" else 1e-6  # GeoCLIP's Equal Earth uses rounded polynomial coefficients
        np.testing.assert_allclose(enc(torch.from_numpy(lonlat)).numpy(), ref, atol=tol)
    again = build_encoding({"name": "rff", "frequencies": 16, "sigma": 3.0, "seed": 7})
    assert torch.equal(again.b, enc.b)


def test_rbf_great_circle():
    centres = [[0.0, 0.0], [179.0, 10.0], [-179.0, -10.0], [20.0, 90.0]]
    lonlat = _points(40)
    lam, phi = np.radians(lonlat[:, 0])[:, None], np.radians(lonlat[:, 1])[:, None]
    c = np.radians(np.array(centres))
    cosd = np.sin(phi) * np.sin(c[:, 1]) + np.cos(phi) * np.cos(c[:, 1]) * np.cos(lam - c[:, 0])
    d = np.degrees(np.arccos(np.clip(cosd, -1, 1)))
    ref = np.exp(-(d**2) / (2 * 15.0**2))
    np.testing.assert_allclose(_encode({"name": "rbf", "centres": centres, "sigma": 15.0}, lonlat), ref, atol=1e-6)


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_every_encoding_shapes_dtype_and_poles(name):
    spec = {"name": name, **({"centres": [[0, 0], [90, 45]]} if name == "rbf" else {})}
    enc = build_encoding(spec)
    lonlat = torch.tensor(_points(5))
    out = enc(lonlat, dtype=torch.float32)
    assert out.shape == (len(lonlat), enc.dim) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert enc.to(torch.float32)(lonlat).dtype == torch.float64  # constants stay float64
