"""``seqrep bc`` and ``seqrep offline-rl``: behaviour cloning and TD3+BC on an offline data set,
with periodic evaluation, a run folder and exact checkpoint/resume. :func:`train_offline` is
the one update loop, also of the study's imitation and offline cells."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.data.trajectories import TrajectoryDataset, load_trajectories
from seqrep.devices import batch_to, check_device, resolve_device
from seqrep.loops.online import RunLog
from seqrep.loops.pretrain_states import encoder_hook
from seqrep.loops.progress import progress_bar
from seqrep.loops.report import evaluation_table, plot_evaluations
from seqrep.loops.runs import (
    MAY_CHANGE_ON_RESUME,
    Prepared,
    RunDir,
    RunDirError,
    load_run,
    load_training_state,
    training_state,
)
from seqrep.options import check_options
from seqrep.rl.base import EncodedAgent, saved_encoder
from seqrep.rl.envs import evaluate_policy, make_env
from seqrep.rl.offline import BC_LOSSES, TD3BC, BehaviourCloning
from seqrep.rl.policy import Policy
from seqrep.rl.scores import normalized_score

__all__ = [
    "AGENTS",
    "OfflineRunConfig",
    "PreparedOffline",
    "load_offline",
    "offline_agent",
    "prepare_offline",
    "run_offline",
    "train_offline",
]


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

    Minibatches are drawn from a generator seeded with ``seed``; the updates' own noise (TD3+BC's
    target smoothing) from torch's global generator as the caller left it: seed it first.
    """
    gen = torch.Generator().manual_seed(seed)
    step, seconds, records = _resume_offline(run, agent, gen)
    t0 = time.perf_counter() - seconds
    log = RunLog(run, records)
    with progress_bar(type(agent).__name__, steps, disable=quiet) as advance:
        advance(step)
        while step < steps:
            metrics = agent.update(batch_to(data.sample_transitions(batch_size, gen), agent.device))
            step += 1
            advance(1)
            if log_every and (step % log_every == 0 or step == steps):
                log.log({"step": step, "seconds": time.perf_counter() - t0, **metrics})
            if eval_env and ((eval_every and step % eval_every == 0) or step == steps):
                returns = evaluate_policy(
                    eval_env, agent.numpy_policy(), eval_episodes, seed=10_000 + seed
                )
                log.log(
                    {
                        "step": step,
                        "eval_return_mean": float(returns.mean()),
                        "eval_return_std": float(returns.std()),
                        "seconds": time.perf_counter() - t0,
                    }
                )
            last = step == steps
            if run is not None and ((checkpoint_every and step % checkpoint_every == 0) or last):
                _checkpoint_offline(run, agent, gen, step, time.perf_counter() - t0, log.records)
    return log.all_evaluations()  # with those logged before a resume


