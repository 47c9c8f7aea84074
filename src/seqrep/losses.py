"""Contrastive and metric-learning losses: pure tensor math, no training state.

Conventions (see DESIGN.md): embeddings are ``[B, D]``; every loss takes ``reduction`` in
``{"mean", "sum", "none"}``; memory is O(B x N) for B queries and N candidates, never
pairs x pairs; log-sum-exp is done by :func:`torch.nn.functional.cross_entropy` on float32
logits, so the losses are stable at small temperatures and under bf16 autocast.

Bad input raises ``ValueError`` naming the argument (wrong shape, empty batch, non-positive
temperature, NaN/inf values). The NaN/inf check looks at the loss first and scans the inputs
only when the loss is not finite, so it costs nothing on the happy path.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from seqrep.critics import CosineCritic, Critic, DotCritic, SeparableCritic
from seqrep.distributed import gather_with_grad

__all__ = [
    "InfoNCEResult",
    "batch_contrastive_margin",
    "batch_triplet",
    "contrastive_margin",
    "info_nce",
    "info_nce_bound",
    "info_nce_from_logits",
    "info_nce_result",
    "pairwise_distances",
    "triplet_margin",
]

Reduction = Literal["mean", "sum", "none"]
Mining = Literal["all", "batch_hard", "semi_hard"]
# Parameter-free, so one shared instance each (building a Module per call costs microseconds
# that matter at small B).
_NAMED_CRITICS: dict[str, SeparableCritic] = {"dot": DotCritic(), "cosine": CosineCritic()}


# --------------------------------------------------------------------------- input checks
def _check_matrix(name: str, x: Tensor, ndim: int = 2) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        want = "[B, D]" if ndim == 2 else "[B, M, D]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); need B >= 1")


def _finite_or_raise(loss: Tensor, **inputs: Tensor | None) -> Tensor:
    """Raise naming the input that holds NaN/inf, if the loss is not finite.

    NaN and inf always reach the loss, so checking the (scalar or [B]) loss first keeps the
    O(B x D) scan of the inputs off the happy path.
    """
    if bool(torch.isfinite(loss.detach()).all()):
        return loss
    for name, x in inputs.items():
        if x is not None and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf values")
    sizes = ", ".join(
        f"{name} up to {float(x.detach().abs().max()):.3g}"
        for name, x in inputs.items()
        if x is not None and x.numel()
    )
    raise FloatingPointError(
        f"the loss is not finite although every input is ({sizes}): the scores of these "
        "inputs overflow the float range; scale the embeddings down (normalise them, e.g. "
        "similarity='cosine', or lower the temperature's inverse) or compute in float64"
    )


def _check_same_batch(names: tuple[str, str], a: Tensor, b: Tensor) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same batch size, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )


def _check_same_shape(names: tuple[str, ...], *tensors: Tensor) -> None:
    shapes = [tuple(t.shape) for t in tensors]
    if len(set(shapes)) != 1:
        listed = ", ".join(f"{n}={s}" for n, s in zip(names, shapes, strict=True))
        raise ValueError(f"shapes must match: {listed}")


def _check_labels(labels: Tensor, batch: int) -> None:
    if not isinstance(labels, Tensor) or labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor of length {batch}")
    if labels.shape[0] != batch:
        raise ValueError(f"labels has length {labels.shape[0]} but embeddings has {batch} rows")


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def at_least_float32(x: Tensor) -> Tensor:
    """Half-precision scores (e.g. from bf16 autocast) as float32, so a log-sum-exp over them is
    stable; float32 and float64 pass through unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _zero_with_grad(x: Tensor) -> Tensor:
    """A scalar 0 connected to x's graph, so backward() works when nothing is mined."""
    return x.sum() * 0.0


# --------------------------------------------------------------------------- InfoNCE
class InfoNCEResult(NamedTuple):
    """Everything :func:`info_nce_result` computes.

    loss: the reduced loss (or [B] with ``reduction="none"``).
    logits: [B, N] scores / temperature (at least float32); ``target[i]`` is the positive's column.
    target: [B] long.
    accuracy: scalar, fraction of rows whose arg-max is the positive (no gradient).
    """

    loss: Tensor
    logits: Tensor
    target: Tensor
    accuracy: Tensor

    @property
    def num_candidates(self) -> int:
        """N, the number of candidates each query chose among (positive included)."""
        return int(self.logits.shape[1])


