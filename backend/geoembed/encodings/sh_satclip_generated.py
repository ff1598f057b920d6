"""Spherical harmonics as SatCLIP's generated code evaluates them, for its released weights (convention
``satclip-generated``).

SatCLIP (Klemmer et al. 2025; harmonics code by Russwurm et al. 2024) evaluates each Y_lm from an expression that
SymPy printed once: A (1 - cos^2 theta)^(|m|/2) (d^|m| P_l / dx^|m|)(cos theta) trig(|m| phi), the derivative of the
Legendre polynomial expanded in powers of cos theta, every constant printed with 15 significant digits (after
rounding to 53 bits), theta = lat + 90 and phi = lon + 180 in degrees, trig = cos for m > 0 and sin for m < 0, and
A = sqrt(2 (2l+1)/(4 pi) (l-|m|)!/(l+|m|)!), except for m = 0 where A = sqrt((2l+1)/4 pi) is multiplied into the
expanded coefficients. Where the derivative is a single term its constant is multiplied into A, and that term
(cos theta, if any) comes after the trigonometric factor.

At high degree the expanded polynomials cancel catastrophically towards the poles and the rounded constants drift
from the exact harmonics: for L = 40 by up to 0.1 between 50 and 70 degrees latitude and 0.6 near the poles (the
m = 0 terms, which (1 - cos^2 theta) does not damp). Weights trained on those values expect them, so this module
rebuilds the same constants (exact rational arithmetic; the m = 0 ones through SymPy, see zonal_coefficients) and
evaluates every expression in the printed order (descending powers, left-to-right products), in float64: a point
evaluated alone gives SatCLIP's value bit for bit. Poleward of 70 degrees SatCLIP's own values also change, by up to
2e-2, with the batch a point is evaluated in (vectorised and scalar cosines differ in the last bit, and the
cancellation magnifies it), so no evaluation can agree with every one of its runs more closely. Accurate harmonics
in SatCLIP's convention are ``convention="satclip"`` of SphericalHarmonics.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import torch

from .base import Encoding
from .spherical_harmonics import check_degrees

CHUNK_BYTES = 32 << 20  # points per block: the (L^2, points) float64 block stays about this size


def legendre_derivative(degree: int, order: int) -> list[Fraction]:
    """Exact coefficients, by power of x, of d^order/dx^order P_degree(x) (Rodrigues' formula)."""
    coefficients = [Fraction(0)] * (2 * degree + 1)
    scale = 2 ** degree * math.factorial(degree)
    for k in range(degree + 1):
        coefficients[2 * k] = Fraction((-1) ** (degree - k) * math.comb(degree, k), scale)
    for _ in range(degree + order):
        coefficients = [c * (power + 1) for power, c in enumerate(coefficients[1:])] or [Fraction(0)]
    return coefficients


def printed(value: mpmath.mpf) -> float:
    """``value`` as SymPy prints a float: rounded to 53 bits, then to 15 significant digits."""
    with mpmath.workprec(53):
        rounded = +value
    return float(mpmath.nstr(rounded, 15, strip_zeros=True))


def _exact(value: Fraction) -> mpmath.mpf:
    return mpmath.mpf(value.numerator) / value.denominator


def _product53(a: mpmath.mpf, b: mpmath.mpf) -> mpmath.mpf:
    """a x b as SymPy multiplies two floats: each rounded to 53 bits, the product rounded to 53 bits."""
    with mpmath.workprec(53):
        return (+a) * (+b)


def zonal_coefficients(degree: int) -> dict[int, float]:
    """The printed coefficients, by power of cos theta, of SatCLIP's Y_l0 = sqrt((2l+1)/4 pi) P_l(cos theta).

    Here SymPy's own floating-point path (a Python float under the square root, then the constant distributed over
    the expanded polynomial) is what sets the last printed digit, and no rule derived outside it reproduced every
    coefficient, so SymPy (installed with torch) evaluates them: 40 polynomials for L = 40."""
    import sympy

    x = sympy.Symbol("x")
    norm = sympy.sqrt((2 * degree + 1) / 4 * sympy.pi)  # SatCLIP's (2l+1)/4*pi: a Python float times pi
    expression = sympy.expand((norm * sympy.assoc_legendre(degree, 0, x)).evalf())
    return {int(power): float(str(coefficient))
            for (power,), coefficient in sympy.Poly(expression, x).terms()}


class GeneratedSatclipHarmonics(Encoding):
    """SatCLIP's harmonics, value for value (see the module docstring); L^2 features in the order l^2 + l + m."""

    def __init__(self, degrees: int = 10):
        super().__init__()
        check_degrees(degrees)
        self.degrees, self.convention, self.dim = degrees, "satclip-generated", degrees * degrees
        rows = [(degree, order) for degree in range(degrees) for order in range(-degree, degree + 1)]
        self._prefactor = torch.zeros(len(rows), 1, dtype=torch.float64)
        self._coefficients = torch.zeros(len(rows), degrees, dtype=torch.float64)  # by power of cos theta
        self._power = torch.tensor([abs(order) for _, order in rows])  # |m|: the half-power of (1 - cos^2 theta)
        self._sine = torch.tensor([order < 0 for _, order in rows])
        self._single = torch.zeros(len(rows), dtype=torch.bool)  # derivative of one term, folded into A
        self._single_power = torch.zeros(len(rows), dtype=torch.long)
        with mpmath.workdps(40):
            for row, (degree, order) in enumerate(rows):
                self._constants(row, degree, abs(order))

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, convention={self.convention!r}"

    def _constants(self, row: int, degree: int, m: int) -> None:
        if m == 0:
            for power, value in zonal_coefficients(degree).items():
                self._coefficients[row, power] = value
            return
        terms = {power: c for power, c in enumerate(legendre_derivative(degree, m)) if c != 0}
        norm = mpmath.sqrt(2) * mpmath.sqrt(mpmath.mpf(2 * degree + 1) / (4 * mpmath.pi)
                                            * mpmath.factorial(degree - m) / mpmath.factorial(degree + m))
        if len(terms) == 1:
            (power, c), = terms.items()
            self._single[row], self._single_power[row] = True, power
            self._prefactor[row] = printed(_product53(norm, _exact(c)))
        else:
            self._prefactor[row] = printed(norm)
            for power, c in terms.items():
                self._coefficients[row, power] = printed(_exact(c))

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        lonlat = torch.stack((lon, lat), dim=1)
        size = max(1, CHUNK_BYTES // (8 * self.dim))
        parts = [self._features(lonlat[start:start + size]) for start in range(0, lonlat.shape[0], size)]
        return torch.cat(parts, dim=1).T if parts else torch.zeros(0, self.dim, dtype=torch.float64)

    def _features(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(L^2, n) float64, each expression as SatCLIP evaluates it (separate products and sums: no fused
        multiply-add, whose single rounding would differ)."""
        dev, n = lonlat.device, lonlat.shape[0]
        phi, theta = torch.deg2rad(lonlat[:, 0] + 180), torch.deg2rad(lonlat[:, 1] + 90)
        c = torch.cos(theta)
        polynomial = torch.zeros(self.dim, n, dtype=torch.float64, device=dev)
        term = torch.empty_like(polynomial)
        coefficients, abs_order = self._coefficients.to(dev), self._power.to(dev)
        for power in range(self.degrees - 1, -1, -1):  # the printed order: highest power first
            rows = slice(power * power, self.dim)  # degrees l >= power: the only ones with this power
            torch.mul(coefficients[rows, power:power + 1], torch.pow(c, power)[None, :], out=term[rows])
            polynomial[rows] += term[rows]
        angle = abs_order.to(torch.float64)[:, None] * phi[None, :]
        trig = torch.where(self._sine.to(dev)[:, None], torch.sin(angle), torch.cos(angle))
        s2 = 1.0 - torch.pow(c, 2)
        halves = torch.stack([torch.pow(s2, m // 2 if m % 2 == 0 else m / 2) for m in range(self.degrees)])
        factor = self._prefactor.to(dev) * halves[abs_order]
        single = self._single.to(dev)[:, None]
        value = torch.where(single, factor * trig, factor * polynomial * trig)
        value = torch.where(single & (self._single_power.to(dev) == 1)[:, None], value * c[None, :], value)
        return torch.where((abs_order == 0)[:, None], polynomial, value)
