"""Band-limited evaluation: embed a coarse lattice of pixels, interpolate, and verify against exact samples.

A location encoder is smooth at the scale of its resolution (``resolution_km``, the finest ground
wavelength it resolves). When pixels are far finer, we embed only the pixels on a lattice of stride
``s`` (a power of two, anchored at the raster origin so neighbouring windows share nodes and have no
seams), interpolate with Catmull-Rom bicubic weights in pixel-index space, and verify every window
against the exact embeddings of random pixels; a window whose worst deviation exceeds the tolerance
is refined (stride halved) down to dense evaluation.

Lattice nodes may come from a faster, less precise evaluation (``embed_fast``: bfloat16 matrix products); the
exact samples never do, so the verified error covers it. Nodes are taken from it only while, at every window's
exact samples, it alone stays within a quarter of the tolerance.
"""

from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np
from rasterio.windows import Window

from .coords import great_circle_km
from .grid import BLOCK, RasterGrid, to_lonlat

DEFAULT_TOLERANCE = 1e-3
# Lattice nodes per shortest wavelength at the default tolerance. Measured on GeoCLIP (the ReLU MLP adds
# harmonics above its Fourier frequencies): 1 - cos ~ 5e-4 at 1/14 of the local wavelength, 5e-3 at 1/7,
# growing about as spacing**3, hence the cube root of the tolerance in ``start_stride``.
NODES_PER_WAVELENGTH = 10.0
SAMPLES = 64  # exactly evaluated pixels per window
MAX_CACHED_NODES = 50_000  # about 100 MB of 512-d float32 embeddings
PREFETCH_NODES = 8192  # nodes embedded in one call where the windows to the right need them

Embed = Callable[[np.ndarray, np.ndarray], np.ndarray]
Linear = Callable[[np.ndarray], np.ndarray]


