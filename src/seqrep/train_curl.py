"""SAC from pixels (CURL, crop-only, no augmentation, Gaussian positives): the online loop.

Steps are counted in environment (simulator) steps, as DMControl100k/500k are; one agent step
is ``action_repeat`` environment steps. After ``init_steps`` agent steps of uniform random
actions, every agent step makes one update. Every ``eval_every`` environment steps (and at 0)
the deterministic policy plays ``eval_episodes`` episodes on the centre crop.

Checkpoints are written at episode ends (every ``checkpoint_every`` environment steps) and hold
the agent, its optimisers and generator, the frame replay, every RNG and the counters; episode
e is reset with seed ``seed + e``, so a resumed run continues the same curve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.rl.curl import PixelSAC, PixelSACConfig
from seqrep.rl.pixels import DMC_ACTION_REPEAT, DMCPixels, FrameReplay, FrameStacker
from seqrep.runs import (
    MAY_CHANGE_ON_RESUME,
    Prepared,
    RunDir,
    check_options,
    progress_bar,
    resolve_device,
)
from seqrep.train_rl import resume_online, save_online

__all__ = [
    "PixelRunConfig",
    "PreparedPixelRun",
    "evaluate_pixel_policy",
    "make_pixel_env",
    "prepare_pixel_run",
    "published_dmc",
    "train_pixel_sac",
    "write_pixel_report",
]

TOY_TASK = "seqrep-dot"  # the synthetic pixel task of the fast tests (see PointPixels)


@dataclass
class PixelRunConfig(PixelSACConfig):
    """SAC from pixels on a DeepMind Control task (``seqrep curl``)."""

    task: str = field(
        default="cartpole-swingup",
        metadata={"help": "DOMAIN-TASK of the DeepMind Control suite, e.g. walker-walk"},
    )
    env_steps: int = field(default=100_000, metadata={"help": "environment (simulator) steps"})
    action_repeat: int = field(
        default=0, metadata={"help": "simulator steps per action (0: CURL's value for the task)"}
    )
    image_size: int = field(default=100, metadata={"help": "rendered side, before cropping"})
    frame_stack: int = field(default=3, metadata={"help": "frames per observation"})
    init_steps: int = field(default=1000, metadata={"help": "random-action agent steps first"})
    replay_size: int = field(default=100_000, metadata={"help": "replay capacity (transitions)"})
    eval_every: int = field(default=10_000, metadata={"help": "evaluate every N env steps"})
    eval_episodes: int = field(default=10, metadata={"help": "episodes per evaluation"})
    log_every: int = field(default=1000, metadata={"help": "log update metrics every N env steps"})
    checkpoint_every: int = field(
        default=10_000,
        metadata={
            "help": "checkpoint every N env steps (at an episode end)",
            **MAY_CHANGE_ON_RESUME,
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})

    def validate(self) -> None:
        super().validate()
        check_options(
            self,
            positive=(
                "env_steps",
                "image_size",
                "frame_stack",
                "replay_size",
                "eval_every",
                "eval_episodes",
                "log_every",
                "checkpoint_every",
            ),
            non_negative=("action_repeat", "init_steps"),
        )
        if self.crop_size > self.image_size:
            raise ValueError(f"--crop-size {self.crop_size} exceeds --image-size {self.image_size}")
        if self.augment == "shift" and self.crop_size != self.image_size:
            raise ValueError(
                f"--augment shift pads the rendered frames and crops them back to their size, "
                f"so --crop-size {self.crop_size} must equal --image-size {self.image_size} "
                "(DrQ: --image-size 84 --crop-size 84)"
            )
        agent_steps = -(-self.env_steps // self.repeat())
        if agent_steps <= self.init_steps:
            raise ValueError(
                f"--env-steps {self.env_steps} are {agent_steps} agent steps (action repeat "
                f"{self.repeat()}), not above --init-steps {self.init_steps} random ones: the "
                "agent would never train; raise --env-steps or lower --init-steps"
            )

    def agent(self) -> PixelSACConfig:
        return PixelSACConfig(**{f.name: getattr(self, f.name) for f in fields(PixelSACConfig)})

    def repeat(self) -> int:
        """Simulator steps per agent step: the option, else CURL's per task (1 for the toy)."""
        if self.action_repeat:
            return self.action_repeat
        return 1 if self.task == TOY_TASK else DMC_ACTION_REPEAT.get(self.task, 4)


