"""Validation of a contrastive pair: image -> location retrieval and geolocation error against a gallery."""

from __future__ import annotations

import numpy as np
import torch

from ..coords import fibonacci_lattice, great_circle_km
from ..probable_place import MODE_CANDIDATES, by_probability_mass
from .augment import embed_symmetric

WITHIN_KM = (25, 200, 750, 2500)


def gallery_lonlat(n: int) -> np.ndarray:
    """``n`` equal-area gallery points (Fibonacci lattice), (n, 2) (lon, lat)."""
    return np.stack(fibonacci_lattice(n), axis=1)


def top_k(queries: torch.Tensor, keys: torch.Tensor, k: int, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, indices), each (Q, k): the ``k`` keys most similar to each query (dot products), in chunks."""
    scores, indices = [], []
    for start in range(0, len(queries), chunk):
        s, i = (queries[start:start + chunk] @ keys.T).topk(min(k, len(keys)), dim=1)
        scores.append(s)
        indices.append(i)
    return torch.cat(scores), torch.cat(indices)


def error_summary(errors_km: np.ndarray) -> dict:
    """Median error and the share within each of WITHIN_KM, in percent."""
    summary = {"median_km": round(float(np.median(errors_km)), 1)}
    summary.update({f"within_{d}_km": round(100.0 * float(np.mean(errors_km <= d)), 2) for d in WITHIN_KM})
    return summary


@torch.inference_mode()
def embed_in_batches(embed, values: np.ndarray, batch: int, device: torch.device, dtype=None) -> torch.Tensor:
    """``embed`` applied to ``values`` batch by batch (numpy in, tensor on ``device`` out)."""
    out = [embed(torch.from_numpy(np.asarray(values[s:s + batch])).to(device, dtype=dtype))
           for s in range(0, len(values), batch)]
    return torch.cat(out).float()


@torch.inference_mode()
def validate(model, images: np.ndarray, lonlat: np.ndarray, gallery: np.ndarray, batch: int,
             device: torch.device, temperature: float = 1.0, radius_km: float | None = None,
             flips: bool = False, rotations: bool = False) -> dict:
    """Retrieval top-1/top-5 of the true location among the locations of its batch, and the geolocation error of
    the most probable gallery point (probable_place: the most probability within ``radius_km``; without a radius
    the most similar point), for the validation set. Each image is embedded as the mean over the symmetries the
    model was trained with (``flips``, ``rotations``; augment.embed_symmetric), as Geolocate embeds them."""
    was_training = model.training
    model.eval()
    try:
        image_emb = embed_in_batches(lambda x: embed_symmetric(model.embed_images, x, flips, rotations), images,
                                     batch, device, torch.float32)
        location_emb = embed_in_batches(model.embed_locations, lonlat, batch, device)
        gallery_emb = embed_in_batches(model.embed_locations, gallery, 8192, device)
    finally:
        model.train(was_training)
    hits1 = hits5 = 0
    for start in range(0, len(image_emb), batch):
        sims = image_emb[start:start + batch] @ location_emb[start:start + batch].T
        rank = (sims > sims.diagonal()[:, None]).sum(dim=1)
        hits1 += int((rank < 1).sum())
        hits5 += int((rank < 5).sum())
    cosine, index = (t.cpu().numpy() for t in top_k(image_emb, gallery_emb, MODE_CANDIDATES if radius_km else 1))
    order = by_probability_mass(gallery[index], cosine, temperature, radius_km)
    guess = gallery[index[np.arange(len(index)), order[:, 0]]]
    errors = great_circle_km(guess[:, 0], guess[:, 1], lonlat[:, 0], lonlat[:, 1])
    n = len(image_emb)
    return {"retrieval_top1": round(100.0 * hits1 / n, 2), "retrieval_top5": round(100.0 * hits5 / n, 2),
            "retrieval_batch": min(batch, n), "gallery": len(gallery), **error_summary(errors)}
