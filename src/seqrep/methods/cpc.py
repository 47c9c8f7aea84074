"""Contrastive Predictive Coding (van den Oord et al. 2018) on sequences.

g_enc maps x to z_t, a GRU summarises z_<=t into c_t, and K bilinear maps predict z_{t+k} as
W_k c_t. The InfoNCE loss scores the true z_{t+k} against sampled negatives; per step k it reports
the loss, the accuracy of picking the positive, and the MI lower bound log N - L_k.

Only valid (unpadded) steps ever become a context, a positive or a negative: queries are drawn
from the (b, t, k) with t + k < length_b, and negatives by index arithmetic over the list of valid
positions, so padded values cannot enter the loss (a test checks this).

Series shorter than K + 1 steps: step k only uses the (t, t + k) pairs that fit, so a short
series contributes to the small k alone (K is reduced to what fits, per series; the per-k
metrics show how many steps were trained). A batch in which no pair fits at all raises a
ValueError that says to lengthen the crops or lower K.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrep.critics import BilinearPredictors
from seqrep.distributed import (
    all_gather_rows_counted,
    all_reduce_sum,
    gather_with_grad,
    world_size,
)
from seqrep.losses import info_nce_from_logits
from seqrep.methods.base import LossOutput, SeriesMethod, take_steps
from seqrep.nets import SequenceEncoder, check_pool, pool_steps

__all__ = [
    "CPC",
    "NEGATIVE_SOURCES",
    "BidirectionalCPC",
    "NegativeSource",
    "reverse_valid",
    "sample_negatives",
]

# Up to this many query x position scores, score every query against every position in one
# matmul and gather the candidates' scalar scores: far cheaper on CPU than gathering [Q, M, D]
# embeddings (whose backward is a slow index_put). Above it, gather embeddings: O(Q M D).
FULL_SCORE_LIMIT = 1 << 24

NegativeSource = Literal["batch", "time", "both", "position"]
NEGATIVE_SOURCES = ("batch", "time", "both", "position")


def sample_negatives(
    pos_flat: Tensor,
    pos_seq: Tensor,
    lengths: Tensor,
    max_len: int,
    num: int,
    source: NegativeSource,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Flat indices (into [B * max_len]) of ``num`` negatives per query, all at valid steps.

    Args:
        pos_flat: [Q] flat index b * max_len + t of each query's positive.
        pos_seq: [Q] the query's sequence b.
        lengths: [B] valid steps per sequence.
        source: ``"batch"`` - valid steps of the *other* sequences; ``"time"`` - other valid
            steps of the *same* sequence; ``"both"`` - any valid step but the positive;
            ``"position"`` - the *other* sequences at the positive's own step (where valid), so
            that no negative can be told from the positive by its position in the crop; a
            query whose step no other sequence reaches falls back to ``"batch"``.

    Returns:
        [Q, num] long. Sampling is uniform with replacement over the allowed set.
    """
    if source == "position":
        return _same_step_negatives(pos_flat, pos_seq, lengths, max_len, num, generator)
    device = lengths.device
    starts = torch.cumsum(lengths, 0) - lengths  # rank of each sequence's first valid step
    total = int(lengths.sum())
    pos_rank = starts[pos_seq] + pos_flat % max_len  # rank of the positive among valid steps
    u = torch.rand(pos_flat.shape[0], num, generator=generator, device=device)
    if source == "both":
        r = (u * (total - 1)).long()
        r = r + (r >= pos_rank[:, None]).long()  # skip the positive
    elif source == "time":
        own = lengths[pos_seq]
        if bool((own < 2).any()):
            raise ValueError("negatives='time' needs series with at least 2 valid steps")
        r = starts[pos_seq, None] + (u * (own[:, None] - 1)).long()
        r = r + (r >= pos_rank[:, None]).long()
    elif source == "batch":
        own = lengths[pos_seq]
        if bool((total - own < 1).any()):
            raise ValueError("negatives='batch' needs at least two series with valid steps")
        r = (u * (total - own)[:, None]).long()
        r = r + own[:, None] * (r >= starts[pos_seq, None]).long()  # skip the own sequence
    else:
        raise ValueError(f"negatives must be one of {NEGATIVE_SOURCES}, got {source!r}")
    # Map rank among valid steps back to the flat [B * max_len] index.
    seq = torch.searchsorted(starts, r, right=True) - 1
    return seq * max_len + (r - starts[seq])


