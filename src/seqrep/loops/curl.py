"""SAC from pixels (CURL, crop-only, DrQ, no augmentation, Gaussian positives): the online loop.

Steps are counted in environment (simulator) steps, as DMControl100k/500k are; one agent step
is ``action_repeat`` environment steps. After ``init_steps`` agent steps of uniform random
actions, every agent step makes one update. Every ``eval_every`` environment steps (and at 0)
the deterministic policy plays ``eval_episodes`` episodes on the centre crop, in a vector
environment (:class:`seqrep.rl.pixels.PixelEvaluation`), with an MP4 of the first episode under
``--capture-video``.

Checkpoints are written at episode ends (every ``checkpoint_every`` environment steps) and hold
the agent, its optimisers and generator, the frame replay, every RNG and the counters; episode
e is reset with seed ``seed + e``, so a resumed run continues the same curve.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.devices import check_device, resolve_device
from seqrep.loops.online import OnlineState, RunLog, resume_online, save_online
from seqrep.loops.progress import progress_bar
from seqrep.loops.report import videos_section
from seqrep.loops.runs import MAY_CHANGE_ON_RESUME, Prepared, RunDir, load_run
from seqrep.options import check_options
from seqrep.rl.curl import PixelSAC, PixelSACConfig
from seqrep.rl.envs import check_renders
from seqrep.rl.pixels import (
    FrameReplay,
    PixelEvaluation,
    default_action_repeat,
    make_pixel_env,
    pixel_episode_steps,
)
from seqrep.rl.policy import Policy
from seqrep.rl.video import require_video_writer, write_video

__all__ = [
    "PixelRunConfig",
    "PixelTraining",
    "PreparedPixelRun",
    "load_curl",
    "prepare_pixel_run",
    "published_dmc",
    "train_pixel_sac",
    "write_pixel_report",
]


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
    eval_workers: int = field(
        default=1,
        metadata={
            "help": "evaluation environments in subprocesses, rendering at once (1: all in this "
            "process, actions batched)",
            **MAY_CHANGE_ON_RESUME,
        },
    )
    capture_video: bool = field(
        default=False,
        metadata={
            "help": "an MP4 of the first episode of every evaluation in videos/step-N.mp4",
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
                "eval_workers",
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
        return self.action_repeat or default_action_repeat(self.task)


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
    probe = make_pixel_env(cfg.task, cfg.image_size, cfg.repeat(), cfg.frame_stack)
    try:
        check_renders(probe)
    finally:
        probe.close()
    if cfg.capture_video:
        require_video_writer()
    return PreparedPixelRun("curl", cfg)


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


class PixelTraining:
    """One ``seqrep curl`` run, its state kept between the steps of the loop: the environment,
    agent, replay, generators and counters, and the metrics window being averaged.

    :meth:`fit` plays episodes until ``env_steps``; each agent step acts (uniformly at random
    for the first ``init_steps``), stores the transition and, after ``init_steps``, updates.
    """

    def __init__(self, cfg: PixelRunConfig, run: RunDir | None) -> None:
        cfg.validate()
        self.cfg, self.run = cfg, run
        self.device = resolve_device(cfg.device)
        self.repeat = cfg.repeat()
        self.env = make_pixel_env(cfg.task, cfg.image_size, self.repeat, cfg.frame_stack)
        self.act_dim = int(np.prod(self.env.action_space.shape))
        obs_shape = (3 * cfg.frame_stack, cfg.image_size, cfg.image_size)
        torch.manual_seed(cfg.seed)
        self.agent = PixelSAC(obs_shape, self.act_dim, cfg.agent(), self.device, cfg.seed)
        self.total = -(-cfg.env_steps // self.repeat)  # agent steps
        self.replay = FrameReplay(
            min(cfg.replay_size, self.total),
            (3, cfg.image_size, cfg.image_size),
            self.act_dim,
            cfg.frame_stack,
            min_episode_steps=pixel_episode_steps(cfg.task, self.repeat),
        )
        self.sampler = torch.Generator().manual_seed(cfg.seed)  # replay indices (CPU)
        self.rng = np.random.default_rng(cfg.seed)  # the random actions of the first steps
        step, episode, seconds, records = (
            resume_online(run, self.agent, self.replay, self.sampler, self.rng) if run else (0,) * 4
        )
        self.state = OnlineState(step, episode, seconds)
        self.log = RunLog(run, records)
        self.window: dict[str, list[float]] = {}
        self.evaluation: PixelEvaluation | None = None

    def fit(self, quiet: bool = False) -> dict[str, Any]:
        """Train to ``env_steps`` (from the checkpoint, if any); returns seconds and the
        evaluations."""
        cfg = self.cfg
        label = f"{cfg.aux}/{cfg.augment} {cfg.task}"
        try:
            with progress_bar(label, self.total * self.repeat, disable=quiet) as advance:
                advance(self.state.step * self.repeat)
                if self.state.step == 0:
                    self._evaluate()
                while self.state.step < self.total:
                    self._episode(advance)
        finally:
            self.env.close()
            if self.evaluation is not None:
                self.evaluation.close()
        return {"seconds": self.state.seconds, "evaluations": self.log.all_evaluations()}

    def _episode(self, advance: Callable[..., None]) -> None:
        """One episode (reset with seed ``seed + episode``), then a checkpoint when due."""
        obs, _ = self.env.reset(seed=self.cfg.seed + self.state.episode)
        self.replay.start_episode(obs[-3:])
        if self.run is not None and not (self.run.path / "views.png").exists():
            _save_views(self.agent, obs, self.run.path / "views.png")
        ep_return, ep_len, done = 0.0, 0, False
        while not done and self.state.step < self.total:
            action = self._act(obs)
            obs, reward, terminated, truncated, _ = self.env.step(action)
            self.replay.add(action, float(reward), obs[-3:], terminated)
            self.state.step += 1
            ep_len, ep_return = ep_len + 1, ep_return + float(reward)
            done = terminated or truncated
            if self.state.step >= self.cfg.init_steps:
                self._update()
            advance(self.repeat, ret=ep_return)
            at = self.state.step * self.repeat
            if at % self.cfg.eval_every < self.repeat or self.state.step == self.total:
                self._evaluate()
        self._log({"episode": self.state.episode, "return": ep_return, "length": ep_len})
        self.state.episode += 1
        due = (
            self.state.step - self.state.last_checkpoint
        ) * self.repeat >= self.cfg.checkpoint_every
        if self.run is not None and (due or self.state.step >= self.total):
            self._checkpoint()

    def _act(self, obs: np.ndarray) -> np.ndarray:
        """A uniform random action for the first ``init_steps``, then the stochastic policy."""
        if self.state.step < self.cfg.init_steps:
            return self.rng.uniform(-1.0, 1.0, self.act_dim).astype(np.float32)
        return self.agent.act(torch.from_numpy(obs)[None], deterministic=False)[0].cpu().numpy()

    def _update(self) -> None:
        """One update on a replay batch; its metrics join the window logged every
        ``log_every`` environment steps."""
        tick = time.perf_counter()
        metrics = self.agent.update(
            self.replay.sample(self.cfg.batch_size, self.sampler, self.device)
        )
        if self.device == "cuda":
            torch.cuda.synchronize()
        metrics["update_seconds"] = time.perf_counter() - tick
        for k, v in metrics.items():
            self.window.setdefault(k, []).append(v)
        if self.state.step % max(1, self.cfg.log_every // self.repeat) == 0:
            self._log({k: float(np.mean(v)) for k, v in self.window.items()})
            self.window = {}

    def _log(self, record: dict[str, Any]) -> None:
        self.log.log(
            {"env_step": self.state.step * self.repeat, "agent_step": self.state.step, **record}
        )

    def _evaluate(self) -> None:
        """``eval_episodes`` episodes of the deterministic policy (seeds 10000 + seed + e), and
        under ``capture_video`` the first one as ``videos/step-N.mp4``."""
        cfg = self.cfg
        if self.evaluation is None:  # made on first use: a finished run's resume needs none
            self.evaluation = PixelEvaluation(
                lambda: make_pixel_env(cfg.task, cfg.image_size, self.repeat, cfg.frame_stack),
                cfg.eval_episodes,
                cfg.eval_workers,
            )
        frames: list[np.ndarray] | None = [] if cfg.capture_video and self.run else None
        returns = self.evaluation.run(
            lambda obs: self.agent.act(torch.from_numpy(obs)).cpu().numpy(),
            seed=10_000 + cfg.seed,
            frames=frames,
        )
        if frames and self.run is not None:
            at = self.state.step * self.repeat
            write_video(self.run.path / "videos" / f"step-{at}.mp4", frames, fps=25, scale=2)
        self._log(
            {
                "eval_return_mean": float(returns.mean()),
                "eval_return_std": float(returns.std()),
                "seconds": self.state.seconds,
                "device": self.device,  # where --device auto ran
            }
        )

    def _checkpoint(self) -> None:
        assert self.run is not None
        save_online(
            self.run,
            self.agent,
            self.replay,
            self.sampler,
            self.rng,
            step=self.state.step,
            episode=self.state.episode,
            seconds=self.state.seconds,
            records=self.log.records,
        )
        self.state.last_checkpoint = self.state.step


def train_pixel_sac(
    cfg: PixelRunConfig, run: RunDir | None = None, *, quiet: bool = False
) -> tuple[PixelSAC, dict[str, Any]]:
    """Train SAC from pixels on ``cfg.task``; with a ``run`` folder, log, checkpoint and resume.
    Returns the agent and a summary (seconds, evaluations)."""
    training = PixelTraining(cfg, run)
    return training.agent, training.fit(quiet)


def published_dmc(task: str) -> list[dict[str, Any]]:
    """Published DMControl scores for ``task`` from seqrep's reference table (may be empty)."""
    import csv
    from importlib.resources import files

    table = files("seqrep.data") / "reference" / "curl_dmc.csv"
    with table.open() as f:
        return [r for r in csv.DictReader(f) if r["task"] == task]


