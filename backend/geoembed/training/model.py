"""The pair trained contrastively: a location encoder (any encoding x network of the zoo) and an image encoder."""

from __future__ import annotations

import torch
from torch import nn

from ..models.encoder import LocationEncoder
from .image_encoders import build_image_encoder


def encoding_resolution_km(encoding: dict) -> float | None:
    """The finest ground scale (km) a location encoding resolves, where it is known: half the shortest wavelength
    of spherical harmonics of degrees < L, 20,000 km / L; None for other encodings."""
    return round(20000.0 / int(encoding.get("degrees", 10)), 3) if encoding["name"] == "sh" else None


class ContrastiveModel(nn.Module):
    """``embed_locations`` takes (N, 2) (lon, lat) degrees; ``embed_images`` (B, C, S, S) normalised patches. Both
    return L2-normalised (N, dim) embeddings in one shared space."""

    def __init__(self, location: dict, image: dict, in_channels: int):
        super().__init__()
        self.location = LocationEncoder(**location)
        self.dim = int(location["network"]["dim_out"])
        self.image = build_image_encoder(image, in_channels, self.dim)

    def embed_locations(self, lonlat: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.location(lonlat), dim=-1)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.image(images), dim=-1)