def _same_step_negatives(
    pos_flat: Tensor,
    pos_seq: Tensor,
    lengths: Tensor,
    max_len: int,
    num: int,
    generator: torch.Generator | None,
) -> Tensor:
    """``"position"`` negatives [Q, num]: the other sequences at the positive's own step,
    uniform over those that reach it; ``"batch"`` ones for a query no other sequence reaches."""
    device = lengths.device
    u = torch.rand(pos_flat.shape[0], num, generator=generator, device=device)
    step = pos_flat % max_len
    others = torch.arange(len(lengths), device=device)[None, :] != pos_seq[:, None]
    allowed = (lengths[None, :] > step[:, None]) & others  # [Q, B]
    count = allowed.sum(1)
    # The k-th allowed sequence of each row, k uniform in [0, count): the first b whose
    # running count of allowed sequences exceeds k.
    k = (u * count[:, None]).long()
    seq = torch.searchsorted(allowed.long().cumsum(1), k, right=True)
    same_step = seq * max_len + step[:, None]
    if bool((count == 0).any()):
        fallback = sample_negatives(pos_flat, pos_seq, lengths, max_len, num, "batch", generator)
        same_step = torch.where((count == 0)[:, None], fallback, same_step)
    return same_step


class CPC(SeriesMethod):
    """CPC model: ``encoder`` (g_enc), ``gru`` (g_ar), ``predictors`` (W_1..W_K).

    Args:
        encoder: [B, T, C] -> [B, T', z_dim] with ``output_lengths``; causal.
        z_dim: the encoder's output size.
        context_dim: the GRU's hidden size.
        steps: K, predicted steps ahead.
        negatives: where negatives come from (see :func:`sample_negatives`).
        num_negatives: N - 1 per query.
        max_queries: (b, t, k) queries sampled per batch (all when fewer are valid).
        temperature: divides the bilinear scores.
    """

    def __init__(
        self,
        encoder: SequenceEncoder,
        z_dim: int,
        context_dim: int = 256,
        steps: int = 8,
        negatives: NegativeSource = "both",
        num_negatives: int = 32,
        max_queries: int = 1024,
        temperature: float = 1.0,
        pool: str = "max",
    ) -> None:
        super().__init__()
        if negatives not in NEGATIVE_SOURCES:
            raise ValueError(f"negatives must be one of {NEGATIVE_SOURCES}, got {negatives!r}")
        self.pool = check_pool(pool)
        self.encoder = encoder
        self.gru = nn.GRU(z_dim, context_dim, batch_first=True)
        self.predictors = BilinearPredictors(context_dim, z_dim, steps)
        self.steps, self.negatives, self.num_negatives = steps, negatives, num_negatives
        self.max_queries, self.temperature = max_queries, temperature

    def encode(
        self, x: Tensor, lengths: Tensor, skip: Tensor | None = None, width: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x [B, T, C] (NaN padding allowed) -> z [B, T', Dz], c [B, T', Dc], lengths' [B].

        ``skip`` [B]: steps at the start of each series that only the encoder reads; z and c
        start after them (the GRU's history starts there too: see :meth:`loss`), T' = ``width``
        (default: the longest row that remains)."""
        z = self.encoder(torch.nan_to_num(x))
        lengths = self.encoder.output_lengths(lengths)
        if skip is not None:
            lengths = lengths - skip
            z = take_steps(z, skip, int(lengths.max()) if width is None else width)
        c, _ = self.gru(z)
        return z, c, lengths

    def represent(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Instance vectors for probes: [z_t, c_t] pooled over valid steps (``pool``):
        [B, Dz + Dc] (max), or [B, 2 (Dz + Dc)] (max-mean)."""
        h, out_len = self.step_vectors(x, lengths)
        return pool_steps(h, out_len.clamp_min(1), self.pool)

    def step_vectors(
        self, x: Tensor, lengths: Tensor, causal: bool = True
    ) -> tuple[Tensor, Tensor]:
        """[z_t, c_t] per encoded step, [B, T', Dz + Dc], and the valid lengths [B]: causal
        (g_enc is a causal convolution, g_ar a forward GRU) whatever ``causal`` says."""
        z, c, out_len = self.encode(x, lengths)
        return torch.cat([z, c], dim=-1), out_len

    def loss(
        self,
        x: Tensor,
        lengths: Tensor,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
        keys: Tensor | None = None,
    ) -> LossOutput:
        """InfoNCE over k = 1..K on a batch x [B, T, C] with valid lengths [B].

        ``context`` [B, 2]: steps at the start and end of each series that the encoder reads
        but that are never a context, a positive or a negative (see
        :func:`seqrep.loops.pretrain.crop_in_context`).

        ``keys`` [B, T', Dz]: the candidates (positives and negatives) to score in place of the
        encoder's own z, e.g. a momentum (EMA) encoder's, without gradient; the context still
        reads z.

        Under torch.distributed, x is this rank's part of the global batch (T equal on every
        rank): z is gathered with gradient, every rank draws the queries and negatives of the
        global batch alike (``generator`` in step across ranks), and each scores only the
        queries whose context it holds, against every rank's z. Its loss is W times its share
        of the global mean, so that DDP's average of the ranks' gradients is the gradient of
        one process on the whole batch (see :mod:`seqrep.distributed`).
        """
        z, c, first, out_len = self._encode_all(x, lengths, context, keys)
        b, t_max, _ = z.shape
        bi, ti, ki = self._draw_queries(out_len, t_max, generator)
        pos_flat = bi * t_max + ti + ki + 1
        neg_flat = sample_negatives(
            pos_flat, bi, out_len, t_max, self.num_negatives, self.negatives, generator
        )
        queries = bi.numel()
        mine = (bi >= first) & (bi < first + c.shape[0])  # every query in one process
        bi, ti, ki, pos_flat, neg_flat = (v[mine] for v in (bi, ti, ki, pos_flat, neg_flat))
        z_flat = z.reshape(b * t_max, -1)
        pred = self.predictors(c[bi - first, ti])[torch.arange(bi.numel(), device=z.device), ki]
        pred = pred / self.temperature
        candidates = torch.cat([pos_flat[:, None], neg_flat], dim=1)  # [Q, 1 + M], positive first
        if pred.shape[0] * z_flat.shape[0] <= FULL_SCORE_LIMIT:
            logits = (pred @ z_flat.T).gather(1, candidates)
        else:
            logits = torch.bmm(z_flat[candidates], pred[:, :, None]).squeeze(-1)
        res = info_nce_from_logits(logits, reduction="none")
        loss = res.loss.sum() * (world_size() / queries)  # the mean in one process
        return LossOutput(loss, self._metrics(res.loss, res.logits, ki, queries, b))

    def _encode_all(
        self, x: Tensor, lengths: Tensor, context: Tensor | None, keys: Tensor | None
    ) -> tuple[Tensor, Tensor, int, Tensor]:
        """z of every rank's series [B_all, T', Dz] (gathered with gradient; ``keys`` in its
        place when given), this rank's contexts c [B, T', Dc], the index of this rank's first
        series in z, and every series' valid encoded length [B_all]."""
        skip = None if context is None else context[:, 0]
        if context is None:
            context = torch.zeros(lengths.shape[0], 2, dtype=lengths.dtype, device=lengths.device)
        # One gather of every rank's lengths and context serves every shape below (each
        # collective is a point where the ranks wait for each other).
        meta, counts = all_gather_rows_counted(torch.cat([lengths[:, None], context], dim=1))
        read = meta[:, 0] - meta[:, 2]  # what the encoder reads of each row
        out_len = self.encoder.output_lengths(read) - meta[:, 1]
        if skip is not None:
            # The encoder reads the context before the crop, so that no z_t in the crop sees
            # padding; the GRU starts at the crop (position in c is no shortcut once the
            # candidates z carry none, and its recurrence is the costly part). The context
            # after the crop cannot reach it (causal): dropped, to the longest row of any rank.
            x = x[:, : int(read.max())]
        z, c, _ = self.encode(x, lengths - context[:, 1], skip, int(out_len.max()))
        if keys is not None:
            z = keys if skip is None else take_steps(keys, skip, z.shape[1])
        z, first = gather_with_grad(z, counts=counts)
        return z, c, first, out_len

    def _draw_queries(
        self, out_len: Tensor, t_max: int, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The (b, t, k - 1) [Q] each of the queries: every pair with t + k inside its series,
        at most ``max_queries`` of them drawn at random."""
        k_range = torch.arange(1, self.steps + 1, device=out_len.device)
        t_range = torch.arange(t_max, device=out_len.device)
        valid = t_range[None, :, None] + k_range[None, None, :] < out_len[:, None, None]
        bi, ti, ki = valid.nonzero(as_tuple=True)  # [n] each; ki is k - 1
        if bi.numel() == 0:
            raise ValueError(
                f"no (t, t+k) pair fits: the longest series has {int(out_len.max())} encoded "
                f"steps and CPC needs more than K = {self.steps}; give it longer series (a "
                "larger crop window) or predict fewer steps ahead (a smaller K)"
            )
        if bi.numel() > self.max_queries:
            pick = torch.randperm(bi.numel(), generator=generator, device=out_len.device)
            bi, ti, ki = (v[pick[: self.max_queries]] for v in (bi, ti, ki))
        return bi, ti, ki

    @torch.no_grad()
    def _metrics(
        self, losses: Tensor, logits: Tensor, ki: Tensor, queries: int, b: int
    ) -> dict[str, float]:
        """Loss, accuracy and chance over every rank's queries, and per k the loss, accuracy and
        the bound log N - loss (``losses`` [Q], ``logits`` [Q, 1 + M] of this rank's)."""
        # Per k: loss sum, correct count, query count; summed over ranks.
        onehot = F.one_hot(ki, self.steps).to(losses.dtype)  # [Q, K]
        correct = (logits.argmax(1) == 0).to(onehot.dtype)
        per_k = torch.stack([losses.detach() @ onehot, correct @ onehot, onehot.sum(0)])
        total = losses.detach().sum()  # summed as the loss is: the logged value is it
        stats = all_reduce_sum(torch.cat([per_k.flatten(), total[None], correct.sum()[None]]))
        per_k_loss, per_k_correct, per_k_count = stats[:-2].view(3, -1).tolist()
        metrics = {
            "loss": (stats[-2] * (1 / queries)).item(),
            "accuracy": stats[-1].item() / queries,
        }
        log_n = math.log(self.num_negatives + 1)
        for k in range(self.steps):
            if per_k_count[k] > 0:
                lk = per_k_loss[k] / per_k_count[k]
                metrics[f"loss_k{k + 1}"] = lk
                metrics[f"acc_k{k + 1}"] = per_k_correct[k] / per_k_count[k]
                metrics[f"mi_bound_k{k + 1}"] = log_n - lk
        distinct = self.num_negatives + 1
        if self.negatives == "position":  # draws repeat the batch's other series: b distinct
            distinct = min(distinct, b)
        metrics["chance"] = 1.0 / distinct
        return metrics


def reverse_valid(x: Tensor, lengths: Tensor) -> Tensor:
    """Each series' valid steps in reverse order, still left-aligned and NaN-padded:
    [B, T, C], [B] -> [B, T, C] with out[b, t] = x[b, len_b - 1 - t] for t < len_b."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    idx = (lengths[:, None] - 1 - steps).clamp_min(0)
    out = x.gather(1, idx[:, :, None].expand(-1, -1, x.shape[2]))
    return out.masked_fill((steps >= lengths[:, None])[:, :, None], float("nan"))


class BidirectionalCPC(SeriesMethod):
    """Two CPC models, one on the series and one on the series reversed (each with its own
    encoder, GRU and predictors), trained on the same batches; the instance vector is both
    models' vectors side by side. One iteration trains both, so ``--iterations 100`` costs what
    200 iterations of one CPC cost.

    ``encoder`` is the forward model's (what a causal, streaming user reads)."""

    def __init__(self, forward_cpc: CPC, backward_cpc: CPC) -> None:
        super().__init__()
        self.forward_cpc, self.backward_cpc = forward_cpc, backward_cpc
        self.encoder = forward_cpc.encoder

    def loss(
        self,
        x: Tensor,
        lengths: Tensor,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> LossOutput:
        """The sum of both directions' InfoNCE; metrics: their mean loss and accuracy, and each
        direction's own (``forward_*``, ``backward_*``). ``context`` [B, 2] as in
        :meth:`CPC.loss`; the backward model reads the steps after the crop as its history."""
        ahead = self.forward_cpc.loss(x, lengths, generator, context)
        behind = self.backward_cpc.loss(
            reverse_valid(x, lengths),
            lengths,
            generator,
            None if context is None else context.flip(1),
        )
        metrics = {
            "loss": (ahead.metrics["loss"] + behind.metrics["loss"]) / 2,
            "accuracy": (ahead.metrics["accuracy"] + behind.metrics["accuracy"]) / 2,
            "chance": ahead.metrics["chance"],
        }
        for name, out in (("forward", ahead), ("backward", behind)):
            metrics |= {f"{name}_{k}": v for k, v in out.metrics.items() if k != "chance"}
        return LossOutput(ahead.loss + behind.loss, metrics)

    def represent(self, x: Tensor, lengths: Tensor) -> Tensor:
        """[forward vector, backward vector], each pooled as its CPC's ``pool``."""
        backward = self.backward_cpc.represent(reverse_valid(x, lengths), lengths)
        return torch.cat([self.forward_cpc.represent(x, lengths), backward], dim=-1)

    def step_vectors(
        self, x: Tensor, lengths: Tensor, causal: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Causal: the forward CPC's [z_t, c_t] alone. Otherwise beside them the backward
        CPC's, put back in time order, so that step t also reads every later step."""
        ahead, out_len = self.forward_cpc.step_vectors(x, lengths)
        if causal:
            return ahead, out_len
        behind, _ = self.backward_cpc.step_vectors(reverse_valid(x, lengths), lengths)
        return torch.cat([ahead, reverse_valid(behind, out_len)], dim=-1), out_len
