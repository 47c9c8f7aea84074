"""Shared fixtures: one short Pendulum SAC run serves the SAC, zoo and study tests; a helper
that SIGKILLs a command mid-run serves the resume tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

# One torch thread in the tests and in the commands they start: their models are tiny, so one
# thread is as fast as two here, and it does not collapse when other jobs hold the cores (two
# threads beside two busy processes took a 35 s SAC fixture to 16 minutes).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def _kill_mid_run(cmd: list[str], ready: Callable[[], bool], env=None, timeout=300.0) -> None:
    """Start ``cmd``, wait until ``ready()`` (e.g. its first checkpoint exists), then kill it
    with a real SIGKILL; fails if the command ended on its own before that."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ready() and proc.poll() is None, "the command ended (or stalled) before it was ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture
def kill_mid_run():
    """``kill_mid_run(cmd, ready, env=None)``: SIGKILL a subprocess once ``ready()`` holds."""
    return _kill_mid_run


@pytest.fixture(scope="session")
def pendulum_expert(tmp_path_factory):
    """SAC trained for 4000 Pendulum steps (about 35 s), and random actions' returns."""
    pytest.importorskip("gymnasium")
    from seqrep.loops.runs import Prepared, RunDir
    from seqrep.loops.sac import SACRunConfig, train_sac
    from seqrep.rl.envs import evaluate_policy

    cfg = SACRunConfig(
        total_steps=4000,
        learning_starts=1000,
        eval_every=500,  # eight actor snapshots: the zoo test's training ladder
        eval_episodes=5,
        checkpoint_every=10**9,
    )
    run = RunDir.open(tmp_path_factory.mktemp("sac") / "run", Prepared("sac", cfg))
    agent, summary = train_sac(cfg, run, quiet=True)
    rng = np.random.default_rng(0)
    random_returns = evaluate_policy(
        "Pendulum-v1", lambda o: rng.uniform(-1, 1, 1).astype(np.float32), 5, seed=10_000
    )
    return agent, summary["final_eval"]["eval_return_mean"], float(random_returns.mean()), run.path


@pytest.fixture(scope="session")
def pendulum_zoo(pendulum_expert, tmp_path_factory):
    """A zoo folder built from the Pendulum run (expert, medium, ladder), for the study tests."""
    from seqrep.loops.zoo import build_zoo_entry

    root = tmp_path_factory.mktemp("zoo")
    build_zoo_entry(pendulum_expert[3], episodes=3, candidates=2, ladder_size=2, root=root)
    return root