class PointPixels:
    """A synthetic pixel task for fast tests: a bright 3x3 dot on a dark canvas, moved by a 2-d
    action (0.1 per unit, walls at +-1); reward 1 - |position| per step (0 to 1), episodes of 50
    agent steps, ended by the time limit. Same interface as :class:`DMCPixels`."""

    episode_steps = 50

    def __init__(self, size: int = 40, action_repeat: int = 1) -> None:
        self.size, self.action_repeat, self.action_dim = size, action_repeat, 2
        self.frame_shape = (3, size, size)
        self._t = 0
        self._pos = np.zeros(2)
        self._rng = np.random.default_rng(0)

    def _frame(self) -> np.ndarray:
        img = np.full(self.frame_shape, 20, np.uint8)
        c = np.round((self._pos + 1.0) / 2.0 * (self.size - 4)).astype(int) + 1
        img[:, c[1] : c[1] + 3, c[0] : c[0] + 3] = 255
        return img

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._pos, self._t = self._rng.uniform(-1.0, 1.0, 2), 0
        return self._frame()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        total = 0.0
        for _ in range(self.action_repeat):
            self._pos = np.clip(self._pos + 0.1 * np.clip(action, -1, 1), -1.0, 1.0)
            total += 1.0 - float(np.linalg.norm(self._pos)) / np.sqrt(2.0)
        self._t += 1
        return self._frame(), total, False, self._t >= self.episode_steps

    def close(self) -> None:
        pass


def make_pixel_env(task: str, size: int, action_repeat: int) -> Any:
    """The task's pixel environment: :class:`DMCPixels`, or :class:`PointPixels` for
    ``seqrep-dot``."""
    if task == TOY_TASK:
        return PointPixels(size, action_repeat)
    return DMCPixels(task, size=size, action_repeat=action_repeat)


@dataclass
class PreparedPixelRun(Prepared):
    """``seqrep curl``'s work, checked: the config, with its task made and rendered once."""


def prepare_pixel_run(cfg: PixelRunConfig) -> PreparedPixelRun:
    """Validate ``cfg``, make its task and render a first frame (dm_control installed, the
    task known, an OpenGL backend working); nothing is written.

    Raises:
        ValueError, ImportError, RenderError: what is wrong, in one line.
    """
    cfg.validate()
    probe = make_pixel_env(cfg.task, cfg.image_size, cfg.repeat())
    try:
        probe.reset(seed=0)
    finally:
        probe.close()
    return PreparedPixelRun("curl", cfg)


def evaluate_pixel_policy(
    agent: PixelSAC, cfg: PixelRunConfig, episodes: int, seed: int
) -> np.ndarray:
    """Returns [episodes] of the deterministic policy (centre crop), seeds seed, seed+1, ..."""
    env = make_pixel_env(cfg.task, cfg.image_size, cfg.repeat())
    stacker = FrameStacker(cfg.frame_stack)
    returns = []
    for e in range(episodes):
        obs = stacker.reset(env.reset(seed=seed + e))
        total, done = 0.0, False
        while not done:
            action = agent.act(torch.from_numpy(obs)[None])[0].cpu().numpy()
            frame, reward, terminated, truncated = env.step(action)
            obs, total, done = stacker.push(frame), total + reward, terminated or truncated
        returns.append(total)
    env.close()
    return np.asarray(returns)


