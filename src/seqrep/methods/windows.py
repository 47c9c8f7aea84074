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

from seqrep.losses import batch_contrastive_margin, batch_triplet
from seqrep.methods.base import LossOutput, SeriesMethod
from seqrep.nets import SequenceEncoder, masked_max_pool

__all__ = ["WindowMetricLearning", "crop_windows"]


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
    b, t_max, _ = x.shape

    def randint_between(low: Tensor, high: Tensor) -> Tensor:  # inclusive, elementwise
        u = torch.rand(b, generator=generator, device=x.device)
        return low + (u * (high - low + 1).float()).long().clamp_max(high - low)

    lo = torch.clamp(torch.full_like(lengths, min_len), max=lengths)
    a_len = randint_between(lo, lengths)
    a_start = randint_between(torch.zeros_like(lengths), lengths - a_len)
    p_len = randint_between(torch.clamp(lo, max=a_len), a_len)
    p_start = a_start + randint_between(torch.zeros_like(lengths), a_len - p_len)

    steps = torch.arange(t_max, device=x.device)[None, :]

    def take(start: Tensor, n: Tensor) -> Tensor:
        idx = (start[:, None] + steps).clamp_max(t_max - 1)
        out = x.gather(1, idx[:, :, None].expand(-1, -1, x.shape[2]))
        return out.masked_fill((steps >= n[:, None])[:, :, None], float("nan"))

    return take(a_start, a_len), a_len, take(p_start, p_len), p_len


class WindowMetricLearning(SeriesMethod):
    """Triplet or pairwise-margin pretraining of a sequence encoder on random windows.

    Args:
        encoder: [B, T, C] -> [B, T, D] with ``output_lengths``.
        objective: ``"triplet"`` (:func:`seqrep.losses.batch_triplet`) or ``"contrastive"``
            (:func:`seqrep.losses.batch_contrastive_margin`).
        margin: on L2-normalised embeddings (distances lie in [0, 2]).
        mining: triplet mining (``"all"``, ``"batch_hard"``, ``"semi_hard"``).
        min_window: shortest window, in steps.
    """

    def __init__(
        self,
        encoder: SequenceEncoder,
        objective: Literal["triplet", "contrastive"] = "triplet",
        margin: float = 0.5,
        mining: Literal["all", "batch_hard", "semi_hard"] = "all",
        min_window: int = 8,
    ) -> None:
        super().__init__()
        if objective not in ("triplet", "contrastive"):
            raise ValueError(f"objective must be 'triplet' or 'contrastive', got {objective!r}")
        self.encoder, self.objective = encoder, objective
        self.margin, self.mining, self.min_window = margin, mining, min_window

    def represent(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Instance vectors: max over valid steps of the encoder output, [B, D]."""
        h = self.encoder(torch.nan_to_num(x))
        return masked_max_pool(h, self.encoder.output_lengths(lengths).clamp_min(1))

    def loss(
        self, x: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> LossOutput:
        if x.shape[0] < 2:
            raise ValueError("window objectives need at least 2 series per batch (negatives)")
        anc, anc_len, pos, pos_len = crop_windows(x, lengths, self.min_window, generator)
        emb = F.normalize(
            self.represent(torch.cat([anc, pos]), torch.cat([anc_len, pos_len])), dim=-1
        )
        labels = torch.arange(x.shape[0], device=x.device).repeat(2)
        if self.objective == "triplet":
            loss = batch_triplet(emb, labels, self.margin, mining=self.mining)
        else:
            loss = batch_contrastive_margin(emb, labels, self.margin)
        with torch.no_grad():
            # Retrieval accuracy: is each anchor's nearest window its own positive?
            b = x.shape[0]
            d = torch.cdist(emb[:b], emb)
            d[torch.arange(b), torch.arange(b)] = float("inf")
            acc = (d.argmin(1) == torch.arange(b, device=x.device) + b).float().mean()
        return LossOutput(loss, {"loss": loss.item(), "accuracy": acc.item()})
