"""Build the behaviour-policy zoo (``seqrep.rl.zoo``) from a finished or running ``seqrep sac`` run.

The run's actor snapshots (``checkpoints/actor_<step>.pt``, one per evaluation) are the raw
material. ``expert`` is the best of the top candidates re-evaluated over ``episodes`` episodes;
``medium`` the earlier snapshot nearest one third of the way from random to expert (D4RL's
medium); the ``ladder`` is evenly spaced earlier snapshots, for medium-replay-like data.
Returns are measured with the stored half-precision weights and the stochastic policy (the
behaviour that collects the data sets); the deterministic return is recorded beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.loops.runs import RunDir, atomic_write_text, load_run
from seqrep.loops.sac import SACRunConfig
from seqrep.rl.envs import evaluate_policy, make_env
from seqrep.rl.zoo import ZooPolicy, uniform_random_policy, zoo_dir, zoo_index

__all__ = ["build_zoo_entry"]


def _half(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "actor": {k: v.half() for k, v in state["actor"].items()},
        "obs_mean": state["obs_mean"].float(),
        "obs_std": state["obs_std"].float(),
        "hidden": int(state["hidden"]),
        "step": int(state["step"]),
    }


def _measure(env_id: str, policy: Any, episodes: int) -> tuple[float, float]:
    returns = evaluate_policy(env_id, policy, episodes, seed=20_000)
    return float(returns.mean()), float(returns.std())


class _Snapshots:
    """A SAC run's actor snapshots, in step order, measured in its environment."""

    def __init__(self, run_dir: str | Path, episodes: int) -> None:
        cfg, _ = load_run(run_dir, "sac", SACRunConfig)
        self.env_id, self.episodes = cfg.env, episodes
        paths = sorted(RunDir(Path(run_dir)).checkpoints.glob("actor_*.pt"))
        self.states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
        env = make_env(cfg.env)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        env.close()
        self.train_eval = np.array([s["eval_return_mean"] for s in self.states])

    def measure(self, i: int, deterministic: bool = False) -> tuple[float, float]:
        """Return mean and std of snapshot ``i`` with its float16 weights."""
        state = _half(self.states[i])
        policy = ZooPolicy(state, self.obs_dim, self.act_dim, deterministic=deterministic, seed=0)
        return _measure(self.env_id, policy, self.episodes)

    def best_of(self, indices: Any, key: Any) -> tuple[int, dict[int, tuple[float, float]]]:
        """The snapshot among ``indices`` whose measured return minimises ``key``, and every
        one's measurement."""
        scored = {int(i): self.measure(int(i)) for i in indices}
        return min(scored, key=lambda i: key(scored[i][0])), scored


def build_zoo_entry(
    run_dir: str | Path,
    *,
    episodes: int = 20,
    candidates: int = 3,
    ladder_size: int = 4,
    root: Path | None = None,
) -> dict[str, Any]:
    """Select, store (float16) and measure the zoo policies of one SAC run; update zoo.json.

    Args:
        run_dir: a ``seqrep sac`` run folder with actor snapshots.
        episodes: evaluation episodes per measured policy.
        candidates: snapshots re-evaluated when choosing the expert and the medium policy.
        ladder_size: snapshots before ``medium`` kept for medium-replay-like mixtures.
        root: the zoo folder (default: the package's ``seqrep/data/zoo``).
    """
    snaps = _Snapshots(run_dir, episodes)
    if len(snaps.states) < ladder_size + 2:
        raise ValueError(f"{run_dir} has {len(snaps.states)} actor snapshots; train longer first")
    random_ret = _measure(snaps.env_id, uniform_random_policy(snaps.act_dim, 0), episodes)
    top = np.argsort(-snaps.train_eval)[:candidates]
    expert, scored = snaps.best_of(top, lambda r: -r)
    target = random_ret[0] + (scored[expert][0] - random_ret[0]) / 3.0
    earlier = np.arange(expert)
    near = earlier[np.argsort(np.abs(snaps.train_eval[earlier] - target))[:candidates]]
    medium, scored_medium = snaps.best_of(near, lambda r: abs(r - target))
    ladder = [int(i) for i in np.linspace(0, medium, ladder_size + 1, endpoint=False)[:ladder_size]]
    ladder = sorted(set(ladder) - {medium})
    chosen = {"expert": expert, "medium": medium} | {
        f"ladder_{k + 1}": i for k, i in enumerate(ladder)
    }
    root = root or zoo_dir()
    policies = _store(snaps, chosen, scored_medium | scored, root)
    entry = {
        "obs_dim": snaps.obs_dim,
        "act_dim": snaps.act_dim,
        "hidden": int(snaps.states[expert]["hidden"]),
        "trained_steps": int(snaps.states[-1]["step"]),
        "sac_run": str(run_dir),
        "references": {"random": random_ret[0], "expert": policies["expert"]["return_mean"]},
        "random_return_std": random_ret[1],
        "policies": policies,
        "ladder": [f"ladder_{k + 1}" for k in range(len(ladder))],
    }
    index = zoo_index(root)
    index[snaps.env_id] = entry
    atomic_write_text(root / "zoo.json", json.dumps(index, indent=1, sort_keys=True) + "\n")
    return entry


def _store(
    snaps: _Snapshots, chosen: dict[str, int], scored: dict[int, tuple[float, float]], root: Path
) -> dict[str, Any]:
    """Write each chosen snapshot as ``<root>/<env>/<name>.pt`` (float16) and return its
    zoo.json record: its stochastic return (measured already, or now) and deterministic one."""
    folder = root / snaps.env_id
    folder.mkdir(parents=True, exist_ok=True)
    policies: dict[str, Any] = {}
    for name, i in chosen.items():
        torch.save(_half(snaps.states[i]), folder / f"{name}.pt")
        mean, std = scored.get(i) or snaps.measure(i)
        det_mean, det_std = snaps.measure(i, deterministic=True)
        policies[name] = {
            "file": f"{snaps.env_id}/{name}.pt",
            "step": int(snaps.states[i]["step"]),
            "return_mean": mean,
            "return_std": std,
            "deterministic_return_mean": det_mean,
            "deterministic_return_std": det_std,
            "episodes": snaps.episodes,
        }
    return policies
