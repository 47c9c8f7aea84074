"""Collection speed: environment steps per second with a policy in the loop, against the bare
environment measured in the same run (random actions, no bookkeeping).

    python bench/collect.py                  # HalfCheetah-v5 and Pendulum-v1, 5000 steps each

Writes bench/results/collect.json and bench/results/collect.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from seqrep.rl.collect import collect_episodes
from seqrep.rl.envs import make_env
from seqrep.rl.sac import SAC

RESULTS = Path(__file__).resolve().parent / "results"


def bare_steps_per_second(env_id: str, steps: int) -> float:
    """The floor: env.step with numpy-random actions, nothing recorded."""
    env = make_env(env_id, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    shape = env.action_space.shape
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def policy_steps_per_second(env_id: str, steps: int, policy) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    collect_episodes(env_id, policy, steps, seed=0)
    return steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--envs", default="HalfCheetah-v5,Pendulum-v1")
    p.add_argument("--steps", type=int, default=5000)
    args = p.parse_args()
    torch.set_num_threads(1)  # one env, batch-1 inference: threads only add overhead
    rows = []
    for env_id in args.envs.split(","):
        env = make_env(env_id)
        obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        env.close()
        agent = SAC(obs_dim, act_dim)  # same network size as a trained one: same cost
        rng = np.random.default_rng(0)
        bare = bare_steps_per_second(env_id, args.steps)
        rand = policy_steps_per_second(
            env_id, args.steps, lambda o, r=rng, a=act_dim: r.uniform(-1, 1, a)
        )
        sac = policy_steps_per_second(env_id, args.steps, agent.numpy_policy(deterministic=False))
        rows.append(
            {
                "env": env_id,
                "bare_steps_per_s": bare,
                "random_collect_steps_per_s": rand,
                "sac_collect_steps_per_s": sac,
            }
        )
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "collect.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# bench/collect.py",
        "",
        "Environment steps per second, one environment, CPU (torch 1 thread).",
        "",
        "| env | bare env (random actions) | collect, random policy (x bare) | collect, SAC actor in the loop (x bare) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        b = r["bare_steps_per_s"]
        lines.append(
            f"| {r['env']} | {b:,.0f} | {r['random_collect_steps_per_s']:,.0f} "
            f"({r['random_collect_steps_per_s'] / b:.2f}x) | {r['sac_collect_steps_per_s']:,.0f} "
            f"({r['sac_collect_steps_per_s'] / b:.2f}x) |"
        )
    (RESULTS / "collect.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