def _resolve_critic(similarity: str | Critic) -> Critic:
    if isinstance(similarity, Critic):
        return similarity
    if isinstance(similarity, str) and similarity in _NAMED_CRITICS:
        return _NAMED_CRITICS[similarity]
    raise ValueError(
        f"similarity must be 'dot', 'cosine' or a seqrep.critics.Critic, got {similarity!r}"
    )


def _info_nce_logits(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | None,
    critic: Critic,
    inv_t: float,
    cross_rank: bool = True,
) -> tuple[Tensor, Tensor]:
    b = query.shape[0]
    sep = isinstance(critic, SeparableCritic)

    def pairwise(q: Tensor, k: Tensor) -> Tensor:
        # Separable critics fold 1/t into the query: O(B x D) instead of O(B x N).
        return critic.pairwise(q, k, scale=inv_t) if sep else critic.pairwise(q, k) * inv_t  # type: ignore[call-arg]

    def paired(q: Tensor, k: Tensor) -> Tensor:
        return critic.paired(q, k, scale=inv_t) if sep else critic.paired(q, k) * inv_t  # type: ignore[call-arg]

    if negatives is None:
        # In-batch: row i scores every positive (every rank's, under torch.distributed); its
        # own positive is column offset + i.
        # Each rank returns the mean over its own queries: their average is the global mean
        # only when every rank holds as many.
        keys, offset = gather_with_grad(positive, equal_rows=True) if cross_rank else (positive, 0)
        logits = pairwise(query, keys)
        target = offset + torch.arange(b, device=query.device)
    elif negatives.ndim == 2:
        # Shared negatives (memory bank): column 0 is the positive.
        logits = torch.cat([paired(query, positive[:, None, :]), pairwise(query, negatives)], 1)
        target = torch.zeros(b, dtype=torch.long, device=query.device)
    else:
        # Per-query negatives: candidates [B, 1 + M, D], column 0 is the positive.
        candidates = torch.cat([positive[:, None, :], negatives], dim=1)
        logits = paired(query, candidates)
        target = torch.zeros(b, dtype=torch.long, device=query.device)
    return at_least_float32(logits), target


def _validated_logits(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | None,
    similarity: str | Critic,
    temperature: float,
    cross_rank: bool = True,
) -> tuple[Tensor, Tensor]:
    _check_matrix("query", query)
    _check_matrix("positive", positive)
    _check_same_batch(("query", "positive"), query, positive)
    if negatives is not None:
        if negatives.ndim not in (2, 3):
            raise ValueError(
                "negatives must be [M, D] (shared) or [B, M, D] (per query), "
                f"got {tuple(negatives.shape)}"
            )
        _check_matrix("negatives", negatives, ndim=negatives.ndim)
        if negatives.ndim == 3:
            _check_same_batch(("query", "negatives"), query, negatives)
        if negatives.shape[-1] != positive.shape[-1]:
            raise ValueError(
                f"negatives have {negatives.shape[-1]} features but positive has "
                f"{positive.shape[-1]}"
            )
    if not (
        isinstance(temperature, int | float) and temperature > 0 and math.isfinite(temperature)
    ):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if isinstance(similarity, str) and query.shape[-1] != positive.shape[-1]:
        raise ValueError(
            f"query has {query.shape[-1]} features but positive has {positive.shape[-1]}; "
            "use a seqrep.critics.BilinearCritic to compare different dimensions"
        )
    critic = _resolve_critic(similarity)
    return _info_nce_logits(query, positive, negatives, critic, 1.0 / temperature, cross_rank)


