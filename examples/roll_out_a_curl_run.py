"""Load a `seqrep curl` run and roll its policy out: returns over a few episodes and an MP4.

The loaded policy acts on the uint8 frame stacks the run's environment renders; `policy.make_env()`
builds that environment (same task, image size, action repeat and frame stack), so nothing
about the run has to be repeated by hand.

    python examples/roll_out_a_curl_run.py --run runs/curl-cartpole   # a run of your own
    python examples/roll_out_a_curl_run.py            # trains a small run on seqrep's dot task
    python examples/roll_out_a_curl_run.py --quick    # seconds (the tests' run)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import seqrep
from seqrep.rl.video import write_video


def train_a_small_run(out: Path, env_steps: int) -> None:
    """CURL on the dot task (a point steered to a target, rendered as 40x40 pixels)."""
    seqrep.curl(
        task="seqrep-dot", image_size=40, crop_size=32, batch_size=32, hidden=64,
        feature_dim=16, env_steps=env_steps, init_steps=min(250, env_steps // 2),
        eval_every=env_steps, eval_episodes=2, out=out,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="", help="a `seqrep curl` run folder")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", default="runs/examples/curl-rollout")
    parser.add_argument("--quick", action="store_true", help="a tiny run (the tests' run)")
    args = parser.parse_args()
    out = Path(args.out)
    run = Path(args.run) if args.run else out / "dot-run"
    if not args.run:
        train_a_small_run(run, env_steps=200 if args.quick else 3000)

    policy = seqrep.load(run)  # deterministic; acts on [3 * frames, size, size] uint8 stacks
    print(policy)
    env = policy.make_env()
    returns, frames = [], []
    for episode in range(2 if args.quick else args.episodes):
        obs, _ = env.reset(seed=10_000 + episode)
        total, done = 0.0, False
        while not done:
            if episode == 0:
                frames.append(obs[-3:])  # the newest frame [3, H, W]
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    video = write_video(out / "episode-0.mp4", frames, fps=25, scale=4)
    print(f"returns over {len(returns)} episodes: {np.mean(returns):.1f} ± {np.std(returns):.1f}")
    print(f"video of episode 0: {video}")


if __name__ == "__main__":
    main()
