"""Online SAC training with evaluation, run folder, and exact checkpoint/resume.

Checkpoints are written at episode boundaries (every ``checkpoint_every`` steps, at the next
episode end) and hold the agent, its optimisers, the replay buffer, the step and episode
counters and every RNG; episode e is reset with seed ``seed + e``, so a resumed run replays the
same curve as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from seqrep.data.trajectories import TrajectoryDataset, load_trajectories
from seqrep.rl.base import EncodedAgent
from seqrep.rl.envs import check_renders, evaluate_policy, make_env
from seqrep.rl.offline import BC_LOSSES
from seqrep.rl.replay import ReplayBuffer
from seqrep.rl.sac import SAC, SACConfig
from seqrep.rl.scores import normalized_score
from seqrep.rl.video import require_video_writer, write_video
from seqrep.runs import (
    MAY_CHANGE_ON_RESUME,
    Prepared,
    RunDir,
    batch_to,
    check_options,
    load_run,
    load_training_state,
    progress_bar,
    resolve_device,
    training_state,
)
from seqrep.train_states import load_state_encoder

__all__ = [
    "OfflineRunConfig",
    "PreparedOffline",
    "PreparedSAC",
    "SACRunConfig",
    "actor_snapshot",
    "collect_episodes",
    "load_sac_policy",
    "load_trajectories",
    "offline_agent",
    "prepare_offline",
    "prepare_sac",
    "replay_buffer_dataset",
    "resume_online",
    "run_offline",
    "save_online",
    "train_offline",
    "train_sac",
    "zoo_dataset",
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


class _Replay(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def resume_online(
    run: RunDir,
    agent: torch.nn.Module,
    replay: _Replay,
    sampler: torch.Generator,
    rng: np.random.Generator,
) -> tuple[int, int, float, int]:
    """Restore an online run from its checkpoint (agent, replay, replay sampler, numpy and torch
    RNGs), and drop the metric records logged after it (all of them when there is none): they
    are logged again. Returns (step, episode, seconds, records)."""
    state = run.load_checkpoint()
    if state is None:
        run.truncate_metrics(0)
        return 0, 0, 0.0, 0
    load_training_state(agent, state["agent"])
    # Pixel runs started before 2026-12-03 saved the replay and its sampler as replay / sampler.
    replay.load_state_dict(state["buffer"] if "buffer" in state else state["replay"])
    sampler.set_state(state["generator"] if "generator" in state else state["sampler"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    run.truncate_metrics(state["metrics_records"])
    return state["step"], state["episode"], state["seconds"], state["metrics_records"]


def save_online(
    run: RunDir,
    agent: torch.nn.Module,
    replay: _Replay,
    sampler: torch.Generator,
    rng: np.random.Generator,
    *,
    step: int,
    episode: int,
    seconds: float,
    records: int,
) -> None:
    """Checkpoint an online run at an episode boundary: what :func:`resume_online` restores."""
    run.save_checkpoint(
        {
            "agent": training_state(agent),
            "buffer": replay.state_dict(),
            "generator": sampler.get_state(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "episode": episode,
            "seconds": seconds,
            "metrics_records": records,
        }
    )


def train_sac(
    cfg: SACRunConfig, run: RunDir, *, agent: SAC | None = None, quiet: bool = False
) -> tuple[SAC, dict[str, Any]]:
    """Train SAC online; log episodes and evaluations to ``run``; resume from its checkpoint.

    ``agent`` may be given (e.g. with a pretrained encoder); by default a plain state-based SAC.
    """
    cfg.validate()
    env = make_env(cfg.env, hide_dims=cfg.hide_dims)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    torch.manual_seed(cfg.seed)
    hook = encoder_hook(cfg.encoder, obs_dim, cfg.freeze_encoder)
    agent = (agent or SAC(obs_dim, act_dim, cfg.sac(), **hook)).to(resolve_device(cfg.device))
    buffer = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), obs_dim, act_dim)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    step, episode, seconds, records = resume_online(run, agent, buffer, gen, rng)
    t0 = time.perf_counter() - seconds
    obs, _ = env.reset(seed=cfg.seed + episode)
    ep_return, ep_len, last_ckpt = 0.0, 0, step
    explore, greedy = agent.numpy_policy(deterministic=False), agent.numpy_policy()
    with progress_bar(f"sac {cfg.env}", cfg.total_steps, disable=quiet) as advance:
        advance(step)
        while step < cfg.total_steps:
            if step < cfg.learning_starts:
                action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
            else:
                action = explore(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(obs, action, float(reward), next_obs, terminated)
            obs, step = next_obs, step + 1
            ep_return, ep_len = ep_return + float(reward), ep_len + 1
            if step > cfg.learning_starts:
                agent.update(batch_to(buffer.sample(cfg.batch_size, gen), agent.device))
            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                frames: list[np.ndarray] | None = [] if cfg.capture_video else None
                returns = evaluate_policy(
                    cfg.env, greedy, cfg.eval_episodes, 10_000 + cfg.seed, cfg.hide_dims, frames
                )
                if frames:
                    write_video(run.path / "videos" / f"step-{step}.mp4", frames, fps=30)
                run.log(
                    {
                        "step": step,
                        "eval_return_mean": float(returns.mean()),
                        "eval_return_std": float(returns.std()),
                        "seconds": time.perf_counter() - t0,
                    }
                )
                records += 1
                # The training ladder: small actor-only snapshots, the zoo's raw material.
                run.save_checkpoint(
                    actor_snapshot(agent, step, float(returns.mean())),
                    f"actor_{step:08d}.pt",
                )
            if terminated or truncated:
                run.log({"step": step, "episode": episode, "return": ep_return, "length": ep_len})
                records += 1
                episode += 1
                obs, _ = env.reset(seed=cfg.seed + episode)
                advance(ep_len, ret=ep_return)
                ep_return, ep_len = 0.0, 0
                if step - last_ckpt >= cfg.checkpoint_every or step >= cfg.total_steps:
                    save_online(
                        run,
                        agent,
                        buffer,
                        gen,
                        rng,
                        step=step,
                        episode=episode,
                        seconds=time.perf_counter() - t0,
                        records=records,
                    )
                    last_ckpt = step
        if ep_len:
            advance(ep_len)
    env.close()
    evals = [r for r in run.read_metrics() if "eval_return_mean" in r]
    return agent, {
        "seconds": time.perf_counter() - t0,
        "evaluations": evals,
        "final_eval": evals[-1] if evals else None,
    }


def plot_evaluations(ax: Any, evals: list[dict[str, Any]], label: str) -> None:
    """Evaluation returns (mean, with a ±std band) against the step, on a matplotlib axis."""
    if not evals:
        return
    steps = np.array([m["step"] for m in evals])
    mean = np.array([m["eval_return_mean"] for m in evals])
    std = np.array([m["eval_return_std"] for m in evals])
    ax.plot(steps, mean, "o-", label=label)
    ax.fill_between(steps, mean - std, mean + std, alpha=0.2)


def evaluation_table(evals: list[dict[str, Any]]) -> str:
    """The evaluations as a Markdown table: step, return mean ± std."""
    rows = "\n".join(
        f"| {m['step']} | {m['eval_return_mean']:.1f} ± {m['eval_return_std']:.1f} |" for m in evals
    )
    return f"| step | evaluation return (mean ± std) |\n|---|---|\n{rows}"


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


def videos_section(run: RunDir) -> str:
    """Links to the first and last evaluation videos (``--capture-video``), or ''."""
    videos = sorted(
        (run.path / "videos").glob("step-*.mp4"), key=lambda p: int(p.stem.split("-")[1])
    )
    if not videos:
        return ""
    shown = dict.fromkeys([videos[0], videos[-1]])
    links = ", ".join(f"[{p.stem.replace('-', ' ')}](videos/{p.name})" for p in shown)
    return f"\nEvaluation episodes on video (the first of each evaluation): {links}.\n"


def collect_episodes(
    env_id: str,
    policy: Callable[[np.ndarray], np.ndarray],
    steps: int,
    seed: int,
    name: str = "",
    max_episodes: int | None = None,
) -> TrajectoryDataset:
    """Roll ``policy`` (obs -> action in [-1, 1]) for ``steps`` environment steps (whole episodes:
    the last one is cut as truncated), or until ``max_episodes`` whole episodes; episode e is
    reset with seed ``seed + e``.

    A policy with a ``start_episode(e)`` method (a per-episode mixture such as the zoo's
    medium-replay) is told of every new episode before its first step."""
    env = make_env(env_id)
    episodes: list[dict[str, np.ndarray]] = []
    total, e = 0, 0
    start_episode = getattr(policy, "start_episode", None)
    while total < steps and (max_episodes is None or e < max_episodes):
        obs, _ = env.reset(seed=seed + e)
        if start_episode is not None:
            start_episode(e)
        rows: dict[str, list] = {k: [] for k in TrajectoryDataset._FIELDS}
        done = False
        while not done and total < steps:
            action = np.asarray(policy(obs), dtype=np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            total += 1
            for k, v in zip(
                TrajectoryDataset._FIELDS,
                (
                    obs,
                    action,
                    reward,
                    next_obs,
                    terminated,
                    truncated or (total >= steps and not terminated),
                ),
                strict=True,
            ):
                rows[k].append(v)
            obs = next_obs
        episodes.append({k: np.asarray(v) for k, v in rows.items()})
        e += 1
    env.close()
    return TrajectoryDataset.from_episodes(episodes, name=name or env_id)


def zoo_dataset(
    env_id: str,
    level: str,
    folder: Path,
    *,
    steps: int = 0,
    episodes: int | None = None,
    seed: int = 0,
    collect: bool = True,
) -> TrajectoryDataset:
    """Data of the zoo's ``level`` policy in ``env_id``: ``steps`` steps, or (steps = 0) the first
    ``episodes`` whole episodes; collected once and cached in ``folder`` as D4RL-layout HDF5.
    With ``collect=False`` a set not cached yet raises FileNotFoundError instead."""
    from seqrep.data.trajectories import load_d4rl_hdf5, save_d4rl_hdf5
    from seqrep.rl.zoo import load_zoo_policy, recipe_is_current, zoo_recipe

    if not steps and not episodes:
        raise ValueError("give a number of steps or of episodes to collect")
    size = f"{steps}" if steps else f"{episodes}ep"
    path = folder / f"{env_id}-{level}-{size}-s{seed}.hdf5"
    recipe = zoo_recipe(env_id, level)
    if path.exists():
        recorded = _recorded_recipe(path)
        if not recipe_is_current(recorded, recipe, level):
            raise ValueError(
                f"cached data set {path} was collected by other behaviour policies than "
                f"today's zoo rolls out (recorded: {recorded or _BEFORE_RECIPES}; today: "
                f"{recipe}). Results computed on it used that data; to collect today's, move "
                "the file away or pass another data folder, and start new result folders "
                "rather than resuming old ones"
            )
    elif not collect:
        raise FileNotFoundError(f"{path} has not been collected yet")
    else:
        policy = load_zoo_policy(env_id, level, seed=seed)
        data = collect_episodes(
            env_id,
            policy,
            steps or 10**9,
            seed,
            name=path.stem,
            max_episodes=None if steps else episodes,
        )
        folder.mkdir(parents=True, exist_ok=True)
        save_d4rl_hdf5(data, path, env=env_id, policy=f"zoo:{level}", recipe=recipe, seed=seed)
    return load_d4rl_hdf5(path)


_BEFORE_RECIPES = "none, collected before the medium-replay mixture included the medium policy"


def _recorded_recipe(path: Path) -> str | None:
    """The recipe a cached collection recorded (None: made before recipes were recorded). The
    file is never deleted here: results computed on it may still need it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            recorded = f.attrs.get("recipe")
    except OSError as e:
        raise ValueError(
            f"cached data set {path} cannot be read ({e}); delete it to collect it again"
        ) from e
    return None if recorded is None else str(recorded)