def _plot_pixel_run(
    cfg: PixelRunConfig,
    evals: list[dict[str, Any]],
    updates: list[dict[str, Any]],
    published: list[dict[str, Any]],
    path: Path,
) -> None:
    """The evaluation curve beside the published numbers, and the training losses (with CURL's
    accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        ax.legend(fontsize=7, loc="upper right")
    ax.set(xlabel="environment steps", title="training losses")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_pixel_report(cfg: PixelRunConfig, run: RunDir, summary: dict[str, Any]) -> str:
    """report.md: evaluation curve beside published numbers, losses, CURL accuracy, views."""
    metrics = run.read_metrics()
    evals = [m for m in metrics if "eval_return_mean" in m]
    updates = [m for m in metrics if "critic_loss" in m]
    published = published_dmc(cfg.task)
    _plot_pixel_run(cfg, evals, updates, published, run.path / "returns.png")
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
{videos_section(run)}""",
    )
    return table


def load_curl(run_dir: str | Path, device: str = "cpu") -> Policy:
    """The deterministic policy of a ``seqrep curl`` run (its last checkpoint), on ``device``:
    it acts on uint8 frame stacks [3 * frame_stack, image_size, image_size] (centre-cropped
    inside), as :func:`seqrep.rl.pixels.make_pixel_env` renders them.

    Raises:
        RunDirError: not a ``seqrep curl`` run folder, or no checkpoint yet.
    """
    cfg, state = load_run(run_dir, "curl", PixelRunConfig)
    env = make_pixel_env(cfg.task, cfg.image_size, cfg.repeat(), cfg.frame_stack)
    act_dim = int(np.prod(env.action_space.shape))
    env.close()
    obs_shape = (3 * cfg.frame_stack, cfg.image_size, cfg.image_size)
    agent = PixelSAC(obs_shape, act_dim, cfg.agent(), device=check_device(device))
    agent.load_state_dict(state["agent"]["model"])
    return pixel_policy(agent, cfg)


def pixel_policy(agent: PixelSAC, cfg: PixelRunConfig) -> Policy:
    """``agent`` as the :class:`Policy` of a run of ``cfg``: it acts on uint8 frame stacks
    [3 * frame_stack, image_size, image_size], and ``make_env`` renders them."""
    obs_shape = (3 * cfg.frame_stack, cfg.image_size, cfg.image_size)
    env = partial(make_pixel_env, cfg.task, cfg.image_size, cfg.repeat(), cfg.frame_stack)
    return Policy(agent, obs_shape, cfg.task, "curl", env)
