"""InfoNCE across two gloo processes equals one process on the concatenated batch: the loss,
every parameter's gradient (DDP-averaged), and the gradient that reaches each rank's keys from
the other rank's queries (which a plain, non-autograd all-gather would drop)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seqrep.losses import info_nce

B, WORLD = 3, 2


def _data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 4).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(WORLD * B, 5, generator=g, dtype=torch.float64)
    y = x + 0.3 * torch.randn(WORLD * B, 5, generator=g, dtype=torch.float64)
    return net, x, y


def _worker(rank: int, init_file: str, out: str, cross_rank: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    net, x, y = _data()
    model = torch.nn.parallel.DistributedDataParallel(net)
    mine = slice(rank * B, (rank + 1) * B)
    z = model(torch.cat([x[mine], y[mine]]))  # one forward through DDP per step
    q, k = z[:B], z[B:]
    k.retain_grad()
    loss = info_nce(q, k, temperature=0.5, cross_rank=cross_rank)
    loss.backward()
    torch.save(
        {
            "loss": loss.detach(),
            "grads": [p.grad.clone() for p in net.parameters()],
            "key_grad": k.grad.clone(),
        },
        Path(out) / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


def _spawn(tmp_path: Path, cross_rank: bool) -> list[dict]:
    mp.spawn(
        _worker, args=(str(tmp_path / "init"), str(tmp_path), cross_rank), nprocs=WORLD, join=True
    )
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]


def test_two_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    ranks = _spawn(tmp_path, cross_rank=True)
    net, x, y = _data()
    z = net(torch.cat([x, y]))
    q, k = z[: WORLD * B], z[WORLD * B :]
    k.retain_grad()
    loss = info_nce(q, k, temperature=0.5)
    loss.backward()
    # the mean of the ranks' losses is the global loss (each rank averages B of the W*B queries)
    assert torch.stack([r["loss"] for r in ranks]).mean().item() == pytest.approx(
        loss.item(), abs=1e-12
    )
    for r in ranks:  # DDP averages gradients: every rank holds the single process's
        for got, want in zip(r["grads"], [p.grad for p in net.parameters()], strict=True):
            assert torch.allclose(got, want, atol=1e-10)
    for i, r in enumerate(ranks):  # each key gets the gradient of every rank's queries
        assert torch.allclose(r["key_grad"], WORLD * k.grad[i * B : (i + 1) * B], atol=1e-10)


def test_without_cross_rank_negatives_the_objective_differs(tmp_path):
    """Per-rank negatives (cross_rank=False) train another objective: fewer candidates."""
    ranks = _spawn(tmp_path, cross_rank=False)
    net, x, y = _data()
    z = net(torch.cat([x, y]))
    loss = info_nce(z[: WORLD * B], z[WORLD * B :], temperature=0.5)
    assert abs(torch.stack([r["loss"] for r in ranks]).mean().item() - loss.item()) > 1e-3
