"""Image encoders for contrastive training: patches (B, C, S, S) of any band count and square size S >= 8 to (B, D).

    cnn       a stem conv, then ``depth`` - 1 stride-2 blocks (conv 3x3, BatchNorm, ReLU) doubling the width up to
              8 x ``width``, global average pooling and a linear head: small and fast.
    resnet18  ResNet-18 (He et al. 2016, CVPR): BasicBlocks [2, 2, 2, 2] of ``width``, 2, 4, 8 x ``width`` channels,
              global average pooling and a linear head. ``stem="small"`` (default) is a 3x3 stride-1 conv without
              max-pooling, for satellite patches of 8 to ~64 pixels (as for CIFAR); ``stem="large"`` is ImageNet's
              7x7 stride-2 conv and 3x3 stride-2 max-pool, for photos of ~224 pixels.

Convolutions use He (fan-out) initialisation as torchvision does; with ``stem="large"``, 3 bands and width 64 the
network has exactly torchvision's ResNet-18 parameter count.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from ..specs import build_from_spec


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"image encoder: {name} must be an integer from {low} to {high}, got {value!r}")


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def _he_init_(net: nn.Module) -> nn.Module:
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return net


class PooledHead(nn.Module):
    """Global average pooling over the spatial dimensions, then a linear layer."""

    def __init__(self, channels: int, dim_out: int):
        super().__init__()
        self.linear = nn.Linear(channels, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(-2, -1)))


def cnn(in_channels: int, dim_out: int, width: int = 32, depth: int = 4) -> nn.Sequential:
    """Plain CNN: conv-BN-ReLU at full resolution, ``depth`` - 1 stride-2 conv-BN-ReLU blocks, pooled linear head."""
    _check_int("in_channels", in_channels, 1, 4096)
    _check_int("dim_out", dim_out, 1, 65536)
    _check_int("width", width, 1, 1024)
    _check_int("depth", depth, 1, 8)
    channels = [width * 2 ** min(i, 3) for i in range(depth)]
    blocks = [_conv_bn_relu(in_channels, channels[0], 1)]
    blocks += [_conv_bn_relu(c_in, c_out, 2) for c_in, c_out in zip(channels, channels[1:])]
    return _he_init_(nn.Sequential(*blocks, PooledHead(channels[-1], dim_out)))


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convs with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


STEMS = ("small", "large")


def resnet18(in_channels: int, dim_out: int, width: int = 64, stem: str = "small") -> nn.Sequential:
    """ResNet-18 with a pooled linear head; ``stem`` "small" (3x3 stride 1, no max-pool) or "large" (ImageNet's)."""
    _check_int("in_channels", in_channels, 1, 4096)
    _check_int("dim_out", dim_out, 1, 65536)
    _check_int("width", width, 1, 512)
    if stem not in STEMS:
        raise ValueError(f"image encoder: stem must be one of {', '.join(STEMS)}, got {stem!r}")
    if stem == "small":
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)]
    else:
        layers = [nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)]
    layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    if stem == "large":
        layers.append(nn.MaxPool2d(3, 2, 1))
    c_in = width
    for stage in range(4):
        c_out = width * 2 ** stage
        layers += [BasicBlock(c_in, c_out, 1 if stage == 0 else 2), BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    return _he_init_(nn.Sequential(*layers, PooledHead(c_in, dim_out)))


IMAGE_ENCODERS: dict[str, Callable[..., nn.Module]] = {"cnn": cnn, "resnet18": resnet18}


def build_image_encoder(spec: dict, in_channels: int, dim_out: int) -> nn.Module:
    """An encoder from ``{"name": "cnn" | "resnet18", **params}``: (B, in_channels, S, S) float32 to (B, dim_out)."""
    factory = IMAGE_ENCODERS.get(spec.get("name")) if isinstance(spec, dict) else None
    if factory is not None:
        known = list(inspect.signature(factory).parameters)[2:]
        unknown = sorted(set(spec) - {"name", *known})
        if unknown:
            raise ValueError(f"image encoder {spec['name']!r}: unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(known)}")
    return build_from_spec(spec, IMAGE_ENCODERS, "image encoder", in_channels, dim_out)
