"""A pretrained state encoder inside your own SAC loop.

1. Your own offline data: random-policy episodes of Pendulum-v1, rolled with plain gymnasium
   and written as a D4RL-layout HDF5 file (seqrep reads Minari data sets the same way).
2. `seqrep.pretrain_states` trains a state encoder on them with a contrastive objective (CPC
   over the trajectories); it is a torch module, observations [B, 3] -> features [B, d], with
   its input normalisation inside.
3. Your training loop: seqrep's SAC agent on top of the frozen encoder, stepped by hand (the
   environment, the replay buffer and the schedule are yours), beside the same loop without an
   encoder. Both evaluate the deterministic policy on the same seeds.

    python examples/state_encoder_in_your_sac_loop.py           # a few minutes on a CPU
    python examples/state_encoder_in_your_sac_loop.py --quick   # seconds (the tests' run)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import seqrep
from seqrep.data.trajectories import TrajectoryDataset, save_d4rl_hdf5
from seqrep.rl.envs import evaluate_policy
from seqrep.rl.replay import ReplayBuffer
from seqrep.rl.sac import SAC, SACConfig

ENV = "Pendulum-v1"


def make_env() -> gym.Env:
    """Pendulum with actions in [-1, 1], the range seqrep's agents act in."""
    return gym.wrappers.RescaleAction(gym.make(ENV), np.float32(-1.0), np.float32(1.0))


def random_episodes(episodes: int, seed: int) -> TrajectoryDataset:
    """``episodes`` episodes of uniform random actions, as seqrep's trajectory data set."""
    env = make_env()
    rng = np.random.default_rng(seed)
    rollouts = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        rows: dict[str, list] = {k: [] for k in TrajectoryDataset._FIELDS}
        done = False
        while not done:
            action = rng.uniform(-1, 1, 1).astype(np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(
                TrajectoryDataset._FIELDS,
                (obs, action, reward, next_obs, terminated, truncated),
                strict=True,
            ):
                rows[key].append(value)
            obs, done = next_obs, terminated or truncated
        rollouts.append({k: np.asarray(v) for k, v in rows.items()})
    return TrajectoryDataset.from_episodes(rollouts, name="pendulum-random")


def train_sac(encoder: nn.Module | None, steps: int, seed: int) -> list[tuple[int, float]]:
    """Your loop: SAC on ``encoder``'s features (frozen), evaluated every ``steps // 3``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = make_env()
    agent = SAC(3, 1, SACConfig(hidden=128), encoder=encoder, freeze_encoder=True)
    buffer = ReplayBuffer(steps, obs_dim=3, act_dim=1)
    explore, greedy = agent.numpy_policy(deterministic=False), agent.numpy_policy()
    learning_starts, curve = min(1000, steps // 3), []
    obs, _ = env.reset(seed=seed)
    for step in range(1, steps + 1):
        action = rng.uniform(-1, 1, 1) if step <= learning_starts else explore(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, float(reward), next_obs, terminated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if step > learning_starts:
            agent.update(buffer.sample(256))
        if step % (steps // 3) == 0:
            returns = evaluate_policy(ENV, greedy, episodes=5, seed=10_000)
            curve.append((step, float(returns.mean())))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="cpc", help="any of seqrep's state objectives")
    parser.add_argument("--sac-steps", type=int, default=6000)
    parser.add_argument("--out", default="runs/examples/state-encoder")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (the tests' run)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = random_episodes(3 if args.quick else 50, seed=0)
    path = save_d4rl_hdf5(data, out / "pendulum-random.hdf5", env=ENV)
    print(f"{path}: {data.num_episodes} episodes, {len(data)} transitions")
    encoder = seqrep.pretrain_states(
        data=str(path), objective=args.objective, steps=20 if args.quick else 3000,
        feature_dim=32, out=out / "encoder", overwrite=True,
    )  # fmt: skip
    print(f"encoder: {args.objective}, observations [B, 3] -> features [B, {encoder.feature_dim}]")
    steps = 300 if args.quick else args.sac_steps
    for name, phi in (("pretrained encoder (frozen)", encoder), ("no encoder", None)):
        curve = train_sac(phi, steps, seed=0)
        print(f"SAC, {name}: " + ", ".join(f"{s} steps {r:.0f}" for s, r in curve))


if __name__ == "__main__":
    main()
