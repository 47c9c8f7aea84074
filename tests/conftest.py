"""Shared fixtures: one short Pendulum SAC run serves the SAC, zoo and study tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def pendulum_expert(tmp_path_factory):
    """SAC trained for 4000 Pendulum steps (about 35 s), and random actions' returns."""
    pytest.importorskip("gymnasium")
    from seqrep.rl.envs import evaluate_policy
    from seqrep.runs import RunDir
    from seqrep.train_rl import SACRunConfig, train_sac

    cfg = SACRunConfig(
        total_steps=4000,
        learning_starts=1000,
        eval_every=500,  # eight actor snapshots: the zoo test's training ladder
        eval_episodes=5,
        checkpoint_every=10**9,
    )
    run = RunDir.open(tmp_path_factory.mktemp("sac") / "run", "sac", cfg)
    agent, summary = train_sac(cfg, run, quiet=True)
    rng = np.random.default_rng(0)
    random_returns = evaluate_policy(
        "Pendulum-v1", lambda o: rng.uniform(-1, 1, 1).astype(np.float32), 5, seed=10_000
    )
    return agent, summary["final_eval"]["eval_return_mean"], float(random_returns.mean()), run.path


@pytest.fixture(scope="session")
def pendulum_zoo(pendulum_expert, tmp_path_factory):
    """A zoo folder built from the Pendulum run (expert, medium, ladder), for the study tests."""
    from seqrep.build_zoo import build_zoo_entry

    root = tmp_path_factory.mktemp("zoo")
    build_zoo_entry(pendulum_expert[3], episodes=3, candidates=2, ladder_size=2, root=root)
    return root
