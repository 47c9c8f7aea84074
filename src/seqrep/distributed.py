"""Contrastive losses across processes (torch.distributed): every rank's keys as negatives.

Data parallelism goes wrong for contrastive losses when a rank sees only its own keys (fewer
negatives than the global batch) or when the keys are gathered without autograd (the other
ranks' queries then never push gradient back into this rank's keys). :func:`gather_with_grad`
uses ``torch.distributed.nn.functional.all_gather``, whose backward sums each rank's gradient
into the owner of every key; with DistributedDataParallel averaging parameter gradients, W
ranks at per-rank batch B then train on exactly the loss of one process at batch W * B.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_with_grad", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """Every rank's rows, in rank order, with gradients flowing back to their owners.

    Args:
        x: [B, ...] this rank's rows (B equal on every rank).

    Returns:
        ([W * B, ...] all rows, offset of this rank's first row): (x, 0) in one process.

    Raises:
        ValueError: ranks hold different numbers of rows.
    """
    if not is_distributed():
        return x, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    if len({int(s) for s in sizes}) != 1:
        raise ValueError(
            f"every rank must hold the same batch size to gather keys; got {[int(s) for s in sizes]}"
            " (drop the last, smaller batch: a distributed sampler with drop_last)"
        )
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0), rank() * x.shape[0]