def train_offline(
    agent: EncodedAgent,
    data: TrajectoryDataset,
    steps: int,
    batch_size: int = 256,
    seed: int = 0,
    *,
    run: RunDir | None = None,
    eval_env: str | None = None,
    eval_every: int = 0,
    eval_episodes: int = 10,
    log_every: int = 500,
    checkpoint_every: int = 0,
    quiet: bool = True,
) -> list[dict[str, float]]:
    """``agent.update`` on uniform minibatches of ``data`` for ``steps`` steps (BC, TD3+BC).

    With ``eval_env``, the deterministic policy is evaluated over ``eval_episodes`` episodes
    every ``eval_every`` steps and after the last one. With ``run``, losses (every
    ``log_every`` steps) and evaluations go to its metrics, and every ``checkpoint_every``
    steps a checkpoint holds the agent, its optimisers, the sampler's and torch's RNG and the
    step: a killed run resumes from it and continues the same curve. Returns the evaluations.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    step, seconds, records = 0, 0.0, 0
    if run is not None:
        state = run.load_checkpoint()
        if state is not None and "generator" in state:  # else none, or not a mid-run one
            load_training_state(agent, state["agent"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            step, seconds, records = state["step"], state["seconds"], state["metrics_records"]
        run.truncate_metrics(records)  # records after the checkpoint are logged again
    t0 = time.perf_counter() - seconds
    evaluations: list[dict[str, float]] = []

    def log(record: dict[str, float]) -> None:
        nonlocal records
        if run is not None:
            run.log(record)
            records += 1

    with progress_bar(type(agent).__name__, steps, disable=quiet) as advance:
        advance(step)
        while step < steps:
            metrics = agent.update(batch_to(data.sample_transitions(batch_size, gen), agent.device))
            step += 1
            advance(1)
            if log_every and (step % log_every == 0 or step == steps):
                log({"step": step, "seconds": time.perf_counter() - t0, **metrics})
            if eval_env and ((eval_every and step % eval_every == 0) or step == steps):
                returns = evaluate_policy(
                    eval_env,
                    agent.numpy_policy(),
                    eval_episodes,
                    seed=10_000 + seed,
                )
                evaluations.append(
                    {
                        "step": step,
                        "eval_return_mean": float(returns.mean()),
                        "eval_return_std": float(returns.std()),
                        "seconds": time.perf_counter() - t0,
                    }
                )
                log(evaluations[-1])
            if run is not None and (
                (checkpoint_every and step % checkpoint_every == 0) or step == steps
            ):
                run.save_checkpoint(
                    {
                        "agent": training_state(agent),
                        "generator": gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "step": step,
                        "seconds": time.perf_counter() - t0,
                        "metrics_records": records,
                    }
                )
    if run is not None:  # with those logged before a resume
        evaluations = [r for r in run.read_metrics() if "eval_return_mean" in r]
    return evaluations


def load_sac_policy(
    run_dir: str, device: str = "cpu"
) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The environment id and deterministic policy (on ``device``) of a ``seqrep sac`` run."""
    cfg, state = load_run(run_dir, "sac", SACRunConfig)
    env = make_env(cfg.env)
    agent = SAC(
        int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)), cfg.sac()
    )
    env.close()
    load_training_state(agent, state["agent"])
    return cfg.env, agent.to(resolve_device(device)).numpy_policy()


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


