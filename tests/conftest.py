"""Shared fixtures: one short Pendulum SAC run serves the SAC, zoo and study tests; a helper
that SIGKILLs a command mid-run serves the resume tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

# One torch thread in the tests and in the commands they start: their models are tiny, so one
# thread is as fast as two here, and it does not collapse when other jobs hold the cores (two
# threads beside two busy processes took a 35 s SAC fixture to 16 minutes).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` first (`make test` hands tests out one at a time to one xdist worker
    per core: a long test started last would end the run alone). The first long test that needs
    the session's SAC run leads, as its worker builds that run; the other long tests that need
    it come after the remaining long ones, so that no worker waits for it idle."""
    shared = {"pendulum_expert", "pendulum_zoo"}

    def needs_run(item: pytest.Item) -> bool:
        return bool(shared & set(getattr(item, "fixturenames", ())))

    long = [item for item in items if item.get_closest_marker("long") is not None]
    lead = [item for item in long if needs_run(item)][:1]
    first = lead + [item for item in long if not needs_run(item)]
    first += [item for item in long if item not in first]
    items[:] = first + [item for item in items if item not in first]


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


def _session_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test session that every pytest-xdist worker sees (`make test` runs one
    worker per core; the workers' temporary folders are siblings in the session's own)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name


def _build_once(folder: Path, build: Callable[[Path], dict]) -> dict:
    """``build(folder)`` in the first worker that asks, under a file lock; the others wait for
    it and read what it recorded, so an expensive fixture is computed once per session."""
    from filelock import FileLock

    record = folder.with_suffix(".json")
    with FileLock(str(folder.with_suffix(".lock"))):
        if not record.exists():
            record.write_text(json.dumps(build(folder)))
    return json.loads(record.read_text())


def _train_pendulum_expert(folder: Path) -> dict:
    from seqrep.loops.runs import Prepared, RunDir, release_lock
    from seqrep.loops.sac import SACRunConfig, train_sac
    from seqrep.rl.envs import evaluate_policy

    cfg = SACRunConfig(
        total_steps=4000,
        learning_starts=1000,
        eval_every=500,  # eight actor snapshots: the zoo test's training ladder
        eval_episodes=5,
        checkpoint_every=10**9,
        batch_size=128,  # half the default's cost; Pendulum is solved either way (-128 at 4000)
        hidden=128,
    )
    run = RunDir.open(folder, Prepared("sac", cfg))
    _, summary = train_sac(cfg, run, quiet=True)
    release_lock(folder)  # other workers read the run
    rng = np.random.default_rng(0)
    random_returns = evaluate_policy(
        "Pendulum-v1", lambda o: rng.uniform(-1, 1, 1).astype(np.float32), 5, seed=10_000
    )
    return {"final": summary["final_eval"]["eval_return_mean"], "random": random_returns.mean()}


@pytest.fixture(scope="session")
def pendulum_expert(tmp_path_factory):
    """SAC trained for 4000 Pendulum steps (25-35 s, once per session): its policy as
    ``seqrep.load`` gives it, its final evaluation, random actions' returns, and the run."""
    pytest.importorskip("gymnasium")
    from seqrep.loops.sac import load_sac

    folder = _session_folder(tmp_path_factory, "pendulum-sac")
    numbers = _build_once(folder, _train_pendulum_expert)
    return load_sac(folder), numbers["final"], float(numbers["random"]), folder


@pytest.fixture(scope="session")
def pendulum_zoo(pendulum_expert, tmp_path_factory):
    """A zoo folder built from the Pendulum run (expert, medium, ladder), for the study tests."""
    from seqrep.loops.zoo import build_zoo_entry

    def build(root: Path) -> dict:
        build_zoo_entry(pendulum_expert[3], episodes=3, candidates=2, ladder_size=2, root=root)
        return {}

    root = _session_folder(tmp_path_factory, "pendulum-zoo")
    _build_once(root, build)
    return root
