"""The interface every sequence representation method implements."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqrep.nets import SequenceEncoder

__all__ = ["LossOutput", "SeriesMethod", "take_steps"]


@dataclass
class LossOutput:
    """loss: the scalar to minimise; metrics: plain floats for logging (loss, accuracy, ...)."""

    loss: Tensor
    metrics: dict[str, float]


class SeriesMethod(nn.Module):
    """A sequence pretraining method: ``encoder``, ``loss`` and ``represent``."""

    encoder: SequenceEncoder

    def loss(
        self, x: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> LossOutput:
        """The objective on a batch x [B, T, C] (NaN padding allowed) with valid lengths [B]."""
        raise NotImplementedError

    def represent(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Frozen instance vectors for probes: [B, T, C], [B] -> [B, D]."""
        raise NotImplementedError

    def step_vectors(
        self, x: Tensor, lengths: Tensor, causal: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Per-step vectors [B, T', D] (T' = T for the dilated encoder; the strided one has one
        step per frame) and their valid lengths [B]. ``causal``: step t depends on no later
        input (a backward model, which reads the future, is left out)."""
        raise NotImplementedError


def take_steps(h: Tensor, start: Tensor, width: int) -> Tensor:
    """Each row's steps from ``start[b]`` on, left-aligned: [B, T, D], [B] -> [B, width, D] with
    out[b, t] = h[b, start_b + t], clamped at T - 1 (callers mask what lies past a row's end:
    crops and windows with NaN, CPC by its lengths)."""
    steps = torch.arange(width, device=h.device)[None, :]
    idx = (start[:, None] + steps).clamp_max(h.shape[1] - 1)
    return h.gather(1, idx[:, :, None].expand(-1, -1, h.shape[2]))