def info_nce_result(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | None = None,
    *,
    similarity: str | Critic = "dot",
    temperature: float = 1.0,
    reduction: Reduction = "mean",
    cross_rank: bool = True,
) -> InfoNCEResult:
    """InfoNCE (van den Oord et al. 2018) with its logits and top-1 accuracy.

    The loss is the cross-entropy of picking the positive among N candidates:
    ``-log exp(f(q, k+)/t) / sum_j exp(f(q, k_j)/t)``.

    Args:
        query: [B, Dq].
        positive: [B, Dk]; row i is query i's positive.
        negatives: ``None`` uses the other B-1 positives of the batch (N = B);
            ``[M, Dk]`` are negatives shared by every query, e.g. a memory bank (N = M + 1);
            ``[B, M, Dk]`` are per-query negatives (N = M + 1).
        similarity: ``"dot"``, ``"cosine"`` or a :class:`seqrep.critics.Critic` (e.g. the
            bilinear q^T W k of CURL/CPC).
        temperature: divides every score; must be > 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` ([B] per-query losses).
        cross_rank: with in-batch negatives inside a torch.distributed process group, score
            every query against every rank's positives (N = W * B), gradients flowing back to
            each key's rank (:mod:`seqrep.distributed`); no effect in one process.

    Returns:
        :class:`InfoNCEResult` with ``loss``, ``logits`` [B, N], ``target`` [B], ``accuracy``.
    """
    logits, target = _validated_logits(
        query, positive, negatives, similarity, temperature, cross_rank
    )
    res = info_nce_from_logits(logits, target, reduction=reduction, _check=False)
    _finite_or_raise(res.loss, query=query, positive=positive, negatives=negatives)
    return res


def info_nce_from_logits(
    logits: Tensor,
    target: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
    _check: bool = True,
) -> InfoNCEResult:
    """InfoNCE from precomputed logits (scores / temperature), for callers that score
    candidates their own way (e.g. CPC gathering scores from one big matmul).

    Args:
        logits: [B, N]; row i scores query i's N candidates.
        target: [B] column of each row's positive; ``None`` means column 0.
    """
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"logits must be a non-empty [B, N] matrix, got {tuple(logits.shape)}")
    if target is None:
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    logits = at_least_float32(logits)
    loss = _reduce(F.cross_entropy(logits, target, reduction="none"), reduction)
    if _check:
        _finite_or_raise(loss, logits=logits)
    with torch.no_grad():
        accuracy = (logits.argmax(dim=1) == target).float().mean()
    return InfoNCEResult(loss, logits, target, accuracy)


def info_nce(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | None = None,
    *,
    similarity: str | Critic = "dot",
    temperature: float = 1.0,
    reduction: Reduction = "mean",
    cross_rank: bool = True,
) -> Tensor:
    """InfoNCE loss only; same arguments as :func:`info_nce_result`, which documents them.

    Skips the accuracy, so the in-batch case costs no more than
    ``F.cross_entropy(q @ k.T / t, arange(B))``.
    """
    logits, target = _validated_logits(
        query, positive, negatives, similarity, temperature, cross_rank
    )
    if reduction == "mean":
        loss = F.cross_entropy(logits, target)
    else:
        loss = _reduce(F.cross_entropy(logits, target, reduction="none"), reduction)
    return _finite_or_raise(loss, query=query, positive=positive, negatives=negatives)


def info_nce_bound(loss: Tensor | float, num_candidates: int) -> Tensor:
    """CPC's mutual-information lower bound ``I(x; c) >= log N - L_N`` (nats).

    Args:
        loss: the InfoNCE loss (mean cross-entropy), scalar or [B].
        num_candidates: N, the positive plus its N - 1 negatives.
    """
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    # float64, so that a loss near 0 can never round the bound above log N.
    loss = (
        loss.double()
        if isinstance(loss, Tensor)
        else torch.tensor(float(loss), dtype=torch.float64)
    )
    return math.log(num_candidates) - loss


# --------------------------------------------------------------------------- distances
def _sq_dist_pairs(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).pow(2).sum(-1)


def _safe_sqrt(x: Tensor, eps: float = 1e-12) -> Tensor:
    # sqrt has an infinite gradient at 0 (identical embeddings): below eps the value is exactly 0
    # and the gradient 0, never NaN. Written as x <= eps so that a NaN input stays NaN.
    return torch.where(x <= eps, torch.zeros_like(x), x.clamp_min(eps).sqrt())


def pairwise_distances(x: Tensor, squared: bool = False) -> Tensor:
    """Euclidean distances between all rows: [B, D] -> [B, B] (diagonal exactly 0).

    Uses ``|a|^2 + |b|^2 - 2 a.b`` (one matmul), clamped at 0 against round-off.
    """
    sq = x.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    d2 = d2.masked_fill(torch.eye(x.shape[0], dtype=torch.bool, device=x.device), 0.0)
    return d2 if squared else _safe_sqrt(d2)


