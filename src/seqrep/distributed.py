"""Data parallelism for contrastive objectives (torch.distributed): every rank's keys as negatives.

Data parallelism goes wrong for contrastive losses when a rank sees only its own keys (fewer
negatives than the global batch) or when the keys are gathered without autograd (the other
ranks' queries then never push gradient back into this rank's keys). :func:`gather_with_grad`
is an all-gather whose backward sums every rank's gradient into the owner of each row.

seqrep's methods keep one invariant: each rank encodes its own part of the global batch, gathers
the embeddings with :func:`gather_with_grad`, and returns a loss whose mean over the ranks is the
loss of one process on the whole batch. Either every rank computes the global loss (the margin
losses, whose mining needs every pair; the state objectives' in-batch InfoNCE), or each rank
scores only its own queries against every rank's keys and returns W times its share (CPC,
``info_nce``), which does not repeat the scoring on every rank. The gather's backward sums every
rank's gradient into the owner of each row, and DistributedDataParallel's average over the W
ranks then leaves exactly the gradient of one process on the whole batch. Randomness inside a
loss (query sampling, crops, noise) is drawn for the global batch from a generator that has the
same state on every rank (:func:`draw_for_batch`), so a run on W ranks at per-rank batch B draws
what one process at batch W * B would.

In one process every helper is the identity: the Python API needs no change.
"""

from __future__ import annotations

import datetime
import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "all_gather_rows",
    "all_gather_rows_counted",
    "all_reduce_sum",
    "average_over_ranks",
    "broadcast_object",
    "data_parallel_loss",
    "draw_for_batch",
    "gather_objects",
    "gather_with_grad",
    "init_from_env",
    "is_distributed",
    "process_group",
    "rank",
    "rank_rows",
    "shutdown",
    "world_size",
]

T = TypeVar("T")

# A rank stuck in a collective (its peer died outside torchrun) fails after this long instead
# of hanging for gloo's default 30 minutes.
COLLECTIVE_TIMEOUT_S = float(os.environ.get("SEQREP_COLLECTIVE_TIMEOUT", "300"))


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group that a launcher (torchrun) describes in the environment.

    Backend nccl for ``device="cuda"`` (each process on GPU ``LOCAL_RANK``), gloo otherwise.
    Returns whether this process is one of several; without ``WORLD_SIZE`` > 1 (a plain
    ``python``/``seqrep`` call) nothing happens.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
        )
    return is_distributed()


def shutdown() -> None:
    """Leave the process group together (a no-op in one process). The barrier first matters:
    a gloo rank that tears down its connections while a peer still holds them can abort.

    A DistributedDataParallel model can sit in a reference cycle (a fresh process's first one
    does), so its reducer, which holds the group, outlives the function that made it until the
    garbage collector runs; left to the interpreter's finalization, gloo's teardown there can
    abort the process after all work is done (pytorch/pytorch#179291). Collecting first frees
    it while the interpreter is whole."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(device: str = "cpu") -> Iterator[bool]:
    """:func:`init_from_env` on entry, :func:`shutdown` on exit (also on an error): what a
    torchrun-launched verb wraps its work in. Yields whether this process is one of several."""
    try:
        yield init_from_env(device)
    finally:
        shutdown()


def _pad_to(x: Tensor, rows: int) -> Tensor:
    if x.shape[0] == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - x.shape[0], *x.shape[1:]))])


def _row_counts(x: Tensor) -> list[int]:
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    return [int(s) for s in sizes]


class _AllGather(torch.autograd.Function):
    """Equal-size all-gather whose backward sums every rank's gradient of the gathered rows
    (one all-reduce, which gloo and nccl both run as a ring) and keeps this rank's rows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[rank() * ctx.rows : (rank() + 1) * ctx.rows]


