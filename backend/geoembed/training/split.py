"""A validation split that is spatially separate from the training points: whole blocks held out, and a buffer."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import BallTree

from ..coords import EARTH_RADIUS_KM
from ..errors import InputError
from ..probes.validation import spatial_blocks


def spatial_split(lonlat: np.ndarray, *, block_km: float, val_fraction: float, buffer_km: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted: equal-area blocks of about ``block_km`` are held out in random order until they
    hold at least ``val_fraction`` of the points; training points closer than ``buffer_km`` to any validation point
    are dropped (they are in neither part)."""
    lonlat = np.asarray(lonlat, np.float64)
    if lonlat.ndim != 2 or lonlat.shape[1] != 2 or not len(lonlat):
        raise ValueError(f"the split needs a non-empty (N, 2) array of (lon, lat), got shape {lonlat.shape}")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError("VAL_FRACTION", f"the validation fraction must lie in [0, 1), got {val_fraction}")
    if not buffer_km >= 0.0:
        raise InputError("BUFFER_KM", f"the buffer must be at least 0 km, got {buffer_km}")
    ids, block, counts = np.unique(spatial_blocks(lonlat[:, 0], lonlat[:, 1], block_km), return_inverse=True,
                                   return_counts=True)
    everything = np.arange(len(lonlat))
    if val_fraction == 0.0:
        return everything, everything[:0]
    order = np.random.default_rng(seed).permutation(len(ids))
    taken = int(np.searchsorted(np.cumsum(counts[order]), val_fraction * len(lonlat))) + 1
    if taken >= len(ids):
        raise InputError("BLOCK_KM", f"the {len(lonlat)} points fall in {len(ids)} blocks of {block_km:g} km, too few "
                                     f"to hold out {val_fraction:.0%} of them and train on the rest: use smaller "
                                     "blocks or a smaller validation fraction")
    held = np.isin(block, order[:taken])
    train, val = everything[~held], everything[held]
    if buffer_km > 0.0:
        tree = BallTree(np.radians(lonlat[val][:, ::-1]), metric="haversine")
        distance = tree.query(np.radians(lonlat[train][:, ::-1]), k=1)[0][:, 0] * EARTH_RADIUS_KM
        train = train[distance >= buffer_km]
        if not len(train):
            raise InputError("BUFFER_KM", f"every training point lies within {buffer_km:g} km of a validation point; "
                                          "use a smaller buffer or larger blocks")
    return train, val
