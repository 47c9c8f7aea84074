"""Representation Matters (Yang & Nachum 2021): pretrain state encoders, measure them downstream."""

from __future__ import annotations

import time
from typing import Any

import torch

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.methods.states import StateMethod, build_state_method
from seqrep.runs import progress_bar

__all__ = ["pretrain_state_encoder"]


def pretrain_state_encoder(
    objective: str,
    data: TrajectoryDataset,
    *,
    steps: int = 2000,
    batch_size: int = 64,
    window: int = 8,
    feature_dim: int = 64,
    hidden: int = 256,
    lr: float = 3e-4,
    seed: int = 0,
    log_every: int = 100,
    quiet: bool = True,
) -> tuple[StateMethod, list[dict[str, float]]]:
    """Train ``objective`` on ``data`` with Adam; every objective sees the same batches
    (``batch_size`` windows of ``window`` steps drawn with the same seed).

    Returns:
        The trained method (its ``encoder`` is phi) and the logged metrics (every
        ``log_every`` steps: step, seconds, loss, accuracy or prediction error).
    """
    torch.manual_seed(seed)
    obs = torch.from_numpy(data.observations)
    method = build_state_method(
        objective,
        data.obs_dim,
        data.act_dim,
        feature_dim=feature_dim,
        hidden=hidden,
        window=window,
        obs_mean=obs.mean(0),
        obs_std=obs.std(0),
    )
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    data_gen = torch.Generator().manual_seed(seed)
    loss_gen = torch.Generator().manual_seed(seed + 1)
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with progress_bar(f"pretrain {objective}", steps, disable=quiet) as advance:
        for step in range(1, steps + 1):
            batch = data.sample_sequences(batch_size, window, data_gen)
            out = method.loss(batch, loss_gen)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            method.update_targets()
            advance(1)
            if step % log_every == 0 or step == steps:
                history.append({"step": step, "seconds": time.perf_counter() - t0, **out.metrics})
    return method, history