def gather_with_grad(
    x: Tensor, equal_rows: bool = False, counts: list[int] | None = None
) -> tuple[Tensor, int]:
    """Every rank's rows, in rank order, with gradients flowing back to their owners.

    Args:
        x: [B_r, ...] this rank's rows (B_r may differ between ranks).
        equal_rows: the caller needs the same B on every rank (a mean over its own rows, a
            reshape by rank); every rank then raises alike when they differ.
        counts: every rank's B_r when the caller already has them (from
            :func:`all_gather_rows_counted` on the same batch): saves one collective, a
            synchronisation of the ranks, per call.

    Returns:
        ([sum_r B_r, ...] all rows, offset of this rank's first row): (x, 0) in one process.

    Raises:
        ValueError: ``equal_rows`` and the ranks hold different numbers of rows.
    """
    if not is_distributed():
        return x, 0
    counts = _row_counts(x) if counts is None else counts
    if equal_rows and len(set(counts)) != 1:
        raise ValueError(
            f"every rank must hold the same batch size here; got {counts} (drop the last, "
            "smaller batch: a distributed sampler with drop_last)"
        )
    width = max(counts)
    gathered = _AllGather.apply(_pad_to(x, width))  # equal shapes on the wire
    rows = torch.cat([gathered[r * width : r * width + n] for r, n in enumerate(counts)])
    return rows, sum(counts[: rank()])


def all_gather_rows_counted(x: Tensor) -> tuple[Tensor, list[int]]:
    """Every rank's rows of a tensor that needs no gradient, and each rank's row count:
    ([sum_r B_r, ...], [B_0, ..., B_{W-1}]); (x, [B]) in one process."""
    if not is_distributed():
        return x, [x.shape[0]]
    counts = _row_counts(x)
    return gather_with_grad(x.detach(), counts=counts)[0], counts


def all_gather_rows(x: Tensor) -> Tensor:
    """Every rank's rows of a tensor that needs no gradient (lengths, labels, rewards):
    [sum_r B_r, ...]."""
    return all_gather_rows_counted(x)[0]


def all_reduce_sum(x: Tensor) -> Tensor:
    """The sum of ``x`` over ranks (no gradient; e.g. metric counts): ``x`` in one process."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x


def average_over_ranks(metrics: dict[str, float]) -> dict[str, float]:
    """Logged values averaged over ranks (a loss that is a per-rank mean logs the global mean
    on every rank); ``metrics`` itself in one process."""
    if not is_distributed():
        return metrics
    values = all_reduce_sum(torch.tensor(list(metrics.values()), dtype=torch.float64))
    return dict(zip(metrics, (values / world_size()).tolist(), strict=True))


def rank_rows(x: Tensor) -> Tensor:
    """This rank's equal share of a global batch [W * B, ...] -> [B, ...] (ranks in order)."""
    w = world_size()
    if x.shape[0] % w:
        raise ValueError(f"a global batch of {x.shape[0]} rows does not split over {w} ranks")
    b = x.shape[0] // w
    return x[rank() * b : (rank() + 1) * b]


def draw_for_batch(draw: Callable[[int], Tensor], rows: int) -> Tensor:
    """Random values for this rank's ``rows`` drawn as one process would for the global batch.

    ``draw(n)`` must return [n, ...] from a generator with the same state on every rank; each rank
    keeps its share, so the draws of W ranks at batch B equal one process's at batch W * B and the
    generators stay in step.
    """
    return rank_rows(draw(rows * world_size())) if is_distributed() else draw(rows)


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (e.g. the checkpoint that only rank 0 reads)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (e.g. each rank's RNG state for a checkpoint)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


class _Objective(torch.nn.Module):
    """``method.loss`` as a module's forward, so that DistributedDataParallel can wrap it."""

    def __init__(self, method: torch.nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, *args: Any) -> Any:
        return self.method.loss(*args)  # type: ignore[operator]


def data_parallel_loss(method: torch.nn.Module) -> Callable[..., Any]:
    """``method.loss`` through DistributedDataParallel under torch.distributed (parameters
    broadcast from rank 0, gradients averaged in backward); ``method.loss`` itself in one
    process. A method whose ``may_skip_parameters`` is true (a head unused on some batches) gets
    DDP's search for unused parameters; the others skip that extra graph traversal."""
    if not is_distributed():
        return method.loss  # type: ignore[return-value]
    device = next(method.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(
        _Objective(method),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=bool(getattr(method, "may_skip_parameters", False)),
    )