def _save_views(agent: PixelSAC, obs: np.ndarray, path: Path) -> None:
    """One observation's newest frame, and the anchor and positive views the encoder is shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.from_numpy(obs)[None].to(agent.device)
    views = [x.float() / 255.0, agent.view(x), agent.view(x)]
    titles = [f"rendered {obs.shape[-1]}x{obs.shape[-1]}", "anchor (query)", "positive (key)"]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for ax, v, t in zip(axes, views, titles, strict=True):
        img = v[0, -3:].clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # the newest frame
        ax.imshow(img)
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"augment={agent.cfg.augment}: what the encoder sees (newest of the stacked frames)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_pixel_sac(
    cfg: PixelRunConfig, run: RunDir, *, quiet: bool = False
) -> tuple[PixelSAC, dict[str, Any]]:
    """Train SAC from pixels on ``cfg.task``; log, evaluate, checkpoint, resume."""
    cfg.validate()
    device = resolve_device(cfg.device)
    repeat = cfg.repeat()
    env = make_pixel_env(cfg.task, cfg.image_size, repeat)
    obs_shape = (3 * cfg.frame_stack, cfg.image_size, cfg.image_size)
    torch.manual_seed(cfg.seed)
    agent = PixelSAC(obs_shape, env.action_dim, cfg.agent(), device=device, seed=cfg.seed)
    total_agent_steps = -(-cfg.env_steps // repeat)
    replay = FrameReplay(
        min(cfg.replay_size, total_agent_steps),
        env.frame_shape,
        env.action_dim,
        cfg.frame_stack,
        min_episode_steps=env.episode_steps,
    )
    sampler = torch.Generator().manual_seed(cfg.seed)  # replay indices (CPU, as the replay)
    rng = np.random.default_rng(cfg.seed)  # the random actions of the first steps
    step, episode, seconds, records = resume_online(run, agent, replay, sampler, rng)
    last_checkpoint = step
    t0 = time.perf_counter() - seconds
    log_agent_steps = max(1, cfg.log_every // repeat)
    window: dict[str, list[float]] = {}

    def log(record: dict[str, Any]) -> None:
        nonlocal records
        run.log(record)
        records += 1

    def evaluate() -> None:
        returns = evaluate_pixel_policy(agent, cfg, cfg.eval_episodes, seed=10_000 + cfg.seed)
        log(
            {
                "env_step": step * repeat,
                "agent_step": step,
                "eval_return_mean": float(returns.mean()),
                "eval_return_std": float(returns.std()),
                "seconds": time.perf_counter() - t0,
                "device": device,  # where --device auto ran
            }
        )

    stacker = FrameStacker(cfg.frame_stack)
    with progress_bar(
        f"{cfg.aux}/{cfg.augment} {cfg.task}", total_agent_steps * repeat, disable=quiet
    ) as advance:
        advance(step * repeat)
        if step == 0:
            evaluate()
        while step < total_agent_steps:
            frame = env.reset(seed=cfg.seed + episode)
            obs = stacker.reset(frame)
            replay.start_episode(frame)
            if not (run.path / "views.png").exists():
                _save_views(agent, obs, run.path / "views.png")
            ep_return, ep_len, done = 0.0, 0, False
            while not done and step < total_agent_steps:
                if step < cfg.init_steps:
                    action = rng.uniform(-1.0, 1.0, env.action_dim).astype(np.float32)
                else:
                    x = torch.from_numpy(obs)[None]
                    action = agent.act(x, deterministic=False)[0].cpu().numpy()
                frame, reward, terminated, truncated = env.step(action)
                replay.add(action, reward, frame, terminated)
                obs = stacker.push(frame)
                step, ep_len, ep_return = step + 1, ep_len + 1, ep_return + reward
                done = terminated or truncated
                if step >= cfg.init_steps:
                    tick = time.perf_counter()
                    metrics = agent.update(replay.sample(cfg.batch_size, sampler, device))
                    if device == "cuda":
                        torch.cuda.synchronize()
                    metrics["update_seconds"] = time.perf_counter() - tick
                    for k, v in metrics.items():
                        window.setdefault(k, []).append(v)
                if step % log_agent_steps == 0 and window:
                    log(
                        {
                            "env_step": step * repeat,
                            "agent_step": step,
                            **{k: float(np.mean(v)) for k, v in window.items()},
                        }
                    )
                    window = {}
                advance(repeat, ret=ep_return)
                if (step * repeat) % cfg.eval_every < repeat or step == total_agent_steps:
                    evaluate()
            log(
                {
                    "env_step": step * repeat,
                    "agent_step": step,
                    "episode": episode,
                    "return": ep_return,
                    "length": ep_len,
                }
            )
            episode += 1
            due = (step - last_checkpoint) * repeat >= cfg.checkpoint_every
            if due or step >= total_agent_steps:
                save_online(
                    run,
                    agent,
                    replay,
                    sampler,
                    rng,
                    step=step,
                    episode=episode,
                    seconds=time.perf_counter() - t0,
                    records=records,
                )
                last_checkpoint = step
    env.close()
    evals = [r for r in run.read_metrics() if "eval_return_mean" in r]
    return agent, {"seconds": time.perf_counter() - t0, "evaluations": evals}


def published_dmc(task: str) -> list[dict[str, Any]]:
    """Published DMControl scores for ``task`` from seqrep's reference table (may be empty)."""
    import csv
    from importlib.resources import files

    table = files("seqrep.data") / "reference" / "curl_dmc.csv"
    with table.open() as f:
        return [r for r in csv.DictReader(f) if r["task"] == task]