# --------------------------------------------------------------------------- pairwise margin
def _contrastive_margin_terms(d2: Tensor, same: Tensor, margin: float, squared: bool) -> Tensor:
    d = _safe_sqrt(d2)
    if squared:
        # Hadsell, Chopra & LeCun 2006, eq. 4: 1/2 D^2 for similar, 1/2 max(0, m - D)^2 else.
        return torch.where(same, 0.5 * d2, 0.5 * F.relu(margin - d).pow(2))
    # Plain-distance hinge: D for similar pairs, max(0, m - D) for dissimilar ones.
    return torch.where(same, d, F.relu(margin - d))


def contrastive_margin(
    a: Tensor,
    b: Tensor,
    same: Tensor,
    margin: float = 1.0,
    *,
    squared: bool = True,
    reduction: Reduction = "mean",
) -> Tensor:
    """Pairwise contrastive margin loss (Chopra et al. 2005; Hadsell et al. 2006).

    With D = ||a_i - b_i||_2:

    * ``squared=True`` (Hadsell et al. 2006, eq. 4):
      ``same * D^2 / 2 + (1 - same) * max(0, margin - D)^2 / 2``.
    * ``squared=False`` (plain distance hinge, pytorch-metric-learning's ContrastiveLoss with
      ``pos_margin=0``): ``same * D + (1 - same) * max(0, margin - D)``.

    Args:
        a: [B, D] embeddings, the first of each pair.
        b: [B, D] embeddings, the second of each pair.
        same: [B] bool (or 0/1): whether pair i is a "same" (similar) pair.
        margin: dissimilar pairs closer than this are pushed apart; must be >= 0.
    """
    _check_matrix("a", a)
    _check_matrix("b", b)
    _check_same_shape(("a", "b"), a, b)
    if not isinstance(same, Tensor) or same.shape != (a.shape[0],):
        got = tuple(same.shape) if isinstance(same, Tensor) else type(same).__name__
        raise ValueError(f"same must be a [B] = [{a.shape[0]}] tensor, got {got}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    per_pair = _contrastive_margin_terms(_sq_dist_pairs(a, b), same.bool(), margin, squared)
    return _finite_or_raise(_reduce(per_pair, reduction), a=a, b=b)


def batch_contrastive_margin(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 1.0,
    *,
    squared: bool = True,
    reduction: Reduction = "mean",
) -> Tensor:
    """:func:`contrastive_margin` over all pairs i < j of a labelled batch.

    Args:
        embeddings: [B, D]; labels: [B]. Pairs with equal labels are "same".

    Returns:
        Scalar, or with ``reduction="none"`` the [B(B-1)/2] per-pair losses in
        ``torch.triu_indices(B, B, 1)`` order.
    """
    _check_matrix("embeddings", embeddings)
    _check_labels(labels, embeddings.shape[0])
    b = embeddings.shape[0]
    if b < 2:
        raise ValueError("embeddings needs at least 2 rows to form a pair")
    i, j = torch.triu_indices(b, b, 1, device=embeddings.device)
    d2 = pairwise_distances(embeddings, squared=True)[i, j]
    per_pair = _contrastive_margin_terms(d2, labels[i] == labels[j], margin, squared)
    return _finite_or_raise(_reduce(per_pair, reduction), embeddings=embeddings)


# --------------------------------------------------------------------------- triplets
def triplet_margin(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    *,
    squared: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """Triplet loss ``max(0, d(a, p) - d(a, n) + margin)`` (FaceNet, Schroff et al. 2015).

    Args:
        anchor: [B, D] embeddings.
        positive: [B, D], the same identity as each anchor.
        negative: [B, D], another identity.
        margin: how much farther than the positive the negative must be; >= 0.
        squared: use squared Euclidean distances, as FaceNet does.
    """
    _check_matrix("anchor", anchor)
    _check_matrix("positive", positive)
    _check_matrix("negative", negative)
    _check_same_shape(("anchor", "positive", "negative"), anchor, positive, negative)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    d_ap, d_an = _sq_dist_pairs(anchor, positive), _sq_dist_pairs(anchor, negative)
    if not squared:
        d_ap, d_an = _safe_sqrt(d_ap), _safe_sqrt(d_an)
    loss = _reduce(F.relu(d_ap - d_an + margin), reduction)
    return _finite_or_raise(loss, anchor=anchor, positive=positive, negative=negative)


def batch_triplet(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 1.0,
    *,
    mining: Mining = "batch_hard",
    squared: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """Triplet loss over a labelled batch with a triplet miner.

    Mining:
        * ``"all"``: every valid (a, p, n) with a != p, y_a = y_p != y_n. O(B^3) work and memory:
          for small batches (e.g. cross-checks); the mean is over all valid triplets.
        * ``"batch_hard"`` (Hermans et al. 2017): per anchor, the farthest positive and the
          nearest negative. O(B^2). The mean is over anchors that have both.
        * ``"semi_hard"`` (FaceNet): per positive pair (a, p), the nearest negative with
          d(a, p) < d(a, n); the triplet counts when d(a, n) < d(a, p) + margin. Found with a
          sorted search per anchor, so memory stays O(B^2). The mean is over counted triplets.

    A batch without any valid triplet returns a zero that still back-propagates.

    Args:
        embeddings: [B, D]; labels: [B] integer class ids.
        reduction: ``"none"`` returns the losses of the mined triplets (1-D, variable length).
    """
    _check_matrix("embeddings", embeddings)
    _check_labels(labels, embeddings.shape[0])
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if mining == "all":
        dist = pairwise_distances(embeddings, squared=squared)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        valid = (same & ~eye)[:, :, None] & ~same[:, None, :]
        losses = F.relu(dist[:, :, None] - dist[:, None, :] + margin)[valid]
        _finite_or_raise(dist.sum(), embeddings=embeddings)
    elif mining in ("batch_hard", "semi_hard"):
        # Mine on a distance matrix built without autograd, then differentiate only the chosen
        # triplets' distances: O(B^2) forward, O(B x D) backward (and exact differences rather
        # than the |a|^2 + |b|^2 - 2ab expansion).
        with torch.no_grad():
            miner = _mine_batch_hard if mining == "batch_hard" else _mine_semi_hard
            a, p, n = miner(embeddings.detach(), labels, margin, squared)
        d_ap = _sq_dist_pairs(embeddings[a], embeddings[p])
        d_an = _sq_dist_pairs(embeddings[a], embeddings[n])
        if not squared:
            d_ap, d_an = _safe_sqrt(d_ap), _safe_sqrt(d_an)
        losses = F.relu(d_ap - d_an + margin)
    else:
        raise ValueError(f"mining must be 'all', 'batch_hard' or 'semi_hard', got {mining!r}")

    if losses.numel() == 0:
        zero = _zero_with_grad(embeddings)
        return zero.reshape(0) if reduction == "none" else zero
    return _reduce(losses, reduction)


def _mined_distances(x: Tensor, labels: Tensor, squared: bool) -> tuple[Tensor, Tensor]:
    """No-grad distances [B, B] for mining, and the same-label mask [B, B]."""
    d = pairwise_distances(x, squared=squared)
    if not bool(torch.isfinite(d).all()):
        raise ValueError("embeddings contains NaN or inf values")
    return d, labels[:, None] == labels[None, :]


def _mine_batch_hard(
    x: Tensor, labels: Tensor, margin: float, squared: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Per anchor: the farthest positive and the nearest negative (anchors having both)."""
    del margin, squared  # squared distances order pairs as distances do: skip the sqrt
    d, same = _mined_distances(x, labels, squared=True)
    nearest_neg = d.masked_fill(same, float("inf")).argmin(1)
    d.masked_fill_(~same, float("-inf")).fill_diagonal_(float("-inf"))
    pos_d, farthest_pos = d.max(1)
    anchors = (torch.isfinite(pos_d) & ~same.all(1)).nonzero(as_tuple=True)[0]
    return anchors, farthest_pos[anchors], nearest_neg[anchors]


def _mine_semi_hard(
    x: Tensor, labels: Tensor, margin: float, squared: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Per positive pair (a, p): the nearest negative farther than p, kept if within margin.

    Negatives' distances are sorted per anchor (non-negatives pushed to +inf) and a batched
    searchsorted finds every pair's candidate at once: [B, B] memory, never [pairs, B].
    """
    d, same = _mined_distances(x, labels, squared)
    neg_sorted, order = d.masked_fill(same, float("inf")).sort(dim=1)
    idx = torch.searchsorted(neg_sorted, d.contiguous(), right=True).clamp_max(d.shape[1] - 1)
    d_an = neg_sorted.gather(1, idx)
    same.fill_diagonal_(False)
    counted = same & torch.isfinite(d_an) & (d_an > d) & (d_an < d + margin)
    anchors, positives = counted.nonzero(as_tuple=True)
    return anchors, positives, order.gather(1, idx)[anchors, positives]