def _resume_offline(
    run: RunDir | None, agent: EncodedAgent, gen: torch.Generator
) -> tuple[int, float, int]:
    """Restore an offline run from its checkpoint (agent, sampler, torch's RNG) and drop the
    records logged after it: (step, seconds, records kept); zeros without one."""
    if run is None:
        return 0, 0.0, 0
    step, seconds, records = 0, 0.0, 0
    state = run.load_checkpoint()
    if state is not None and "generator" in state:  # else none, or not a mid-run one
        load_training_state(agent, state["agent"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step, seconds, records = state["step"], state["seconds"], state["metrics_records"]
    run.truncate_metrics(records)  # records after the checkpoint are logged again
    return step, seconds, records


def _checkpoint_offline(
    run: RunDir, agent: EncodedAgent, gen: torch.Generator, step: int, seconds: float, records: int
) -> None:
    """What :func:`_resume_offline` restores: the agent, its optimisers, the generators, the
    step and the records logged so far."""
    run.save_checkpoint(
        {
            "agent": training_state(agent),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "seconds": seconds,
            "metrics_records": records,
        }
    )


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


# The agent each offline verb trains.
AGENTS = {"bc": "bc", "offline-rl": "td3bc"}


def run_offline(
    prepared: PreparedOffline, run: RunDir | None = None, *, quiet: bool = False
) -> tuple[EncodedAgent, dict[str, Any]]:
    """Train the verb's agent (``bc``: behaviour cloning, ``offline-rl``: TD3+BC) on the
    prepared data with periodic evaluation; with a ``run`` folder, log, checkpoint (a killed
    run resumes) and write results.json and report.md with the curve. Returns the agent and
    the results (final return, the data's, normalised scores where the zoo has references)."""
    cfg, data, env_id = prepared.config, prepared.data, prepared.env_id
    kind = AGENTS[prepared.kind]
    torch.manual_seed(cfg.seed)
    agent = offline_agent(kind, data, cfg.bc_loss, prepared.hook).to(resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)  # the updates' noise starts from the seed, as the weights did
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
    result = _offline_result(cfg, data, env_id, evals)
    if run is not None:
        run.write_json("results.json", result)
        _write_offline_report(kind, cfg, run, data, env_id, evals, result)
    return agent, result


def _offline_result(
    cfg: OfflineRunConfig, data: TrajectoryDataset, env_id: str, evals: list[dict[str, Any]]
) -> dict[str, Any]:
    """The final evaluation beside the data's own return, and their normalised scores with
    seqrep's v5 references (not D4RL's v2 ones) where the zoo has the environment."""
    from seqrep.rl.zoo import zoo_index, zoo_reference

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
    if env_id in zoo_index():
        ref = zoo_reference(env_id)
        result["score"] = normalized_score(result["return_mean"], reference=ref)
        result["data_score"] = normalized_score(result["data_return_mean"], reference=ref)
    return result


def _write_offline_report(
    kind: str,
    cfg: OfflineRunConfig,
    run: RunDir,
    data: TrajectoryDataset,
    env_id: str,
    evals: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    """returns.png (the evaluation curve beside the data's mean return) and report.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqrep.rl.zoo import zoo_reference

    fig, ax = plt.subplots(figsize=(7, 4))
    plot_evaluations(ax, evals, f"{kind} policy ({cfg.eval_episodes} episodes)")
    ax.axhline(result["data_return_mean"], color="gray", ls="--", lw=1, label="data set mean")
    ax.set(xlabel="gradient step", ylabel="return", title=f"{kind} on {Path(cfg.data).name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run.path / "returns.png", dpi=100)
    plt.close(fig)
    score_note = ""
    if "score" in result:
        ref = zoo_reference(env_id)
        score_note = (
            f" Normalised score (seqrep's {env_id} references: random {ref[0]:.1f}, expert "
            f"{ref[1]:.1f}): policy {result['score']:.1f}, data {result['data_score']:.1f}."
        )
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


def load_offline(run_dir: str | Path, device: str = "cpu") -> Policy:
    """The policy of a ``seqrep bc`` or ``seqrep offline-rl`` run (its last checkpoint), on
    ``device``; the encoder of an ``--encoder`` run comes with the checkpoint.

    Raises:
        RunDirError: not such a run folder, or no checkpoint yet.
    """
    kind = json.loads((Path(run_dir) / "config.json").read_text()).get("kind", "")
    if kind not in AGENTS:
        raise RunDirError(f"{run_dir} holds a {kind!r} run, not a `seqrep bc` / `offline-rl` one")
    cfg, state = load_run(run_dir, kind, OfflineRunConfig)
    results = Path(run_dir) / "results.json"
    env_id = json.loads(results.read_text())["env"] if results.exists() else cfg.env
    env_id = env_id or load_trajectories(cfg.data)[1] or ""
    env = make_env(env_id)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    env.close()
    model = state["agent"]["model"]
    hook = saved_encoder(model, cfg.freeze_encoder)
    agent: EncodedAgent = (
        BehaviourCloning(obs_dim, act_dim, loss=cfg.bc_loss, **hook)
        if AGENTS[kind] == "bc"
        else TD3BC(obs_dim, act_dim, **hook)
    )
    agent.load_state_dict(model)
    return offline_policy(agent.to(check_device(device)), env_id, obs_dim, kind)


def offline_policy(agent: EncodedAgent, env_id: str, obs_dim: int, kind: str) -> Policy:
    """``agent`` as the :class:`Policy` of a ``kind`` run evaluated in ``env_id``."""
    return Policy(agent, (obs_dim,), env_id, kind, partial(make_env, env_id) if env_id else None)