@dataclass
class OfflineRunConfig:
    """Behaviour cloning or TD3+BC on an offline data set, evaluated in its environment."""

    data: str = field(
        default="", metadata={"help": "Minari data set id, or a D4RL-layout .hdf5 path"}
    )
    env: str = field(
        default="", metadata={"help": "gymnasium id to evaluate in (default: the Minari set's env)"}
    )
    steps: int = field(default=10_000, metadata={"help": "gradient steps"})
    batch_size: int = field(default=256, metadata={"help": "minibatch size"})
    bc_loss: str = field(
        default="mse", metadata={"help": "BC loss: mse, gaussian or tanh_gaussian (+ entropy)"}
    )
    eval_every: int = field(
        default=5_000, metadata={"help": "evaluate every N steps (and after the last)"}
    )
    eval_episodes: int = field(default=10, metadata={"help": "episodes per evaluation"})
    log_every: int = field(default=500, metadata={"help": "log losses every N steps"})
    checkpoint_every: int = field(
        default=5_000, metadata={"help": "checkpoint every N steps", **MAY_CHANGE_ON_RESUME}
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    encoder: str = field(
        default="", metadata={"help": "a `seqrep pretrain-states` run folder: its encoder first"}
    )
    freeze_encoder: bool = field(
        default=False, metadata={"help": "keep --encoder fixed (else the learner fine-tunes it)"}
    )

    def validate(self) -> None:
        check_options(
            self,
            positive=("steps", "batch_size", "eval_episodes", "log_every", "checkpoint_every"),
            non_negative=("eval_every",),
            choices={"bc_loss": BC_LOSSES},
        )


def encoder_hook(run_dir: str, obs_dim: int, freeze: bool) -> dict[str, Any]:
    """An agent's encoder arguments from a ``seqrep pretrain-states`` run (none for "").

    Raises:
        ValueError: the encoder reads observations of another size.
    """
    if not run_dir:
        return {}
    encoder, objective = load_state_encoder(run_dir)
    if encoder.obs_dim != obs_dim:
        raise ValueError(
            f"--encoder {run_dir} ({objective}) reads observations of size {encoder.obs_dim}, "
            f"but this task's have size {obs_dim}: pretrain on data of this environment"
        )
    return {"encoder": encoder, "feature_dim": encoder.feature_dim, "freeze_encoder": freeze}


def offline_agent(
    kind: str, data: TrajectoryDataset, bc_loss: str = "mse", hook: dict[str, Any] | None = None
) -> EncodedAgent:
    """A fresh ``kind`` ("bc" or "td3bc") agent for ``data`` (seed torch first for a
    reproducible initialisation). Without an encoder (``hook``: :func:`encoder_hook`), its
    observations are z-scored with the data set's statistics; a pretrained encoder carries its
    own."""
    from seqrep.rl.offline import TD3BC, BehaviourCloning

    if kind not in ("bc", "td3bc"):
        raise ValueError(f"unknown offline agent {kind!r}; choose bc or td3bc")
    hook = hook or {}
    agent: EncodedAgent = (
        BehaviourCloning(data.obs_dim, data.act_dim, loss=bc_loss, **hook)
        if kind == "bc"
        else TD3BC(data.obs_dim, data.act_dim, **hook)
    )
    if not hook:
        obs = torch.from_numpy(data.observations)
        agent.set_obs_normaliser(obs.mean(0), obs.std(0))
    return agent


@dataclass
class PreparedOffline(Prepared):
    """``seqrep bc`` / ``offline-rl``'s work, checked: the config, the data, the evaluation
    environment's id and the ``--encoder``'s agent arguments (:func:`encoder_hook`)."""

    data: TrajectoryDataset
    env_id: str
    hook: dict[str, Any]


def prepare_offline(cfg: OfflineRunConfig, kind: str = "bc") -> PreparedOffline:
    """Everything an offline run checks before it writes anything: the config, the data
    (loadable, non-empty), the evaluation environment (constructible, with the data's
    observation and action sizes) and the encoder. ``kind`` is the verb, ``bc`` or
    ``offline-rl``."""
    cfg.validate()
    data, env_id = load_trajectories(cfg.data)
    env_id = cfg.env or env_id
    if not env_id:
        raise ValueError("--env is required to evaluate a policy learnt from an HDF5 file")
    env = make_env(env_id)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    env.close()
    if (obs_dim, act_dim) != (data.obs_dim, data.act_dim):
        raise ValueError(
            f"{cfg.data} holds observations of size {data.obs_dim} and actions of size "
            f"{data.act_dim}, but {env_id} has {obs_dim} and {act_dim}: the data were not "
            "collected in that environment; pass the --env they came from"
        )
    hook = encoder_hook(cfg.encoder, data.obs_dim, cfg.freeze_encoder)
    return PreparedOffline(kind, cfg, data, env_id, hook)


def run_offline(
    kind: str,
    cfg: OfflineRunConfig,
    run: RunDir,
    *,
    quiet: bool = False,
    prepared: PreparedOffline | None = None,
) -> dict[str, Any]:
    """Train ``kind`` ("bc" or "td3bc") on ``cfg.data`` with periodic evaluation; log,
    checkpoint (a killed run resumes), and write results.json and report.md with the curve.
    ``prepared`` is :func:`prepare_offline`'s result when the caller already checked."""
    from seqrep.rl.zoo import zoo_index, zoo_reference

    prepared = prepared if prepared is not None else prepare_offline(cfg)
    data, env_id = prepared.data, prepared.env_id
    torch.manual_seed(cfg.seed)
    agent = offline_agent(kind, data, cfg.bc_loss, prepared.hook).to(resolve_device(cfg.device))
    evals = train_offline(
        agent,
        data,
        cfg.steps,
        cfg.batch_size,
        cfg.seed,
        run=run,
        eval_env=env_id,
        eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes,
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        quiet=quiet,
    )
    final = evals[-1]
    result: dict[str, Any] = {
        "env": env_id,
        "data": cfg.data,
        "episodes": data.num_episodes,
        "transitions": len(data),
        "data_return_mean": float(data.episode_returns().mean()),
        "return_mean": final["eval_return_mean"],
        "return_std": final["eval_return_std"],
    }
    score_note = ""
    if env_id in zoo_index():  # seqrep's own v5 references, not D4RL's v2 ones
        ref = zoo_reference(env_id)
        result["score"] = normalized_score(result["return_mean"], reference=ref)
        result["data_score"] = normalized_score(result["data_return_mean"], reference=ref)
        score_note = (
            f" Normalised score (seqrep's {env_id} references: random {ref[0]:.1f}, expert "
            f"{ref[1]:.1f}): policy {result['score']:.1f}, data {result['data_score']:.1f}."
        )
    run.write_json("results.json", result)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    plot_evaluations(ax, evals, f"{kind} policy ({cfg.eval_episodes} episodes)")
    ax.axhline(result["data_return_mean"], color="gray", ls="--", lw=1, label="data set mean")
    ax.set(xlabel="gradient step", ylabel="return", title=f"{kind} on {Path(cfg.data).name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run.path / "returns.png", dpi=100)
    plt.close(fig)
    run.write_text(
        "report.md",
        f"""# {kind} on {cfg.data}

{data.num_episodes} episodes / {len(data)} transitions (mean episode return in the data
{result["data_return_mean"]:.1f}); {cfg.steps} gradient steps, batch {cfg.batch_size}, seed
{cfg.seed}. Evaluation: the deterministic policy over {cfg.eval_episodes} episodes of {env_id}
with fixed seeds.{score_note}

{evaluation_table(evals)}

![returns](returns.png)
""",
    )
    return result
