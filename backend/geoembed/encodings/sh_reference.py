"""High-precision real spherical harmonics for tests and benchmarks (needs mpmath; slow: O(L^2) per point).

An independent algorithm from ``spherical_harmonics``: the unnormalised recurrence for P_l^m in 40-digit
arithmetic with exact factorials, then the orthonormal real form (no Condon-Shortley phase), index l^2 + l + m.
"""

from __future__ import annotations


def real_sh(degrees: int, theta_deg: float, phi_deg: float, m0_scale: float = 1.0) -> list[float]:
    """All Y_lm, l < degrees, at colatitude ``theta_deg`` and longitude ``phi_deg`` (degrees)."""
    import mpmath

    with mpmath.workdps(40):
        theta, phi = mpmath.radians(mpmath.mpf(theta_deg)), mpmath.radians(mpmath.mpf(phi_deg))
        x, u = mpmath.cos(theta), mpmath.sin(theta)
        if theta_deg in (0, 180):  # exactly at a pole; sin(pi) is not exactly 0 at finite precision
            x, u = mpmath.mpf(1 if theta_deg == 0 else -1), mpmath.mpf(0)
        p = {}
        for m in range(degrees):
            p[m, m] = mpmath.fac2(2 * m - 1) * u**m if m else mpmath.mpf(1)
            if m + 1 < degrees:
                p[m + 1, m] = (2 * m + 1) * x * p[m, m]
            for deg in range(m + 2, degrees):
                p[deg, m] = ((2 * deg - 1) * x * p[deg - 1, m] - (deg + m - 1) * p[deg - 2, m]) / (deg - m)
        out = []
        for deg in range(degrees):
            for m in range(-deg, deg + 1):
                k = abs(m)
                ratio = mpmath.factorial(deg - k) / mpmath.factorial(deg + k)
                norm = mpmath.sqrt((2 * deg + 1) / (4 * mpmath.pi) * ratio)
                if m == 0:
                    out.append(float(m0_scale * norm * p[deg, 0]))
                else:
                    trig = mpmath.cos(k * phi) if m > 0 else mpmath.sin(k * phi)
                    out.append(float(mpmath.sqrt(2) * norm * p[deg, k] * trig))
        return out


def reference(degrees: int, lonlat, convention: str = "textbook"):
    """(N, L^2) float64 numpy array for (lon, lat) degrees in our ``textbook`` or ``satclip`` convention."""
    import mpmath
    import numpy as np

    if convention == "satclip":
        rows = [real_sh(degrees, lat + 90.0, lon + 180.0, mpmath.pi) for lon, lat in lonlat]
    else:
        rows = [real_sh(degrees, 90.0 - lat, lon) for lon, lat in lonlat]
    return np.array(rows)
