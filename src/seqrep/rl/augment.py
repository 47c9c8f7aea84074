"""Image augmentations of pixel agents, on uint8 [B, C, H, W] frame stacks (crop before the
float conversion: a quarter of the memory traffic): CURL's random crop, DrQ's random shift, and
the centre crop agents act and evaluate on."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["center_crop", "random_crop", "random_shift"]


def random_crop(pixels: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """One random ``size`` x ``size`` window per sample, the same window for all channels (so for
    every stacked frame): [B, C, H, W] -> [B, C, size, size], on the input's device and dtype.

    Offsets are uniform over all H - size + 1 by W - size + 1 valid positions, drawn with
    ``generator`` (which must live on the input's device). The windows are a strided view
    (``unfold``) and one gather copies just the chosen ones; crop uint8 pixels before
    converting them, a quarter of the memory traffic of cropping floats.
    """
    b, _, h, w = pixels.shape
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds the image ({h} x {w})")
    dev = pixels.device
    top = torch.randint(h - size + 1, (b,), generator=generator, device=dev)
    left = torch.randint(w - size + 1, (b,), generator=generator, device=dev)
    windows = pixels.unfold(2, size, 1).unfold(3, size, 1)  # [B, C, H-S+1, W-S+1, S, S]
    return windows[torch.arange(b, device=dev), :, top, left]


def random_shift(pixels: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """DrQ's image augmentation: replicate-pad by ``pad`` pixels on every side, then a random
    crop back to the input's size, i.e. a shift of up to ``pad`` pixels each way with the
    border pixels repeated: [B, C, H, W] -> [B, C, H, W] (square images), same dtype (crop
    uint8 pixels before converting them). The crop is :func:`random_crop` on the padded
    images, so its offsets, 0..2*pad, draw from ``generator`` the same way."""
    h, w = pixels.shape[-2:]
    if h != w:
        raise ValueError(f"random_shift needs square images, got {h} x {w}")
    padded = torch.nn.functional.pad(pixels, (pad, pad, pad, pad), mode="replicate")
    return random_crop(padded, h, generator)


def center_crop(pixels: Tensor, size: int) -> Tensor:
    """The centre ``size`` x ``size`` window: [B, C, H, W] -> [B, C, size, size] (acting and
    evaluation; offsets (H - size) // 2 and (W - size) // 2)."""
    h, w = pixels.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds the image ({h} x {w})")
    top, left = (h - size) // 2, (w - size) // 2
    return pixels[..., top : top + size, left : left + size]
