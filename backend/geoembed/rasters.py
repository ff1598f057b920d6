"""Embedding and similarity rasters, computed and written window by window (memory bounded)."""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from rasterio.windows import Window

from . import __version__
from .bandlimited import DEFAULT_TOLERANCE, BandLimited
from .embedder import LocationEmbedder, unit_rows
from .errors import InputError
from .geotiff import AtomicGeoTIFF, estimated_bytes
from .grid import RasterGrid, to_lonlat
from .progress import Progress

DEFAULT_MAX_GB = float(os.environ.get("GEOEMBED_MAX_OUTPUT_GB", "64"))
PREVIEW_COMPONENTS = 3
PREVIEW_PERCENTILES = (2.0, 98.0)  # each component's stretch, over an even sample of the grid's pixels
PREVIEW_SAMPLES = 64  # the sample: up to 64 x 64 pixel centres


def _check_dims(embedder: LocationEmbedder, dims: int | None) -> None:
    if dims is None:
        return
    limit = min(embedder.dim, embedder.pca.max_dims)
    if not 1 <= dims <= limit:
        raise InputError("DIMS", f"DIMS must be between 1 and {limit} for model {embedder.model_id!r} "
                                 f"(got {dims}); leave it empty for all {embedder.dim} dimensions")


def check_size(grid: RasterGrid, bands: int, dtype: str, max_gb: float) -> None:
    size = estimated_bytes(grid, bands, dtype)
    if size > max_gb * 1e9:
        raise InputError(
            "PIXEL_SIZE",
            f"the output would be {grid.width} x {grid.height} pixels x {bands} bands = {size / 1e9:.1f} GB "
            f"uncompressed, over the limit of {max_gb:g} GB. Use a larger pixel size, a smaller extent, fewer "
            "dimensions (DIMS) or float16, or raise the limit (--max-size-gb / GEOEMBED_MAX_OUTPUT_GB).")


