"""Where tensors live: the ``--device`` choice (``auto``, ``cpu``, ``cuda``) and moving a
sampled batch there."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEVICES", "batch_to", "check_device", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_device(device: str) -> str:
    """``device`` resolved, or a one-line error: not one of :data:`DEVICES`, or ``cuda`` where
    no GPU is visible."""
    if device not in DEVICES:
        raise ValueError(f"unknown --device {device!r}; choose {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    return resolve_device(device)


def batch_to(batch: dict[str, Tensor], device: str | torch.device) -> dict[str, Tensor]:
    """Every tensor of a sampled batch on ``device``. Data sets and replay buffers stay in host
    memory and draw their indices with a CPU generator, so one seed samples the same batches on
    every device; the models, their losses and their generators live on the device."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