def cos_and_relative(approx: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: 1 - cos(approx, exact) and the relative L2 error |approx - exact| / |exact|."""
    approx, exact = approx.astype(np.float64), exact.astype(np.float64)
    na, ne = (np.maximum(np.linalg.norm(v, axis=1), 1e-30) for v in (approx, exact))
    return 1.0 - np.einsum("ij,ij->i", approx, exact) / (na * ne), np.linalg.norm(approx - exact, axis=1) / ne


def deviation(one_minus_cos: np.ndarray, relative: np.ndarray) -> np.ndarray:
    """max(1 - cos, relative^2 / 2): in cosine terms (equal for an error at right angles), bounding magnitude too."""
    return np.maximum(one_minus_cos, 0.5 * relative * relative)


def catmull_rom(t: np.ndarray) -> np.ndarray:
    """(n, 4) weights of nodes k-1, k, k+1, k+2 at fraction ``t`` in [0, 1) between nodes k and k+1."""
    t = t[:, None]
    powers = np.concatenate([np.ones_like(t), t, t * t, t * t * t], axis=1)
    basis = 0.5 * np.array([[0, -1, 2, -1], [2, 0, -5, 3], [0, 1, 4, -3], [0, 0, -1, 1]], dtype=np.float64)
    return powers @ basis.T


def pixel_km(grid: RasterGrid, samples: int = 17) -> float:
    """The largest ground distance (km) between adjacent pixel centres, over a sample of the grid."""
    x, y = grid.sample_centres(samples)
    lon, lat, ok = to_lonlat(grid.crs, x, y)
    steps = []
    for dx, dy in ((grid.pixel_size, 0.0), (0.0, -grid.pixel_size)):
        lon2, lat2, ok2 = to_lonlat(grid.crs, x + dx, y + dy)
        both = ok & ok2
        steps.append(great_circle_km(lon[both], lat[both], lon2[both], lat2[both]))
    steps = np.concatenate(steps)
    return float(steps.max()) if steps.size else math.inf


def start_stride(grid: RasterGrid, resolution_km: float, tolerance: float) -> int:
    """The coarsest power-of-two stride (pixels, <= one window) whose node spacing the model resolves."""
    spacing = resolution_km / NODES_PER_WAVELENGTH * (tolerance / DEFAULT_TOLERANCE) ** (1.0 / 3.0)
    ratio = spacing / pixel_km(grid)
    return 1 if not ratio >= 2.0 else min(BLOCK, 2 ** int(math.floor(math.log2(ratio))))


class BandLimited:
    """``__call__(window, lon, lat, valid)`` -> ``linear(embedding)`` of the valid pixels, (n_valid, K).

    ``embed`` maps (lon, lat) to raw embeddings (verified); ``linear`` is an affine map of them
    (identity or a PCA projection), which commutes with interpolation; ``embed_fast``, if given, is an
    approximation of ``embed`` tried for the lattice nodes.
    """

    def __init__(self, grid: RasterGrid, embed: Embed, linear: Linear, resolution_km: float,
                 tolerance: float = DEFAULT_TOLERANCE, samples: int = SAMPLES, embed_fast: Embed | None = None):
        self.grid, self.embed, self.linear = grid, embed, linear
        self.embed_nodes = embed_fast or embed
        self.fast_max_error = 0.0  # of embed_fast at the exact samples
        self.lattice_precision = "bfloat16" if self.fast_nodes else "float32"
        self.tolerance, self.samples = tolerance, samples
        self.stride = start_stride(grid, resolution_km, tolerance)
        self.nodes: dict[tuple[int, int], np.ndarray] = {}  # (row, col) pixel index -> raw embedding
        self.windows: dict[int, int] = {}  # accepted stride -> windows
        self.max_error = self.max_cos = self.max_rel = 0.0
        self.verified = 0
        self._row = -1
        self._samples_ahead: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __call__(self, window: Window, lon: np.ndarray, lat: np.ndarray, valid: np.ndarray) -> np.ndarray:
        stride = self.stride if valid.all() else 1
        if stride > 1:
            self._evict(window.row_off)
            rows, cols, exact = self._exact_samples(window)
        while stride > 1:
            lattice = self._lattice(window, stride)
            if lattice is None:
                break
            node_rows, node_cols, raw = lattice
            approx = _interpolate_points(raw, window.row_off + rows - node_rows[0], window.col_off + cols
                                         - node_cols[0], stride)
            cos, rel = cos_and_relative(approx, exact)
            if deviation(cos, rel).max() <= self.tolerance:
                self._record(stride, cos, rel)
                return _interpolate_window(self.linear(raw.reshape(-1, raw.shape[-1])).reshape(
                    *raw.shape[:2], -1), window, node_rows[0], node_cols[0], stride).reshape(valid.size, -1)
            stride //= 2
        self.windows[1] = self.windows.get(1, 0) + 1
        return self.linear(self.embed(lon[valid], lat[valid]))

    @property
    def fast_nodes(self) -> bool:
        """Whether lattice nodes come from ``embed_fast``."""
        return self.embed_nodes is not self.embed

    def _exact_samples(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows and columns (within ``window``) of its random verification pixels, and their exact embeddings.

        Drawn with those of the windows to its right, in one call: a call of 64 points reads all the weights, as
        one of 1,000 does. Windows with a sample off the globe are left out (they are evaluated densely).
        """
        key = (window.row_off, window.col_off)
        if key not in self._samples_ahead:
            self._samples_ahead.clear()
            ahead = []  # (key, rows, cols, lon, lat) of each window whose samples all lie on the globe
            for col in range(window.col_off, self.grid.width, BLOCK)[:max(1, PREFETCH_NODES // self.samples)]:
                rows, cols = self._pick(Window(col, window.row_off, min(BLOCK, self.grid.width - col), window.height))
                lon, lat, ok = to_lonlat(self.grid.crs, *self.grid.centres(window.row_off + rows, col + cols))
                if ok.all():
                    ahead.append(((window.row_off, col), rows, cols, lon, lat))
            lon, lat = (np.concatenate([a[i] for a in ahead]) for i in (3, 4))
            exact = self.embed(lon, lat)
            if self.fast_nodes:
                self._check_fast(lon, lat, exact)
            for (at, rows, cols, _, _), part in zip(ahead, np.split(exact, np.cumsum([len(a[1]) for a in ahead])[:-1])):
                self._samples_ahead[at] = (rows, cols, part)
        return self._samples_ahead.pop(key)

    def _pick(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of ``window``'s verification pixels (the same for every run)."""
        rng = np.random.default_rng([window.row_off, window.col_off])
        pick = rng.choice(window.width * window.height, size=min(self.samples, window.width * window.height),
                          replace=False)
        return np.unravel_index(pick, (window.height, window.width))

    def _lattice(self, window: Window, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Node pixel rows, cols and raw embeddings (rows, cols, D) covering ``window``; None if not smooth there."""
        node_rows = _span(window.row_off, window.height, stride)
        node_cols = _span(window.col_off, window.width, stride)
        here = self._positions(node_rows, node_cols)
        if here is None:
            return None
        if any(key not in self.nodes for key in here[0]):
            # Small batches run at half the rate: embed the missing nodes of the windows to the right as well.
            width = max(window.width, PREFETCH_NODES // len(node_rows) * stride)
            ahead = self._positions(node_rows, _span(window.col_off, min(width, self.grid.width - window.col_off),
                                                     stride))
            keys, lon, lat = ahead or here
            missing = [i for i, key in enumerate(keys) if key not in self.nodes]
            self.nodes.update(zip((keys[i] for i in missing), self.embed_nodes(lon[missing], lat[missing])))
        raw = np.stack([self.nodes[key] for key in here[0]]).reshape(len(node_rows), len(node_cols), -1)
        return node_rows, node_cols, raw

    def _positions(self, node_rows: np.ndarray, node_cols: np.ndarray
                   ) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray] | None:
        """(row, col) keys and lon, lat of the nodes, row-major; None where the encoder is not smooth across them."""
        r, c = np.meshgrid(node_rows, node_cols, indexing="ij")
        lon, lat, ok = to_lonlat(self.grid.crs, *self.grid.centres(r, c))
        # Off the projection's domain, or across the antimeridian or a pole: the encoder is not smooth there.
        if not ok.all() or max(np.abs(np.diff(lon, axis=0)).max(initial=0),
                               np.abs(np.diff(lon, axis=1)).max(initial=0)) > 90.0:
            return None
        return list(zip(r.ravel().tolist(), c.ravel().tolist())), lon.ravel(), lat.ravel()

    def _check_fast(self, lon: np.ndarray, lat: np.ndarray, exact: np.ndarray) -> None:
        """Stop taking nodes from ``embed_fast`` (and forget those it gave) once it errs by over tolerance / 4."""
        error = float(deviation(*cos_and_relative(self.embed_nodes(lon, lat), exact)).max())
        self.fast_max_error = max(self.fast_max_error, error)
        if error > self.tolerance / 4:
            self.embed_nodes = self.embed
            self.lattice_precision += " then float32"
            self.nodes.clear()

    def _evict(self, row_off: int) -> None:
        """Forget nodes above the rows still to come (windows run row by row); bound the cache."""
        if row_off == self._row:
            return
        self._row = row_off
        if len(self.nodes) > MAX_CACHED_NODES:
            self.nodes.clear()
        for key in [k for k in self.nodes if k[0] < row_off - self.stride]:
            del self.nodes[key]

    def _record(self, stride: int, cos: np.ndarray, rel: np.ndarray) -> None:
        self.windows[stride] = self.windows.get(stride, 0) + 1
        self.verified += len(cos)
        self.max_error = max(self.max_error, float(deviation(cos, rel).max()))
        self.max_cos = max(self.max_cos, float(cos.max()))
        self.max_rel = max(self.max_rel, float(rel.max()))

    def tags(self) -> dict[str, str]:
        return {"geoembed_evaluation": json.dumps({
                    "mode": "auto", "tolerance": self.tolerance, "start_stride": self.stride,
                    "windows_by_stride": {str(s): n for s, n in sorted(self.windows.items(), reverse=True)},
                    "verified_pixels": self.verified, "max_1_minus_cos": self.max_cos, "max_relative_l2": self.max_rel,
                    **({"lattice_precision": self.lattice_precision} if any(s > 1 for s in self.windows) else {}),
                    **({"bfloat16_max_error": self.fast_max_error} if self.fast_max_error else {}),
                }, sort_keys=True),
                "geoembed_verified_max_error": f"{self.max_error:.3g}"}


def _span(offset: int, size: int, stride: int) -> np.ndarray:
    """Pixel indices of the nodes (multiples of ``stride``) that interpolate pixels offset .. offset + size - 1."""
    return stride * np.arange(offset // stride - 1, (offset + size - 1) // stride + 3)


def _weights(positions: np.ndarray, first_node: int, count: int, stride: int) -> np.ndarray:
    """(len(positions), count) interpolation matrix from nodes ``first_node + stride * j`` to pixel ``positions``."""
    k = positions // stride
    w = np.zeros((len(positions), count))
    columns = (k - 1 - first_node // stride)[:, None] + np.arange(4)
    w[np.arange(len(positions))[:, None], columns] = catmull_rom((positions - k * stride) / stride)
    return w


def _interpolate_points(raw: np.ndarray, rows: np.ndarray, cols: np.ndarray, stride: int) -> np.ndarray:
    """Values at pixels (rows, cols), counted from the first node, from lattice values (nr, nc, D)."""
    kr, kc = rows // stride, cols // stride
    near = raw[(kr - 1)[:, None, None] + np.arange(4)[:, None], (kc - 1)[:, None, None] + np.arange(4)]
    wr, wc = catmull_rom((rows - kr * stride) / stride), catmull_rom((cols - kc * stride) / stride)
    return np.einsum("pi,pj,pijd->pd", wr, wc, near.astype(np.float64)).astype(np.float32)


def _interpolate_window(values: np.ndarray, window: Window, first_row: int, first_col: int,
                        stride: int) -> np.ndarray:
    """(rows, cols, K) values of every pixel of ``window`` from lattice values (nr, nc, K)."""
    wr = _weights(np.arange(window.row_off, window.row_off + window.height), first_row, values.shape[0], stride)
    wc = _weights(np.arange(window.col_off, window.col_off + window.width), first_col, values.shape[1], stride)
    across = np.tensordot(wr.astype(np.float32), values.astype(np.float32), axes=(1, 0))  # (rows, nc, K)
    return np.matmul(wc.astype(np.float32)[None], across)  # (rows, cols, K)
