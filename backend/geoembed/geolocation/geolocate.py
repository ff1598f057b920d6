"""Geolocate images: embed them, rank the gallery, refine the candidates, write the points (and probability maps)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..embedder import LocationEmbedder
from ..errors import InputError
from ..image_embedder import ImageEmbedder
from ..probable_place import MODE_CANDIDATES, by_probability_mass, mode_radius_km
from ..probes.cli import _stage
from ..progress import Progress
from .cache import gallery_embeddings
from .galleries import Gallery
from .images import Images
from .output import write_candidates
from .probability import default_pixel_size, probability_raster
from .search import POOL, Candidates, Refiner, top_candidates

BATCH = 64  # images searched (and refined) at a time


def check_top_k(top_k: int, gallery: Gallery) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise InputError("TOP_K", f"the number of candidates must be a whole number, at least 1, got {top_k!r}")
    if top_k > len(gallery):
        raise InputError("TOP_K", f"{top_k} candidates were asked for, but the gallery has only {len(gallery):,} "
                                  f"points ({gallery.description}); lower the number of candidates or use a larger "
                                  "gallery")


def _search(images: Images, image_embedder: ImageEmbedder, embedder: LocationEmbedder, gallery: Gallery,
            keys: np.ndarray, top_k: int, refine: bool,
            progress: Callable[[float, str], None]) -> tuple[Candidates, np.ndarray]:
    """(candidates, unit image embeddings (Q, D)), BATCH images at a time."""
    gallery_keys = torch.from_numpy(keys).to(image_embedder.device)
    refiner = Refiner(gallery, embedder) if refine else None
    radius_km = mode_radius_km(embedder.resolution_km)
    pool = min(len(gallery), max(top_k * POOL if refiner is not None else top_k, MODE_CANDIDATES if radius_km else 0))
    parts, embedded = [], []
    total = len(images.names)
    for start in range(0, total, BATCH):
        progress(start / total, f"geolocating image {start + 1} of {total}")
        queries = image_embedder.embed(images.pixels[start:start + BATCH])
        index, score, probability = top_candidates(queries, gallery_keys, pool, image_embedder.temperature)
        # the most probable places first: the most probability within radius_km (probable_place)
        keep = by_probability_mass(gallery.lonlat[index], score, image_embedder.temperature, radius_km)
        if refiner is not None:
            keep = np.take_along_axis(keep, refiner.distinct(np.take_along_axis(index, keep, axis=1), top_k), axis=1)
        keep = keep[:, :top_k]
        index, score, probability = (np.take_along_axis(a, keep, axis=1) for a in (index, score, probability))
        lonlat, refined = gallery.lonlat[index], np.zeros(index.shape, bool)
        if refiner is not None:
            lonlat, score, refined = refiner.refine(queries, index)
        parts.append(Candidates(index, score, probability, lonlat, refined))
        embedded.append(queries)
    found = Candidates(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Candidates)))
    return found, np.concatenate(embedded)


def geolocate(images: Images, image_embedder: ImageEmbedder, embedder: LocationEmbedder, gallery: Gallery, *,
              top_k: int, output: Path, refine: bool = True, raster: Path | None = None,
              pixel_size: float | None = None, progress: Progress | None = None) -> dict:
    """Write the ``top_k`` candidate places of each image to the point layer ``output`` (rank 1 most probable), and
    with ``raster`` a probability map per image over the gallery's region. ``image_embedder`` and ``embedder`` are
    the two halves of one trained model."""
    progress = progress or Progress("none")
    check_top_k(top_k, gallery)
    searched = 0.7 if raster else 1.0  # progress: gallery to 0.3, search to here, the maps after
    embedding = _stage(progress, 0.0, 0.3)
    keys, hit = gallery_embeddings(embedder, gallery, lambda done, total: embedding(
        done / max(total, 1), f"embedding the gallery ({total:,} points)"), progress.log)
    progress.log(f"gallery: {gallery.description}; embeddings {'from the cache' if hit else 'computed and cached'}")
    found, embedded = _search(images, image_embedder, embedder, gallery, keys, top_k, refine,
                              _stage(progress, 0.3, searched - 0.3))
    provenance = {"geoembed_kind": "geolocation", "geoembed_version": __version__,
                  "geoembed_model_id": embedder.model_id, "geoembed_weights_sha256": embedder.weights_sha256,
                  "geoembed_image_encoder_sha256": image_embedder.card["image_encoder"]["sha256"],
                  "geoembed_temperature": repr(image_embedder.temperature),
                  "geoembed_gallery": gallery.description, "geoembed_gallery_size": str(len(gallery)),
                  "geoembed_gallery_sha256": gallery.sha256, "geoembed_top_k": str(top_k),
                  "geoembed_refine": json.dumps(refine),
                  "geoembed_created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    result = {"output": str(output), "images": len(images.names), "skipped": len(images.skipped),
              "gallery_size": len(gallery), "gallery": gallery.description, "cache_hit": hit}
    if raster:
        parameters = {"gallery": gallery.description, "gallery_sha256": gallery.sha256,
                      "temperature": image_embedder.temperature}
        result.update(probability_raster(raster, images.names, embedded, embedder, gallery.region,
                                         pixel_size or default_pixel_size(gallery.region),
                                         image_embedder.temperature, parameters, _stage(progress, searched, 0.3)))
    progress.check()  # the last chance to stop with nothing written
    if write_candidates(output, images.names, found, provenance) == "nowhere":
        progress.log("note: a Shapefile holds no metadata, so the model and gallery are not recorded with the "
                     "points; use a GeoPackage to keep them")
    progress.report(1.0, f"{len(images.names)} images geolocated")
    return result
