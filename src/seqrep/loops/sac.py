"""``seqrep sac``: online SAC on a gymnasium task (state observations), with evaluation, a run
folder and exact checkpoint/resume.

Checkpoints are written at episode boundaries (every ``checkpoint_every`` steps, at the next
episode end) and hold the agent, its optimisers, the replay buffer, the step and episode
counters and every RNG; episode e is reset with seed ``seed + e``, so a resumed run replays the
same curve as an uninterrupted one. The last checkpoint is written at ``total_steps``, inside
an episode if that is where the run ends: a finished run always holds its final weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.devices import batch_to, check_device, resolve_device
from seqrep.loops.online import OnlineState, RunLog, resume_online, save_online
from seqrep.loops.pretrain_states import encoder_hook
from seqrep.loops.progress import progress_bar
from seqrep.loops.report import evaluation_table, plot_evaluations, videos_section
from seqrep.loops.runs import MAY_CHANGE_ON_RESUME, Prepared, RunDir, load_run
from seqrep.options import check_options
from seqrep.rl.base import saved_encoder
from seqrep.rl.envs import check_renders, evaluate_policy, make_env
from seqrep.rl.policy import Policy
from seqrep.rl.replay import ReplayBuffer
from seqrep.rl.sac import SAC, SACConfig
from seqrep.rl.video import require_video_writer, write_video

__all__ = [
    "PreparedSAC",
    "SACRunConfig",
    "SACTraining",
    "actor_snapshot",
    "load_sac",
    "prepare_sac",
    "replay_buffer_dataset",
    "train_sac",
    "write_sac_report",
]


@dataclass
class SACRunConfig(SACConfig):
    """Online SAC on a gymnasium task (state observations)."""

    env: str = field(default="Pendulum-v1", metadata={"help": "gymnasium environment id"})
    total_steps: int = field(default=20_000, metadata={"help": "environment steps"})
    learning_starts: int = field(default=5_000, metadata={"help": "random-action steps first"})
    buffer_size: int = field(default=1_000_000, metadata={"help": "replay capacity"})
    eval_every: int = field(default=5_000, metadata={"help": "evaluate every N steps"})
    eval_episodes: int = field(default=5, metadata={"help": "episodes per evaluation"})
    checkpoint_every: int = field(
        default=10_000, metadata={"help": "checkpoint (at episode end)", **MAY_CHANGE_ON_RESUME}
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    encoder: str = field(
        default="", metadata={"help": "a `seqrep pretrain-states` run folder: its encoder first"}
    )
    freeze_encoder: bool = field(
        default=False, metadata={"help": "keep --encoder fixed (else the learner fine-tunes it)"}
    )
    hide_dims: int = field(
        default=0,
        metadata={"help": "zero N random observation dimensions every step, also in evaluation"},
    )
    capture_video: bool = field(
        default=False,
        metadata={
            "help": "an MP4 of the first episode of every evaluation in videos/step-N.mp4",
            **MAY_CHANGE_ON_RESUME,
        },
    )

    def validate(self) -> None:
        check_options(
            self,
            positive=(
                "total_steps",
                "batch_size",
                "buffer_size",
                "eval_every",
                "eval_episodes",
                "checkpoint_every",
                "hidden",
                "policy_frequency",
                "policy_lr",
                "q_lr",
                "init_alpha",
            ),
            non_negative=("learning_starts", "hide_dims"),
            unit=("tau",),
        )
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"--gamma is a discount in [0, 1], got {self.gamma}")
        if self.total_steps <= self.learning_starts:
            raise ValueError(
                f"--total-steps {self.total_steps} is not above --learning-starts "
                f"{self.learning_starts}: the agent would never train; raise --total-steps or "
                "lower --learning-starts"
            )

    def sac(self) -> SACConfig:
        return SACConfig(**{f.name: getattr(self, f.name) for f in fields(SACConfig)})


@dataclass
class PreparedSAC(Prepared):
    """``seqrep sac``'s work, checked: the config, the environment's sizes, and the
    ``--encoder`` run's encoder (as agent arguments, :func:`encoder_hook`; empty without)."""

    obs_dim: int
    act_dim: int
    hook: dict[str, Any]


