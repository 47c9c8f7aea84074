"""Window-based metric objectives on series (T-Loss-style sampling, Franceschi et al. 2019).

For each series in the batch an *anchor* window is cropped at random inside its valid steps and a
*positive* is cropped inside the anchor; windows of the other series are the negatives. The
encoder's masked max-pool gives one L2-normalised vector per window, and the loss is either the
FaceNet triplet loss or the pairwise contrastive margin loss over the 2B windows, labelled by
series.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from seqrep.distributed import (
    all_gather_rows_counted,
    gather_with_grad,
    rank_rows,
    world_size,
)
from seqrep.losses import batch_contrastive_margin, batch_triplet
from seqrep.methods.base import LossOutput, SeriesMethod, take_steps
from seqrep.nets import SequenceEncoder, check_pool, pool_steps

__all__ = ["WindowMetricLearning", "crop_windows", "take_windows", "window_bounds"]


def window_bounds(
    lengths: Tensor, min_len: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random anchor windows inside each series and positive sub-windows inside the anchors.

    Args:
        lengths: [B] valid steps; min_len: shortest window (clipped to each series' length).

    Returns:
        anchor start, anchor length, positive start, positive length: [B] long each.
    """
    b = lengths.shape[0]

    def randint_between(low: Tensor, high: Tensor) -> Tensor:  # inclusive, elementwise
        u = torch.rand(b, generator=generator, device=lengths.device)
        return low + (u * (high - low + 1).float()).long().clamp_max(high - low)

    lo = torch.clamp(torch.full_like(lengths, min_len), max=lengths)
    a_len = randint_between(lo, lengths)
    a_start = randint_between(torch.zeros_like(lengths), lengths - a_len)
    p_len = randint_between(torch.clamp(lo, max=a_len), a_len)
    p_start = a_start + randint_between(torch.zeros_like(lengths), a_len - p_len)
    return a_start, a_len, p_start, p_len


def take_windows(x: Tensor, start: Tensor, length: Tensor) -> Tensor:
    """Windows x[b, start_b : start_b + length_b], left-aligned and NaN-padded: [B, T, C]."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    out = take_steps(x, start, x.shape[1])
    return out.masked_fill((steps >= length[:, None])[:, :, None], float("nan"))


def crop_windows(
    x: Tensor, lengths: Tensor, min_len: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Anchor windows and positive sub-windows, left-aligned and NaN-padded.

    Args:
        x: [B, T, C]; lengths: [B] valid steps.
        min_len: shortest window (clipped to each series' length).

    Returns:
        anchors [B, T, C], anchor lengths [B], positives [B, T, C], positive lengths [B].
    """
    a_start, a_len, p_start, p_len = window_bounds(lengths, min_len, generator)
    return take_windows(x, a_start, a_len), a_len, take_windows(x, p_start, p_len), p_len


class WindowMetricLearning(SeriesMethod):
    """Triplet or pairwise-margin pretraining of a sequence encoder on random windows.

    Args:
        encoder: [B, T, C] -> [B, T, D] with ``output_lengths``.
        objective: ``"triplet"`` (:func:`seqrep.losses.batch_triplet`) or ``"contrastive"``
            (:func:`seqrep.losses.batch_contrastive_margin`).
        margin: on L2-normalised embeddings (distances lie in [0, 2]).
        mining: triplet mining (``"all"``, ``"batch_hard"``, ``"semi_hard"``).
        min_window: shortest window, in steps.
        pool: how :meth:`represent` pools a series' steps (``max`` or ``max-mean``).
    """

    def __init__(
        self,
        encoder: SequenceEncoder,
        objective: Literal["triplet", "contrastive"] = "triplet",
        margin: float = 0.5,
        mining: Literal["all", "batch_hard", "semi_hard"] = "all",
        min_window: int = 8,
        pool: str = "max",
    ) -> None:
        super().__init__()
        if objective not in ("triplet", "contrastive"):
            raise ValueError(f"objective must be 'triplet' or 'contrastive', got {objective!r}")
        self.pool = check_pool(pool)
        self.encoder, self.objective = encoder, objective
        self.margin, self.mining, self.min_window = margin, mining, min_window

    def represent(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Instance vectors: the encoder output pooled over valid steps (``pool``): [B, D] (max)
        or [B, 2D] (max-mean)."""
        h, out_len = self.step_vectors(x, lengths)
        return pool_steps(h, out_len.clamp_min(1), self.pool)

    def step_vectors(
        self, x: Tensor, lengths: Tensor, causal: bool = True
    ) -> tuple[Tensor, Tensor]:
        """The encoder's per-step output [B, T', D] (a causal convolution) and valid lengths."""
        return self.encoder(torch.nan_to_num(x)), self.encoder.output_lengths(lengths)

    def loss(
        self, x: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> LossOutput:
        """The margin loss over the anchor and positive windows of a batch x [B, T, C].

        Under torch.distributed, the windows are drawn for the global batch, the embeddings are
        gathered with gradient and mined over the global batch (see :mod:`seqrep.distributed`).
        """
        b = x.shape[0]
        if b * world_size() < 2:
            raise ValueError("window objectives need at least 2 series per batch (negatives)")
        every_length, counts = all_gather_rows_counted(lengths)
        a_start, a_len, p_start, p_len = (
            rank_rows(v) for v in window_bounds(every_length, self.min_window, generator)
        )
        windows = torch.cat([take_windows(x, a_start, a_len), take_windows(x, p_start, p_len)])
        emb = F.normalize(self.represent(windows, torch.cat([a_len, p_len])), dim=-1)
        # Gathered rank blocks [a_0; p_0; a_1; p_1 ...] -> [all anchors; all positives].
        emb = gather_with_grad(emb, equal_rows=True, counts=[2 * n for n in counts])[0]
        emb = emb.reshape(-1, 2, b, emb.shape[-1])
        emb = emb.transpose(0, 1)
        emb = emb.reshape(-1, emb.shape[-1])
        n = emb.shape[0] // 2
        labels = torch.arange(n, device=x.device).repeat(2)
        if self.objective == "triplet":
            loss = batch_triplet(emb, labels, self.margin, mining=self.mining)
        else:
            loss = batch_contrastive_margin(emb, labels, self.margin)
        with torch.no_grad():
            # Retrieval accuracy: is each anchor's nearest window its own positive?
            d = torch.cdist(emb[:n], emb)
            eye = torch.arange(n, device=x.device)
            d[eye, eye] = float("inf")
            acc = (d.argmin(1) == torch.arange(n, device=x.device) + n).float().mean()
        return LossOutput(loss, {"loss": loss.item(), "accuracy": acc.item()})
