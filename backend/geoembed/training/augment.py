"""Random positions and augmentations for contrastive training; every draw comes from the given torch.Generator.

Random numbers are drawn on the generator's device and moved to the data's, so a CPU generator gives the same
draws whatever device the data are on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Callable

import numpy as np
import torch

from ..coords import EARTH_RADIUS_KM, destination


def _uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=generator.device).to(device)


def uniform_lonlat(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` positions (lon, lat) uniform on the sphere, float64 degrees: lon uniform, sin(lat) uniform."""
    u = _uniform((n, 2), generator, torch.device(device))
    lon = 360.0 * u[:, 0] - 180.0  # u < 1: lon < 180
    lat = torch.rad2deg(torch.asin(2.0 * u[:, 1] - 1.0))
    return torch.stack([lon, lat], dim=1)


PHOTO_JITTER_KM = 5.0  # "auto" for photos: a ground photo shows what lies within a few km of where it was taken


def auto_jitter_km(data_description: Mapping) -> float:
    """The jitter radius "auto" stands for: half the ground width of a raster patch (the patch shows every place
    that far around its centre, so each is as much its position as the centre is), or PHOTO_JITTER_KM for
    photos. ``data_description`` is ImageSet.description."""
    patch_km = data_description.get("patch_km")
    return PHOTO_JITTER_KM if patch_km is None else round(float(patch_km) / 2.0, 2)


def jitter_lonlat(lonlat: torch.Tensor, km: float, generator: torch.Generator) -> torch.Tensor:
    """Move each (lon, lat) to a point uniform over the spherical cap of radius ``km`` around it; float64 (N, 2).

    Unbiased at every latitude (adding uniform noise in degrees, as SatCLIP's code does, is not: a degree of
    longitude shrinks towards the poles). Bearing theta is uniform in [0, 2 pi) and the angular distance d has
    cos d uniform in [cos r, 1], r = km / 6371.0088, which makes the cap's area element uniform; d is computed as
    2 asin(sqrt(u) sin(r / 2)) to keep precision for small caps. The destination is the spherical destination
    formula (``coords.destination``, exact at the poles); lon is wrapped into [-180, 180). km = 0 returns the
    positions unchanged (as float64) and draws nothing.
    """
    if lonlat.ndim != 2 or lonlat.shape[1] != 2:
        raise ValueError(f"positions must be (N, 2) (lon, lat), got {tuple(lonlat.shape)}")
    radius = float(km) / EARTH_RADIUS_KM
    if not 0.0 <= radius <= math.pi:
        raise ValueError(f"jitter must be from 0 to {math.pi * EARTH_RADIUS_KM:.0f} km, got {km!r}")
    lonlat = lonlat.to(torch.float64)
    if radius == 0.0:
        return lonlat
    u = _uniform((lonlat.shape[0], 2), generator, torch.device("cpu")).numpy()
    distance_km = EARTH_RADIUS_KM * 2.0 * np.arcsin(np.sqrt(u[:, 1]) * math.sin(radius / 2.0))
    lon, lat = destination(lonlat[:, 0].cpu().numpy(), lonlat[:, 1].cpu().numpy(), 360.0 * u[:, 0], distance_km)
    return torch.from_numpy(np.stack([lon, lat], axis=1)).to(lonlat.device)


def augment_patches(images: torch.Tensor, generator: torch.Generator, flips: bool = True,
                    rotations: bool = True) -> torch.Tensor:
    """A random horizontal flip, vertical flip and k x 90 degree rotation per square patch of (B, C, S, S).

    With both enabled, each of the 8 symmetries of the square is equally likely; the same draws are made whatever
    the options, so a seed gives the same stream of batches.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"patches must be (B, C, S, S), got {tuple(images.shape)}")
    code = torch.randint(0, 16, (images.shape[0],), generator=generator, device=generator.device)
    code = code.to(images.device).view(-1, 1, 1, 1)
    out = images
    if flips:
        out = torch.where((code & 1) == 1, out.flip(-1), out)
        out = torch.where((code & 2) == 2, out.flip(-2), out)
    if rotations:
        for turns in (1, 2, 3):
            out = torch.where((code >> 2) == turns, torch.rot90(out, turns, (-2, -1)), out)
    return out


def symmetric_views(images: torch.Tensor, flips: bool = True, rotations: bool = True) -> list[torch.Tensor]:
    """The distinct images of (B, C, S, S) under the symmetries ``augment_patches`` draws from: the 8 of the square
    with both, the 4 flips (none, horizontal, vertical, both) or the 4 quarter turns with one, the identity alone
    with neither."""
    turns = range(4) if rotations else range(1)
    if rotations:
        mirrors = [images, images.flip(-1)] if flips else [images]
    else:
        mirrors = [images, images.flip(-1), images.flip(-2), images.flip(-1).flip(-2)] if flips else [images]
    return [torch.rot90(m, k, (-2, -1)) if k else m for m in mirrors for k in turns]


def embed_symmetric(embed: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, flips: bool = True,
                    rotations: bool = True) -> torch.Tensor:
    """Test-time augmentation: the L2-normalised mean of ``embed``'s L2-normalised embeddings of each of
    ``symmetric_views``. A model trained with those augmentations has learnt them as one place; the mean evens out
    where it has learnt that only roughly."""
    views = symmetric_views(images, flips, rotations)
    total = sum(torch.nn.functional.normalize(embed(v), dim=-1) for v in views)
    return torch.nn.functional.normalize(total, dim=-1)
