"""Checkpoints of online runs (``seqrep sac`` and ``seqrep curl``): the agent, its replay, every
random generator and the counters, saved at an episode boundary and restored exactly."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from seqrep.loops.runs import RunDir, load_training_state, training_state

__all__ = ["resume_online", "save_online"]


class _Replay(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def resume_online(
    run: RunDir,
    agent: torch.nn.Module,
    replay: _Replay,
    sampler: torch.Generator,
    rng: np.random.Generator,
) -> tuple[int, int, float, int]:
    """Restore an online run from its checkpoint (agent, replay, replay sampler, numpy and torch
    RNGs), and drop the metric records logged after it (all of them when there is none): they
    are logged again. Returns (step, episode, seconds, records)."""
    state = run.load_checkpoint()
    if state is None:
        run.truncate_metrics(0)
        return 0, 0, 0.0, 0
    load_training_state(agent, state["agent"])
    # Pixel runs started before 2026-12-03 saved the replay and its sampler as replay / sampler.
    replay.load_state_dict(state["buffer"] if "buffer" in state else state["replay"])
    sampler.set_state(state["generator"] if "generator" in state else state["sampler"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    run.truncate_metrics(state["metrics_records"])
    return state["step"], state["episode"], state["seconds"], state["metrics_records"]


def save_online(
    run: RunDir,
    agent: torch.nn.Module,
    replay: _Replay,
    sampler: torch.Generator,
    rng: np.random.Generator,
    *,
    step: int,
    episode: int,
    seconds: float,
    records: int,
) -> None:
    """Checkpoint an online run at an episode boundary: what :func:`resume_online` restores."""
    run.save_checkpoint(
        {
            "agent": training_state(agent),
            "buffer": replay.state_dict(),
            "generator": sampler.get_state(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "episode": episode,
            "seconds": seconds,
            "metrics_records": records,
        }
    )