def provenance(embedder: LocationEmbedder, kind: str, grid: RasterGrid, parameters: dict) -> dict[str, str]:
    card = embedder.card
    return {
        "geoembed_kind": kind,
        "geoembed_version": __version__,
        "geoembed_model_id": embedder.model_id,
        "geoembed_model_name": card.get("name", ""),
        "geoembed_weights_sha256": embedder.weights_sha256,
        "geoembed_source_sha256": card.get("source", {}).get("sha256", ""),
        "geoembed_encoder": json.dumps(card["architecture"], sort_keys=True),
        "geoembed_input_order": card.get("input", {}).get("order", "lon,lat"),
        "geoembed_parameters": json.dumps({**parameters, "crs": grid.crs.to_string(), "pixel_size": grid.pixel_size,
                                           "extent": [grid.xmin, grid.ymin, grid.xmax, grid.ymax],
                                           "width": grid.width, "height": grid.height}, sort_keys=True),
        "geoembed_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


Evaluator = Callable[[Window, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _evaluator(embedder: LocationEmbedder, grid: RasterGrid, embed: Callable, linear: Callable, evaluation: str,
               tolerance: float, embed_fast: Callable | None) -> tuple[Evaluator, Callable[[], dict[str, str]]]:
    """``evaluate(window, lon, lat, valid)`` -> ``linear(embedding)`` of the valid pixels, and its metadata tags."""
    if evaluation not in ("auto", "dense"):
        raise InputError("EVALUATION", f"unknown evaluation {evaluation!r}; use auto or dense")
    if not tolerance > 0:
        raise InputError("TOLERANCE", f"the tolerance must be a positive number, got {tolerance}")
    resolution = embedder.resolution_km if evaluation == "auto" else None
    if resolution:
        limited = BandLimited(grid, embed, linear, resolution, tolerance, embed_fast=embed_fast)
        return limited, limited.tags
    report = {"mode": "dense", **({"reason": "the model states no resolution_km"} if evaluation == "auto" else {})}

    def dense(window, lon, lat, valid):
        return linear(embed(lon[valid], lat[valid]))
    return dense, lambda: {"geoembed_evaluation": json.dumps(report)}


class _PixelProgress:
    """Progress in pixels, advanced per window and, within a window, per embedded batch (never backwards)."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total = progress, total
        self.done = self.window_size = 0
        self.reported = 0.0

    def start_window(self, size: int) -> None:
        self.window_size = size

    def within_window(self, fraction: float) -> None:
        self._report(self.done + fraction * self.window_size)

    def end_window(self) -> None:
        self.done += self.window_size
        self._report(self.done)

    def _report(self, pixels: float) -> None:
        fraction = max(self.reported, pixels / self.total)
        self.reported = fraction
        self.progress(fraction, f"{int(pixels):,} of {self.total:,} pixels")


Finisher = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class RasterOutput:
    """A GeoTIFF of a render: ``finish(features, lon, lat)`` turns the valid pixels' features into its bands,
    (n, len(names))."""

    path: Path
    names: list[str]
    dtype: str
    tags: dict[str, str]
    finish: Finisher


def _render(grid: RasterGrid, outputs: list[tuple[AtomicGeoTIFF, Finisher]], evaluate: Evaluator,
            tracker: _PixelProgress) -> int:
    """Fill every output window by window with its ``finish(evaluate(...), lon, lat)`` of the valid pixels. While
    window k is computed, one helper thread writes window k - 1 (GDAL compresses without the GIL) and another
    transforms the pixel centres of window k + 1 (PROJ too); a failed write stops the loop.

    Returns the valid pixel count.
    """
    def write(window: Window, blocks: list[np.ndarray], valid: np.ndarray) -> None:
        for (out, _), data in zip(outputs, blocks):
            out.write(window, data, valid)

    valid_pixels = 0
    pending: Future | None = None
    windows = list(grid.windows())
    with ThreadPoolExecutor(1, thread_name_prefix="geotiff-writer") as writer, \
            ThreadPoolExecutor(1, thread_name_prefix="pixel-centres") as centres:
        upcoming = centres.submit(grid.lonlat, windows[0]) if windows else None
        for k, window in enumerate(windows):
            lon, lat, valid = upcoming.result()
            if k + 1 < len(windows):
                upcoming = centres.submit(grid.lonlat, windows[k + 1])
            tracker.start_window(valid.size)
            features = evaluate(window, lon, lat, valid) if valid.any() else None
            blocks = []
            for out, finish in outputs:
                data = np.zeros((len(out.band_names), *valid.shape), dtype=np.float32)
                if features is not None:
                    data[:, valid] = finish(features, lon[valid], lat[valid]).T
                blocks.append(data)
            if pending is not None:
                pending.result()
            pending = writer.submit(write, window, blocks, valid)
            valid_pixels += int(valid.sum())
            tracker.end_window()
        if pending is not None:
            pending.result()
    return valid_pixels


def _embed_checked(embedder: LocationEmbedder, progress: Progress, tracker: _PixelProgress,
                   fast: bool = False, smooth_km: float = 0.0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Embed in batches (``fast``, ``smooth_km``: see ``LocationEmbedder.embed``), checking for cancellation and
    reporting progress between them."""
    def between_batches(done: int, total: int) -> None:
        progress.check()
        if done and total > embedder.batch_size:
            tracker.within_window(done / total)

    return lambda lon, lat: embedder.embed(lon, lat, between_batches, fast, smooth_km)


def _linear(embedder: LocationEmbedder, dims: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """Embeddings -> output features: themselves, or their first ``dims`` principal components."""
    if dims:
        return lambda e: embedder.pca.project(e, dims)
    return lambda e: e


def render_raster(embedder: LocationEmbedder, grid: RasterGrid, outputs: list[RasterOutput], linear: Callable,
                  evaluation: str, tolerance: float, progress: Progress, smooth_km: float = 0.0) -> int:
    """Write rasters whose bands are their ``finish(linear(embedding), lon, lat)`` of every valid pixel, window
    by window, in one pass, then add the evaluation report to their tags. They appear together, or none does.
    ``smooth_km``: embeddings smoothed over that distance (``LocationEmbedder.embed``). Returns the valid pixel
    count."""
    tracker = _PixelProgress(progress, grid.width * grid.height)
    fast = _embed_checked(embedder, progress, tracker, True, smooth_km) if embedder.fast_available else None
    evaluate, report = _evaluator(embedder, grid, _embed_checked(embedder, progress, tracker, False, smooth_km),
                                  linear, evaluation, tolerance, fast)
    with ExitStack() as stack:
        files = [stack.enter_context(AtomicGeoTIFF(o.path, grid, o.names, o.dtype, o.tags)) for o in outputs]
        valid = _render(grid, [(f, o.finish) for f, o in zip(files, outputs)], evaluate, tracker)
        tags = report()
        for f in files:
            f.update_tags(tags)
    return valid


def _preview_stretch(embedder: LocationEmbedder, grid: RasterGrid) -> np.ndarray:
    """(3, 2) low and high PREVIEW_PERCENTILES of the first three principal components over an even sample of
    the grid's pixels (all of them up to PREVIEW_SAMPLES x PREVIEW_SAMPLES)."""
    lon, lat, valid = to_lonlat(grid.crs, *grid.sample_centres(PREVIEW_SAMPLES))
    if not valid.any():
        return np.tile([0.0, 1.0], (PREVIEW_COMPONENTS, 1))
    components = embedder.pca.project(embedder.embed(lon[valid], lat[valid]), PREVIEW_COMPONENTS)
    low, high = np.percentile(components.astype(np.float64), PREVIEW_PERCENTILES, axis=0)
    return np.stack([low, np.maximum(high, low + 1e-6)], axis=1)


def _and_preview(embedder: LocationEmbedder, linear: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """``linear``'s features followed by the preview's principal components (an affine map too)."""
    return lambda e: np.concatenate([linear(e), embedder.pca.project(e, PREVIEW_COMPONENTS)], axis=1)


def _preview_output(embedder: LocationEmbedder, grid: RasterGrid, path: Path, tags: dict) -> RasterOutput:
    """The RGB preview of the first three principal components, the last three features of every pixel, each
    stretched from its low..high percentile to 1..255 (0 is nodata)."""
    stretch = _preview_stretch(embedder, grid)
    low, span = stretch[:, 0], stretch[:, 1] - stretch[:, 0]

    def finish(features: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        scaled = (features[:, -PREVIEW_COMPONENTS:].astype(np.float64) - low) / span
        return 1.0 + np.round(254.0 * np.clip(scaled, 0.0, 1.0))

    description = {"components": [f"pca_{i:03d}" for i in range(PREVIEW_COMPONENTS)],
                   "percentiles": list(PREVIEW_PERCENTILES), "low": stretch[:, 0].tolist(),
                   "high": stretch[:, 1].tolist(),
                   "values": "1 + round(254 * clip((component - low) / (high - low), 0, 1)); 0 is nodata"}
    tags = {**tags, "geoembed_kind": "embedding preview", "geoembed_preview": json.dumps(description)}
    return RasterOutput(path, description["components"], "uint8", tags, finish)


def embedding_raster(embedder: LocationEmbedder, grid: RasterGrid, output: Path, dims: int | None = None,
                     dtype: str = "float32", max_gb: float = DEFAULT_MAX_GB, progress: Progress | None = None,
                     evaluation: str = "auto", tolerance: float = DEFAULT_TOLERANCE,
                     preview: Path | None = None) -> dict:
    """One band per embedding dimension (emb_000...), or per principal component (pca_000...) with ``dims``.

    ``evaluation="auto"`` interpolates a verified coarse lattice where pixels are far finer than the
    model resolves (bandlimited.py), within ``tolerance``; ``"dense"`` embeds every pixel. ``preview``: also
    write an RGB GeoTIFF of the first three principal components (see _preview_output) from the same embeddings.
    """
    progress = progress or Progress("none")
    _check_dims(embedder, dims)
    bands = dims or embedder.dim
    check_size(grid, bands, dtype, max_gb)
    names = [f"pca_{i:03d}" for i in range(dims)] if dims else [f"emb_{i:03d}" for i in range(bands)]
    tags = provenance(embedder, "embedding", grid,
                      {"dims": dims, "dtype": dtype, "evaluation": evaluation, "tolerance": tolerance})
    linear = _linear(embedder, dims)
    outputs = [RasterOutput(output, names, dtype, tags, lambda features, lon, lat: features[:, :bands])]
    result = {"output": str(output), "width": grid.width, "height": grid.height, "bands": bands}
    if preview:
        if min(embedder.dim, embedder.pca.max_dims) < PREVIEW_COMPONENTS:
            raise InputError("PREVIEW", f"model {embedder.model_id!r} has fewer than {PREVIEW_COMPONENTS} principal "
                                        "components: it has no colour preview")
        outputs.append(_preview_output(embedder, grid, preview, tags))
        linear = _and_preview(embedder, linear)
        result["preview"] = str(preview)
    result["valid_pixels"] = render_raster(embedder, grid, outputs, linear, evaluation, tolerance, progress)
    return result


def similarity_raster(embedder: LocationEmbedder, grid: RasterGrid, output: Path, reference: tuple[float, float],
                      dims: int | None = None, dtype: str = "float32", max_gb: float = DEFAULT_MAX_GB,
                      progress: Progress | None = None, evaluation: str = "auto",
                      tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Cosine similarity in [-1, 1] of every pixel's embedding to the embedding of ``reference`` (lon, lat).

    With ``dims`` the similarity is taken between centred PCA projections (first ``dims`` components).
    ``evaluation`` and ``tolerance`` as for ``embedding_raster`` (embeddings are interpolated, not similarities).
    """
    progress = progress or Progress("none")
    _check_dims(embedder, dims)
    check_size(grid, 1, dtype, max_gb)
    linear = _linear(embedder, dims)

    ref = unit_rows(linear(embedder.embed([reference[0]], [reference[1]])))[0]

    def finish(features: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return np.clip(unit_rows(features) @ ref, -1.0, 1.0)[:, None]

    tags = provenance(embedder, "similarity", grid, {"dims": dims, "dtype": dtype, "evaluation": evaluation,
                                                     "tolerance": tolerance, "reference_lonlat": list(reference)})
    valid = render_raster(embedder, grid, [RasterOutput(output, ["similarity"], dtype, tags, finish)], linear,
                          evaluation, tolerance, progress)
    return {"output": str(output), "width": grid.width, "height": grid.height, "bands": 1,
            "valid_pixels": valid, "reference_lonlat": list(reference)}
