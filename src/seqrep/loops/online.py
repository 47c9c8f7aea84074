"""What online runs (``seqrep sac`` and ``seqrep curl``) share: their log, which goes to the run
folder when there is one, and their checkpoints (the agent, its replay, every random generator
and the counters), saved at an episode boundary and restored exactly."""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
import torch

from seqrep.loops.runs import RunDir, load_training_state, training_state

__all__ = ["OnlineState", "RunLog", "resume_online", "save_online"]


class _Replay(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class RunLog:
    """The records of a run: appended to the run folder's metrics.jsonl when there is a folder
    (and counted, so that a checkpoint knows how many to keep), and its evaluations kept in
    memory either way.

    Args:
        run: the run folder, or None (a run in a notebook: nothing is written).
        records: records already in metrics.jsonl (a resumed run's).
    """

    def __init__(self, run: RunDir | None, records: int = 0) -> None:
        self.run, self.records = run, records
        self.evaluations: list[dict[str, Any]] = []

    def log(self, record: dict[str, Any]) -> None:
        if "eval_return_mean" in record:
            self.evaluations.append(record)
        if self.run is not None:
            self.run.log(record)
            self.records += 1

    def all_evaluations(self) -> list[dict[str, Any]]:
        """Every evaluation of the run, those before a resume included."""
        if self.run is None:
            return list(self.evaluations)
        return [r for r in self.run.read_metrics() if "eval_return_mean" in r]


class OnlineState:
    """An online run's counters: agent steps, episodes, seconds trained, and when it last
    checkpointed (in agent steps)."""

    def __init__(self, step: int = 0, episode: int = 0, seconds: float = 0.0) -> None:
        self.step, self.episode, self.last_checkpoint = step, episode, step
        self.t0 = time.perf_counter() - seconds

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0


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
