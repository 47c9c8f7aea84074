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
    cfg, _ = load_run(run_dir, "sac", SACRunConfig)
    run = RunDir(Path(run_dir))
    snaps = sorted(run.checkpoints.glob("actor_*.pt"))
    if len(snaps) < ladder_size + 2:
        raise ValueError(f"{run_dir} has {len(snaps)} actor snapshots; train longer first")
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in snaps]
    env = make_env(cfg.env)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    env.close()

    def measure(i: int, deterministic: bool = False) -> tuple[float, float]:
        policy = ZooPolicy(_half(states[i]), obs_dim, act_dim, deterministic=deterministic, seed=0)
        return _measure(cfg.env, policy, episodes)

    random_ret = _measure(cfg.env, uniform_random_policy(act_dim, 0), episodes)
    train_eval = np.array([s["eval_return_mean"] for s in states])
    top = np.argsort(-train_eval)[:candidates]
    scored = {int(i): measure(int(i)) for i in top}
    expert = max(scored, key=lambda i: scored[i][0])
    target = random_ret[0] + (scored[expert][0] - random_ret[0]) / 3.0
    earlier = np.arange(expert)
    near = earlier[np.argsort(np.abs(train_eval[earlier] - target))[:candidates]]
    scored_medium = {int(i): measure(int(i)) for i in near}
    medium = min(scored_medium, key=lambda i: abs(scored_medium[i][0] - target))
    ladder = [int(i) for i in np.linspace(0, medium, ladder_size + 1, endpoint=False)[:ladder_size]]
    ladder = sorted(set(ladder) - {medium})

    root = root or zoo_dir()
    folder = root / cfg.env
    folder.mkdir(parents=True, exist_ok=True)
    policies: dict[str, Any] = {}
    chosen = {"expert": expert, "medium": medium} | {
        f"ladder_{k + 1}": i for k, i in enumerate(ladder)
    }
    for name, i in chosen.items():
        torch.save(_half(states[i]), folder / f"{name}.pt")
        mean, std = scored.get(i) or scored_medium.get(i) or measure(i)
        det_mean, det_std = measure(i, deterministic=True)
        policies[name] = {
            "file": f"{cfg.env}/{name}.pt",
            "step": int(states[i]["step"]),
            "return_mean": mean,
            "return_std": std,
            "deterministic_return_mean": det_mean,
            "deterministic_return_std": det_std,
            "episodes": episodes,
        }
    entry = {
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "hidden": int(states[expert]["hidden"]),
        "trained_steps": int(states[-1]["step"]),
        "sac_run": str(run_dir),
        "references": {"random": random_ret[0], "expert": policies["expert"]["return_mean"]},
        "random_return_std": random_ret[1],
        "policies": policies,
        "ladder": [f"ladder_{k + 1}" for k in range(len(ladder))],
    }
    index = zoo_index(root)
    index[cfg.env] = entry
    atomic_write_text(root / "zoo.json", json.dumps(index, indent=1, sort_keys=True) + "\n")
    return entry