def write_pixel_report(cfg: PixelRunConfig, run: RunDir, summary: dict[str, Any]) -> str:
    """report.md: evaluation curve beside published numbers, losses, CURL accuracy, views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = run.read_metrics()
    evals = [m for m in metrics if "eval_return_mean" in m]
    updates = [m for m in metrics if "critic_loss" in m]
    published = published_dmc(cfg.task)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    if evals:
        x = np.array([m["env_step"] for m in evals])
        mean = np.array([m["eval_return_mean"] for m in evals])
        std = np.array([m["eval_return_std"] for m in evals])
        ax.plot(x, mean, "o-", label=f"seqrep {cfg.aux}/{cfg.augment}")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    for row in published:
        ax.errorbar(
            float(row["env_steps"]),
            float(row["mean"]),
            yerr=float(row["std"]),
            fmt="s",
            capsize=3,
            label=f"{row['method']} (published)",
        )
    ax.set(xlabel="environment steps", ylabel="return", title=f"{cfg.task}: evaluation")
    ax.legend(fontsize=7)
    ax = axes[1]
    if updates:
        x = np.array([m["env_step"] for m in updates])
        ax.plot(x, [m["critic_loss"] for m in updates], label="critic loss")
        if "curl_loss" in updates[0]:
            ax.plot(x, [m["curl_loss"] for m in updates], label="CURL loss")
            ax2 = ax.twinx()
            ax2.plot(x, [m["curl_accuracy"] for m in updates], "g:", label="CURL accuracy")
            ax2.set_ylabel("CURL top-1 accuracy")
            ax2.set_ylim(0, 1.02)
        ax.set_yscale("log")
    ax.set(xlabel="environment steps", title="training losses")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(run.path / "returns.png", dpi=100)
    plt.close(fig)
    rows = "\n".join(
        f"| {m['env_step']} | {m['eval_return_mean']:.1f} ± {m['eval_return_std']:.1f} |"
        for m in evals
    )
    table = f"| env steps | evaluation return (mean ± std) |\n|---|---|\n{rows}"
    refs = "\n".join(
        f"| {r['method']} | {r['env_steps']} | {r['mean']} ± {r['std']} | {r['source']} |"
        for r in published
    )
    ref_table = (
        f"| method | env steps | return | source |\n|---|---|---|---|\n{refs}" if refs else "none"
    )
    last = updates[-1] if updates else {}
    speed = (
        f"Mean update time over the last window: {last['update_seconds'] * 1e3:.0f} ms at batch "
        f"{cfg.batch_size}."
        if last
        else ""
    )
    run.write_text(
        "report.md",
        f"""# SAC from pixels on {cfg.task}: aux={cfg.aux}, augment={cfg.augment}

{cfg.env_steps} environment steps (action repeat {cfg.repeat()}, so
{-(-cfg.env_steps // cfg.repeat())} agent steps and updates after {cfg.init_steps} random ones),
batch {cfg.batch_size}, seed {cfg.seed}, {summary["seconds"] / 3600:.2f} h. Evaluation: the
deterministic policy on the centre crop, {cfg.eval_episodes} episodes. {speed}

{table}

Published (DMControl, mean ± std over seeds):

{ref_table}

![returns](returns.png)

What the encoder is shown (anchor and positive views of one observation):

![views](views.png)
""",
    )
    return table