def prepare_sac(cfg: SACRunConfig) -> PreparedSAC:
    """Validate ``cfg``, make its environment and load its ``--encoder``; nothing is written.

    Raises:
        ValueError: an option out of range, an unknown environment, or an encoder for
            observations of another size.
        RunDirError: ``--encoder`` names no finished ``seqrep pretrain-states`` run.
    """
    cfg.validate()
    env = make_env(cfg.env, hide_dims=cfg.hide_dims)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    env.close()
    hook = encoder_hook(cfg.encoder, obs_dim, cfg.freeze_encoder)
    if cfg.capture_video:  # the writer installed, the environment rendering
        require_video_writer()
        probe = make_env(cfg.env, hide_dims=cfg.hide_dims, render_mode="rgb_array")
        try:
            check_renders(probe)
        finally:
            probe.close()
    return PreparedSAC("sac", cfg, obs_dim, act_dim, hook)


def actor_snapshot(agent: SAC, step: int, eval_return: float) -> dict[str, Any]:
    """The actor's weights (and the observation normaliser it sees) at ``step``: enough to act."""
    return {
        "actor": agent.actor.state_dict(),
        "encoder": agent.encoder.state_dict(),  # empty for plain state-based SAC
        "obs_mean": agent.obs_mean.clone(),
        "obs_std": agent.obs_std.clone(),
        "hidden": agent.cfg.hidden,
        "step": step,
        "eval_return_mean": eval_return,
    }


