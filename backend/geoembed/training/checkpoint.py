"""Training checkpoints: written atomically (a new file renamed over the old), read without pickle.

A checkpoint holds tensors and plain Python values only, so ``torch.load(weights_only=True)`` reads it. The last
good checkpoint survives anything that goes wrong while the next one is written (a kill, a full disk).
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import torch

from ..atomic import partial_path
from ..errors import GeoEmbedError, InputError

FILE = "checkpoint.pt"


def save(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (flushed to disk before the rename)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)  # serialised first, so that a failed write is an OSError that names its cause
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise GeoEmbedError(f"the disk holding {path.parent} is full: free some space and run again with "
                                "--resume; the last checkpoint is intact") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: Path) -> dict:
    """The checkpoint at ``path``; InputError("RESUME", ...) if it is missing or damaged."""
    if not path.is_file():
        raise InputError("RESUME", f"there is no checkpoint to resume in {path.parent}; start the run without "
                                   "--resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: torch raises several kinds
        raise InputError("RESUME", f"the checkpoint {path} is damaged or not a GeoEmbed checkpoint ({err}); start "
                                   "a new run in another folder") from None
    if not isinstance(state, dict) or state.get("format") != "geoembed-training-checkpoint":
        raise InputError("RESUME", f"{path} is not a GeoEmbed training checkpoint; start a new run in another folder")
    return state
