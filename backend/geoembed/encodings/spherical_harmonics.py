"""Real orthonormal spherical harmonics of all degrees l < L and orders -l <= m <= l (L^2 features).

Textbook convention (colatitude theta = 90 - lat, phi = lon), feature index l^2 + l + m:

    Y_l0  = Pbar_l^0(cos theta)
    Y_lm  = sqrt(2) Pbar_l^m(cos theta) cos(m phi),     m > 0
    Y_l-m = sqrt(2) Pbar_l^m(cos theta) sin(m phi),     m > 0

with Pbar_l^m = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m, without the Condon-Shortley phase; this equals the
real form of the complex harmonics with the phase, as in https://en.wikipedia.org/wiki/Spherical_harmonics#Real_form.
The Pbar are computed with the standard fully normalised recurrences (e.g. Holmes and Featherstone 2002,
J. Geodesy 76:279), which neither overflow nor lose accuracy up to high degree:

    Pbar_0^0 = 1/sqrt(4 pi),  Pbar_m^m = sqrt((2m+1)/(2m)) sin(theta) Pbar_{m-1}^{m-1},
    Pbar_{m+1}^m = sqrt(2m+3) cos(theta) Pbar_m^m,
    Pbar_l^m = a_lm (cos(theta) Pbar_{l-1}^m - b_lm Pbar_{l-2}^m),
    a_lm = sqrt((4l^2-1)/(l^2-m^2)),  b_lm = sqrt(((l-1)^2-m^2)/(4(l-1)^2-1)).

cos(theta) = sin(lat) and sin(theta) = cos(lat) >= 0 are taken exactly in degrees, so the poles need no clamping.
For a fixed order m the recurrence in l is linear, so it runs on the features themselves (P_l^m cos(m phi) and
P_l^m sin(m phi)): no separate pass multiplies Legendre values by the longitude terms.

Convention ``satclip`` reproduces SatCLIP (Klemmer et al. 2025, code by Russwurm et al. 2024): theta = lat + 90,
phi = lon + 180 and the m = 0 terms multiplied by pi (its generator writes sqrt((2l+1)/4*pi)). Here that is
cos(theta) = -sin(lat), cos(m phi) and sin(m phi) times (-1)^m, and the factor pi on m = 0.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch

from .base import Encoding, check_lonlat, sincos_deg

MAX_DEGREES = 200
CONVENTIONS = ("textbook", "satclip")
# Points per chunk: the recurrence's (L, n) float64 blocks stay in a core's cache.
CHUNK_BYTES = 1 << 20
MIN_CHUNK, MAX_CHUNK = 256, 2048
# Other output types are computed in a float64 block of L^2 x chunk of about this size, then copied: 1M points at
# L = 100 took 23.2 s in chunks of 512 (41 MB) against 27.0 s in chunks of 1,310.
WORK_BYTES = 40 << 20


def check_degrees(degrees: int) -> None:
    """ValueError unless the number of degrees L is an integer from 1 to MAX_DEGREES."""
    if isinstance(degrees, bool) or not isinstance(degrees, int) or not 1 <= degrees <= MAX_DEGREES:
        raise ValueError(f"spherical harmonics: degrees (L) must be an integer from 1 to {MAX_DEGREES}, "
                         f"got {degrees!r}")


class SphericalHarmonics(Encoding):
    """Real spherical harmonics, L^2 features, computed feature-major in float64, in chunks of points."""

    def __init__(self, degrees: int = 10, convention: str = "textbook"):
        super().__init__()
        check_degrees(degrees)
        if convention not in CONVENTIONS:
            raise ValueError(f"spherical harmonics: unknown convention {convention!r}; known: "
                             f"{', '.join(CONVENTIONS)} (and satclip-generated, SatCLIP's own expressions)")
        self.degrees = degrees
        self.convention = convention
        self.dim = degrees * degrees
        self.chunk = min(MAX_CHUNK, max(MIN_CHUNK, CHUNK_BYTES // (8 * degrees)))
        # Recurrence coefficients for degree deg, orders m = -(deg-2)..deg-2 (rows of the output block), as columns.
        self._a: list[torch.Tensor] = []
        self._ab: list[torch.Tensor] = []
        for deg in range(2, degrees):
            m2 = torch.arange(2 - deg, deg - 1, dtype=torch.float64) ** 2
            a = torch.sqrt((4.0 * deg * deg - 1.0) / (deg * deg - m2))
            b = torch.sqrt(((deg - 1.0) ** 2 - m2) / (4.0 * (deg - 1.0) ** 2 - 1.0))
            self._a.append(a[:, None])
            self._ab.append((a * b)[:, None])
        deg = torch.arange(degrees, dtype=torch.float64)
        self._mm_factor = torch.sqrt((2.0 * deg + 1.0) / (2.0 * deg).clamp(min=1.0))[:, None]  # row 0 unused
        self._sub_factor = torch.sqrt(2.0 * deg[1:] + 1.0)[:, None]  # for P_l^(l-1), l = 1..L-1
        l1, l2 = torch.arange(1, degrees), torch.arange(2, max(degrees, 2))
        # rows of m = -l, -(l-1), l-1, l (l-1 from degree 2 on, where it is not m = 0), as ``edges`` stacks them
        self._edge_rows = torch.cat((l1 * l1, l2 * l2 + 1, l2 * l2 + 2 * l2 - 1, l1 * l1 + 2 * l1))
        satclip = convention == "satclip"
        self._x_sign = -1.0 if satclip else 1.0
        self._m0_scale = math.pi if satclip else 1.0
        m = torch.arange(1, degrees, dtype=torch.float64)
        self._m = m[:, None]
        sign = (-1.0) ** m if satclip else torch.ones_like(m)
        self._cs_scale = (math.sqrt(2.0) * sign)[:, None]

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, convention={self.convention!r}"

    def forward(self, lonlat: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """(n, L^2) features. They are computed and stored feature by feature (each feature's values over the
        points contiguous), so the result is the transpose of a contiguous (L^2, n) tensor: matrix products take it
        as it is, and no pass is spent reordering it."""
        lonlat = check_lonlat(lonlat)
        n = lonlat.shape[0]
        features = torch.empty((self.dim, n), dtype=dtype, device=lonlat.device)
        # float64 features are computed in place; others in a float64 block per worker, copied chunk by chunk
        size = self.chunk if dtype == torch.float64 else min(self.chunk, max(MIN_CHUNK, WORK_BYTES // (8 * self.dim)))
        starts = range(0, n, size)
        # The per-chunk operations are too small for torch's intra-op threads: run chunks side by side instead
        # (torch releases the GIL), each writing its own columns of ``features``.
        workers = min(torch.get_num_threads(), len(starts)) if lonlat.device.type == "cpu" else 1
        if workers <= 1:
            self._fill(lonlat, features, starts, size)
        else:
            inference = torch.is_inference_mode_enabled()  # thread-local: the workers must write in the caller's mode

            def fill(k: int) -> None:
                with torch.inference_mode(inference):
                    self._fill(lonlat, features, starts[k::workers], size)

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(fill, range(workers)))
        return features.T

    def _fill(self, lonlat: torch.Tensor, features: torch.Tensor, starts: range, size: int) -> None:
        work = None if features.dtype == torch.float64 else torch.empty(
            (self.dim, min(size, lonlat.shape[0])), dtype=torch.float64, device=lonlat.device)
        for start in starts:
            y = features[:, start:start + size]
            self._features(lonlat[start:start + size], y if work is None else work[:, :y.shape[1]])
            if work is not None:
                y.copy_(work[:, :y.shape[1]])

    def encode(self, lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        return self.forward(torch.stack((lon, lat), dim=1))

    def _features(self, lonlat: torch.Tensor, y: torch.Tensor) -> None:
        """The features of n points into the (L^2, n) float64 block ``y``.

        For each order m the recurrence in l is linear, so it runs on the features themselves, P_l^m cos(m phi)
        and P_l^m sin(m phi). The rows m = +-l and +-(l-1) of every degree, from the sectoral P_l^l, are written
        first, all in one operation; then each degree's rows m = -(l-2)..l-2 take one recurrence step.
        """
        L, dev = self.degrees, lonlat.device
        x, u = sincos_deg(lonlat[:, 1])  # cos(theta), sin(theta)
        x = x * self._x_sign
        factors = self._mm_factor.to(dev) * u  # P_l^l = P_(l-1)^(l-1) * sqrt((2l+1)/(2l)) sin(theta)
        factors[0] = 1.0 / math.sqrt(4.0 * math.pi)
        p_mm = torch.cumprod(factors, dim=0)  # rows l = 0..L-1
        y[0] = p_mm[0] * self._m0_scale
        if L > 1:
            p_sub = (p_mm[:-1] * x).mul_(self._sub_factor.to(dev))  # P_l^(l-1) = sqrt(2l+1) cos(theta) P_(l-1)^(l-1)
            phase = self._m.to(dev) * torch.deg2rad(lonlat[:, 0])[None, :]
            scale = self._cs_scale.to(dev)
            cos_m = torch.cos(phase).mul_(scale)  # rows m = 1..L-1
            sin_m = torch.sin(phase).mul_(scale)
            edges = torch.cat((p_mm[1:] * sin_m, p_sub[1:] * sin_m[:-1], p_sub[1:] * cos_m[:-1], p_mm[1:] * cos_m))
            y.index_copy_(0, self._edge_rows.to(dev), edges)
            torch.mul(p_sub[0], self._m0_scale, out=y[2])
        for deg in range(2, L):
            body = y[deg * deg + 2:deg * deg + 2 * deg - 1]
            previous = y[(deg - 1) * (deg - 1) + 1:deg * deg - 1]  # degree deg-1, orders -(deg-2)..deg-2
            torch.mul(previous, x, out=body).mul_(self._a[deg - 2].to(dev))
            body.addcmul_(y[(deg - 2) * (deg - 2):(deg - 1) * (deg - 1)], self._ab[deg - 2].to(dev), value=-1.0)
