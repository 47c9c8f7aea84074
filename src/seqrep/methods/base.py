"""The interface every sequence representation method implements."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqrep.nets import SequenceEncoder

__all__ = ["LossOutput", "SeriesMethod"]


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
