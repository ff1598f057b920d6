"""Image embeddings against gallery embeddings: the top-K gallery points with their cosine and their softmax
probability over the whole gallery (p = softmax(cos / T), T the model's temperature); then each candidate refined
on a local, denser cap of points around it, embedded exactly, so that answers can be finer than the gallery."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..coords import unit_vectors, wrap_lon
from ..embedder import LocationEmbedder
from .galleries import Gallery
from .regions import GOLDEN

CAP_POINTS = 32  # points of each refinement cap, besides its centre
LEVELS = 2  # caps, each SHRINK times narrower than the one before, around the best point so far
SHRINK = 4.0
SEPARATION = 2.0  # refined candidates of one image are kept this many gallery spacings apart
POOL = 8  # ... chosen among this many times K best gallery points


@dataclass
class Candidates:
    """Per image (rows) and rank (columns): gallery ``index``, ``score`` (cosine) and ``probability``; ``lonlat``
    (Q, K, 2) and ``refined`` (the point moved off its gallery point) after refinement."""

    index: np.ndarray
    score: np.ndarray
    probability: np.ndarray
    lonlat: np.ndarray
    refined: np.ndarray


@torch.inference_mode()
def top_candidates(images: np.ndarray, gallery: torch.Tensor, k: int, temperature: float) -> tuple[np.ndarray, ...]:
    """(index, cosine, probability), each (Q, k), of the ``k`` gallery rows most similar to each unit image
    embedding; probabilities are the softmax of cosine / ``temperature`` over all of the gallery."""
    queries = torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(gallery.device)
    cosine = queries @ gallery.T
    log_z = torch.logsumexp(cosine / temperature, dim=1, keepdim=True)
    score, index = cosine.topk(k, dim=1)
    probability = torch.exp(score / temperature - log_z)
    return index.cpu().numpy(), score.cpu().numpy(), probability.cpu().numpy()


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); all-zero rows stay zero."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def to_lonlat(xyz: np.ndarray) -> np.ndarray:
    return np.stack([wrap_lon(np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0]))),
                     np.degrees(np.arcsin(np.clip(xyz[..., 2], -1.0, 1.0)))], axis=-1)


def spiral_caps(centres: np.ndarray, radius: np.ndarray, n: int = CAP_POINTS) -> np.ndarray:
    """(P, n + 1, 3) unit vectors: each centre, then ``n`` equal-area points (a Fibonacci spiral) of the spherical
    cap of angular ``radius`` (radians) around it."""
    i = np.arange(n) + 0.5
    cos_t = 1.0 - (1.0 - np.cos(radius))[:, None] * i / n
    sin_t = np.sqrt(np.clip(1.0 - cos_t ** 2, 0.0, None))
    phi = 2.0 * math.pi * i / GOLDEN
    helper = np.where(np.abs(centres[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(centres, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(centres, e1)
    ring = (np.cos(phi)[None, :, None] * e1[:, None] + np.sin(phi)[None, :, None] * e2[:, None])
    cap = cos_t[..., None] * centres[:, None] + sin_t[..., None] * ring
    return np.concatenate([centres[:, None], cap], axis=1)


class Refiner:
    """Moves candidates to the best point of a denser local cap around them, inside the gallery's region. The first
    cap's radius is the distance from the candidate to its nearest gallery neighbour (the local gallery spacing);
    then LEVELS - 1 caps, each SHRINK times narrower, around the best point so far."""

    def __init__(self, gallery: Gallery, embedder: LocationEmbedder):
        self.gallery = gallery
        self.xyz = unit_vectors(gallery.lonlat[:, 0], gallery.lonlat[:, 1])
        self.tree = cKDTree(self.xyz) if len(gallery) > 1 else None
        self.embedder = embedder

    def spacing(self, index: np.ndarray) -> np.ndarray:
        """Angle (radians) from each gallery point to its nearest other gallery point; 0 for a single point."""
        if self.tree is None:
            return np.zeros(len(index))
        chord = self.tree.query(self.xyz[index], k=2)[0][:, 1]
        return 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))

    def distinct(self, index: np.ndarray, k: int) -> np.ndarray:
        """For ranked gallery indices (Q, M), the columns (Q, k) of the best ``k`` that lie at least SEPARATION local
        gallery spacings from every better one (refinement would otherwise pull neighbours onto one place); the
        next best ones fill up where too few are that far apart."""
        xyz = self.xyz[index]  # (Q, M, 3)
        apart = np.arccos(np.clip(np.einsum("qmd,qnd->qmn", xyz, xyz), -1.0, 1.0))
        reach = SEPARATION * self.spacing(index.ravel()).reshape(index.shape)
        columns = np.empty((len(index), k), np.int64)
        for row in range(len(index)):
            chosen: list[int] = []
            for m in range(index.shape[1]):
                if all(apart[row, m, c] >= max(reach[row, m], reach[row, c]) for c in chosen):
                    chosen.append(m)
                    if len(chosen) == k:
                        break
            rest = [m for m in range(index.shape[1]) if m not in chosen]
            columns[row] = (chosen + rest)[:k]
        return columns

    def refine(self, images: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lonlat (Q, K, 2), cosine (Q, K), moved (Q, K)) of the best point near each candidate ``index`` (Q, K)
        for unit image embeddings ``images`` (Q, D)."""
        q, k = index.shape
        centres = self.xyz[index.ravel()]
        radius = self.spacing(index.ravel())
        owner = np.repeat(np.arange(q), k)
        moved = np.zeros(q * k, bool)
        for _ in range(LEVELS):
            caps = spiral_caps(centres, radius)
            lonlat = to_lonlat(caps).reshape(-1, 2)
            embedded = unit_rows(self.embedder.embed(lonlat[:, 0], lonlat[:, 1])).reshape(*caps.shape[:2], -1)
            scores = np.einsum("pmd,pd->pm", embedded, images[owner])
            inside = self.gallery.region.inside(lonlat[:, 0], lonlat[:, 1]).reshape(caps.shape[:2])
            scores = np.where(inside | (np.arange(caps.shape[1]) == 0), scores, -np.inf)  # centres are inside
            best = scores.argmax(axis=1)
            moved |= best > 0
            centres = caps[np.arange(len(caps)), best]
            radius = radius / SHRINK
        final = np.where(moved[:, None], to_lonlat(centres), self.gallery.lonlat[index.ravel()])
        return final.reshape(q, k, 2), scores[np.arange(len(caps)), best].reshape(q, k), moved.reshape(q, k)