class SACTraining:
    """One ``seqrep sac`` run, its state kept between the steps of the loop: the environment,
    agent, replay buffer, generators, counters and log. Without a run folder (``run=None``)
    nothing is written: no metrics, checkpoints, snapshots or videos.

    :meth:`fit` acts (uniformly at random for the first ``learning_starts`` steps), updates on
    a replay batch after every step past them, evaluates every ``eval_every`` steps, and
    checkpoints at the first episode end ``checkpoint_every`` steps after the last one.
    """

    def __init__(self, cfg: SACRunConfig, run: RunDir | None, agent: SAC | None = None) -> None:
        cfg.validate()
        self.cfg, self.run = cfg, run
        self.env = make_env(cfg.env, hide_dims=cfg.hide_dims)
        obs_dim = int(np.prod(self.env.observation_space.shape))
        self.act_dim = int(np.prod(self.env.action_space.shape))
        torch.manual_seed(cfg.seed)
        hook = encoder_hook(cfg.encoder, obs_dim, cfg.freeze_encoder)
        agent = agent or SAC(obs_dim, self.act_dim, cfg.sac(), **hook)
        self.agent = agent.to(resolve_device(cfg.device))
        self.buffer = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), obs_dim, self.act_dim)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        step, episode, seconds, records = (
            resume_online(run, self.agent, self.buffer, self.gen, self.rng) if run else (0,) * 4
        )
        self.state = OnlineState(step, episode, seconds)
        self.log = RunLog(run, records)
        self.explore = self.agent.numpy_policy(deterministic=False)
        self.greedy = self.agent.numpy_policy()

    def fit(self, quiet: bool = False) -> dict[str, Any]:
        """Train to ``total_steps`` (from the checkpoint, if any); returns seconds and the
        evaluations."""
        cfg, state = self.cfg, self.state
        with progress_bar(f"sac {cfg.env}", cfg.total_steps, disable=quiet) as advance:
            advance(state.step)
            obs, _ = self.env.reset(seed=cfg.seed + state.episode)
            ep_return, ep_len = 0.0, 0
            while state.step < cfg.total_steps:
                obs, reward, done = self._step(obs)
                ep_return, ep_len = ep_return + reward, ep_len + 1
                if done:
                    self._end_episode(ep_return, ep_len)
                    obs, _ = self.env.reset(seed=cfg.seed + state.episode)
                    advance(ep_len, ret=ep_return)
                    ep_return, ep_len = 0.0, 0
            if ep_len:  # the last episode was cut at total_steps: its weights must be kept
                advance(ep_len)
                self._checkpoint()
        self.env.close()
        evals = self.log.all_evaluations()
        return {
            "seconds": state.seconds,
            "evaluations": evals,
            "final_eval": evals[-1] if evals else None,
        }

    def _step(self, obs: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """One environment step (and one update past ``learning_starts``, an evaluation when
        due): the next observation, the reward and whether the episode ended."""
        cfg, state = self.cfg, self.state
        if state.step < cfg.learning_starts:
            action = self.rng.uniform(-1.0, 1.0, self.act_dim).astype(np.float32)
        else:
            action = self.explore(obs)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.buffer.add(obs, action, float(reward), next_obs, terminated)
        state.step += 1
        if state.step > cfg.learning_starts:
            batch = self.buffer.sample(cfg.batch_size, self.gen)
            self.agent.update(batch_to(batch, self.agent.device))
        if state.step % cfg.eval_every == 0 or state.step == cfg.total_steps:
            self._evaluate()
        return next_obs, float(reward), terminated or truncated

    def _evaluate(self) -> None:
        """``eval_episodes`` episodes of the deterministic policy (seeds 10000 + seed + e); in a
        run folder, the actor's snapshot (the zoo's raw material) and, under
        ``capture_video``, the first episode as ``videos/step-N.mp4``."""
        cfg, step = self.cfg, self.state.step
        frames: list[np.ndarray] | None = [] if cfg.capture_video and self.run else None
        returns = evaluate_policy(
            cfg.env, self.greedy, cfg.eval_episodes, 10_000 + cfg.seed, cfg.hide_dims, frames
        )
        self.log.log(
            {
                "step": step,
                "eval_return_mean": float(returns.mean()),
                "eval_return_std": float(returns.std()),
                "seconds": self.state.seconds,
            }
        )
        if self.run is not None:
            if frames:
                write_video(self.run.path / "videos" / f"step-{step}.mp4", frames, fps=30)
            snapshot = actor_snapshot(self.agent, step, float(returns.mean()))
            self.run.save_checkpoint(snapshot, f"actor_{step:08d}.pt")

    def _end_episode(self, ep_return: float, ep_len: int) -> None:
        """Log the episode; checkpoint when ``checkpoint_every`` steps have passed."""
        cfg, state = self.cfg, self.state
        self.log.log(
            {"step": state.step, "episode": state.episode, "return": ep_return, "length": ep_len}
        )
        state.episode += 1
        due = state.step - state.last_checkpoint >= cfg.checkpoint_every
        if due or state.step >= cfg.total_steps:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Everything :func:`resume_online` restores (in a run folder). At ``total_steps`` it
        may fall inside an episode: nothing is left to resume then, but the weights are the
        run's final ones, which ``seqrep.load`` and ``collect`` read."""
        state = self.state
        if self.run is None:
            return
        save_online(
            self.run,
            self.agent,
            self.buffer,
            self.gen,
            self.rng,
            step=state.step,
            episode=state.episode,
            seconds=state.seconds,
            records=self.log.records,
        )
        state.last_checkpoint = state.step


def train_sac(
    cfg: SACRunConfig, run: RunDir | None = None, *, agent: SAC | None = None, quiet: bool = False
) -> tuple[SAC, dict[str, Any]]:
    """Train SAC online; with a ``run`` folder, log episodes and evaluations to it and resume
    from its checkpoint. ``agent`` may be given (e.g. with a pretrained encoder); by default a
    plain state-based SAC. Returns the agent and a summary (seconds, evaluations)."""
    training = SACTraining(cfg, run, agent)
    return training.agent, training.fit(quiet)


def write_sac_report(cfg: SACRunConfig, run: RunDir, summary: dict[str, Any]) -> str:
    """report.md with the training-episode and evaluation return curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = run.read_metrics()
    episodes = [m for m in metrics if "return" in m]
    evals = [m for m in metrics if "eval_return_mean" in m]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [m["step"] for m in episodes],
        [m["return"] for m in episodes],
        ".",
        alpha=0.4,
        label="training episodes",
    )
    plot_evaluations(ax, evals, f"evaluation ({cfg.eval_episodes} episodes, deterministic)")
    ax.axvline(cfg.learning_starts, color="gray", ls="--", lw=1, label="learning starts")
    ax.set(xlabel="environment step", ylabel="return", title=f"SAC on {cfg.env}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run.path / "returns.png", dpi=100)
    plt.close(fig)
    table = evaluation_table(evals)
    run.write_text(
        "report.md",
        f"""# SAC on {cfg.env}

{cfg.total_steps} environment steps ({cfg.learning_starts} with random actions first), seed
{cfg.seed}, {summary["seconds"]:.0f} s. Evaluation: the deterministic (mean) action over
{cfg.eval_episodes} episodes with fixed seeds.

{table}

![returns](returns.png)
{videos_section(run)}""",
    )
    return table


def load_sac(run_dir: str | Path, device: str = "cpu") -> Policy:
    """The deterministic policy of a ``seqrep sac`` run (its last checkpoint), on ``device``.
    A run trained with ``--encoder`` brings its encoder in the checkpoint: the encoder's run
    folder is not needed.

    Raises:
        RunDirError: not a ``seqrep sac`` run folder, or no checkpoint yet.
    """
    cfg, state = load_run(run_dir, "sac", SACRunConfig)
    env = make_env(cfg.env)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    env.close()
    model = state["agent"]["model"]
    agent = SAC(obs_dim, act_dim, cfg.sac(), **saved_encoder(model, cfg.freeze_encoder))
    agent.load_state_dict(model)
    return sac_policy(agent.to(check_device(device)), cfg, obs_dim)


def sac_policy(agent: SAC, cfg: SACRunConfig, obs_dim: int) -> Policy:
    """``agent`` as the :class:`Policy` of a run of ``cfg`` (its environment, hidden
    dimensions included, is what ``make_env`` builds)."""
    return Policy(
        agent, (obs_dim,), cfg.env, "sac", partial(make_env, cfg.env, hide_dims=cfg.hide_dims)
    )


def replay_buffer_dataset(
    run_dir: str | Path, steps: int | None = None
) -> tuple[TrajectoryDataset, str]:
    """The first ``steps`` environment steps (default: all) a ``seqrep sac`` run stored in its
    checkpointed replay buffer, as episodes, and the run's environment id: D4RL's own
    medium-replay recipe (the buffer of a run stopped when its policy reached the medium level).

    The buffer keeps ``terminal`` but not ``truncated``; an episode also ends where a step's
    next observation is not the following step's observation (the environment was reset), and
    such an end is a timeout. The last episode, cut at ``steps``, is a timeout too.

    Raises:
        RunDirError: not a ``seqrep sac`` run folder, or no checkpoint yet.
        ValueError: ``steps`` out of range, or the buffer wrapped and lost its first steps.
    """
    cfg, state = load_run(run_dir, "sac", SACRunConfig)
    buf = state["buffer"]
    size, total = int(buf["size"]), int(state["step"])
    if total > size:
        raise ValueError(
            f"{run_dir}: the replay buffer holds the last {size} of {total} steps; its first "
            f"steps were overwritten (rerun with --buffer-size >= --total-steps)"
        )
    n = size if steps is None else steps
    if not 1 <= n <= size:
        raise ValueError(f"steps must be in [1, {size}] for {run_dir}, got {n}")
    obs, next_obs = buf["obs"][:n], buf["next_obs"][:n]
    terminals = buf["terminal"][:n] > 0
    reset = np.zeros(n, bool)
    reset[:-1] = np.any(next_obs[:-1] != obs[1:], axis=1)
    timeouts = reset & ~terminals
    if not terminals[-1]:
        timeouts[-1] = True
    ends = np.flatnonzero(terminals | timeouts) + 1
    data = TrajectoryDataset(
        observations=obs.astype(np.float32),
        actions=buf["action"][:n].astype(np.float32),
        rewards=buf["reward"][:n].astype(np.float32),
        next_observations=next_obs.astype(np.float32),
        terminals=terminals,
        timeouts=timeouts,
        episode_starts=np.concatenate([[0], ends]).astype(np.int64),
        name=f"{Path(run_dir).name}-replay-{n}",
    )
    return data, cfg.env
