"""One cell of the study: its data, its pretrained encoder (trained once, cached), the downstream
learner (BC, TD3+BC or SAC, each through its verb's own training function) and its score."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.devices import resolve_device
from seqrep.loops.offline import train_offline
from seqrep.loops.pretrain_states import pretrain_state_encoder
from seqrep.loops.runs import RunDir
from seqrep.loops.sac import prepare_sac, train_sac
from seqrep.nets import StateEncoder
from seqrep.rl.collect import zoo_dataset
from seqrep.rl.envs import evaluate_policy
from seqrep.rl.offline import TD3BC, BehaviourCloning
from seqrep.rl.sac import SAC
from seqrep.rl.scores import normalized_score
from seqrep.rl.zoo import zoo_reference
from seqrep.study.config import StudyConfig

__all__ = [
    "cell_returns",
    "encoder_checkpoint",
    "encoder_for",
    "pretrained_encoder_state",
    "run_cell",
    "study_data",
]


def study_data(
    cfg: StudyConfig, env_id: str, study: Path, *, collect: bool = True
) -> dict[str, TrajectoryDataset]:
    """The pretraining, expert and offline sets of ``env_id``, collected once with the zoo into
    the study folder's data/ (``collect=False``: FileNotFoundError for a set not collected
    yet)."""
    folder = study / "data"
    steps = cfg.pretrain_transitions
    pretrain = zoo_dataset(env_id, cfg.pretrain_data, folder, steps=steps, collect=collect)
    return {
        "pretrain": pretrain,
        # The default pretraining set is the offline-RL set: load it once.
        "offline": pretrain
        if cfg.pretrain_data == "medium-replay"
        else zoo_dataset(env_id, "medium-replay", folder, steps=steps, collect=collect),
        "expert": zoo_dataset(
            env_id, "expert", folder, episodes=cfg.expert_episodes, seed=100_000, collect=collect
        ),
    }


# ----------------------------------------------------------------------------- cells


def encoder_checkpoint(env_id: str, objective: str, seed: int) -> str:
    """The checkpoint name of a pretrained encoder (its weights, metric history and seconds)."""
    return f"encoder-{env_id}-{objective}-s{seed}.pt"


def pretrained_encoder_state(
    cfg: StudyConfig, objective: str, seed: int, data: dict[str, TrajectoryDataset]
) -> dict[str, Any]:
    """Pretrain ``objective`` on the study's pretraining set (with ``pretrain_expert_fraction``
    of every batch from the expert set): the encoder's weights, the logged history, seconds."""
    method, history = pretrain_state_encoder(
        objective,
        data["pretrain"],
        mix=(data["expert"], cfg.pretrain_expert_fraction)
        if cfg.pretrain_expert_fraction
        else None,
        steps=cfg.pretrain_steps,
        batch_size=cfg.batch_size,
        window=cfg.window,
        feature_dim=cfg.feature_dim,
        hidden=cfg.hidden,
        lr=cfg.lr,
        seed=seed,
        device=resolve_device(cfg.device),
    )
    encoder = {k: v.cpu() for k, v in method.encoder.state_dict().items()}
    return {"encoder": encoder, "history": history, "seconds": history[-1]["seconds"]}


def encoder_for(
    cfg: StudyConfig,
    env_id: str,
    objective: str,
    seed: int,
    data: dict[str, TrajectoryDataset],
    run: RunDir,
    state: dict[str, Any] | None = None,
) -> tuple[StateEncoder, dict[str, Any]]:
    """The pretrained encoder of (env, objective, seed): from ``state`` when given, else trained
    once and cached in ``run``'s checkpoints; ``none`` is a fresh encoder with the pretraining
    set's input statistics."""
    obs_dim = data["pretrain"].obs_dim
    if objective == "none":
        torch.manual_seed(seed)
        enc = StateEncoder(obs_dim, cfg.feature_dim, cfg.hidden)
        obs = torch.from_numpy(data["pretrain"].observations)
        enc.set_statistics(obs.mean(0), obs.std(0))
        return enc, {"seconds": 0.0, "history": []}
    if state is None:
        name = encoder_checkpoint(env_id, objective, seed)
        state = run.load_checkpoint(name)
        if state is None:
            state = pretrained_encoder_state(cfg, objective, seed, data)
            run.save_checkpoint(state, name)
    enc = StateEncoder(obs_dim, cfg.feature_dim, cfg.hidden)
    enc.load_state_dict(state["encoder"])
    return enc, {"seconds": state["seconds"], "history": state["history"]}


def cell_returns(
    agent: Any, env_id: str, episodes: int, seed: int, hide_dims: int = 0
) -> np.ndarray:
    """Returns of the deterministic policy (SAC's mean action; BC / TD3+BC are deterministic)."""
    return evaluate_policy(env_id, agent.numpy_policy(), episodes, 10_000 + seed, hide_dims)


def run_cell(
    cfg: StudyConfig,
    cell: dict[str, Any],
    data: dict[str, TrajectoryDataset],
    folder: Path,
    encoder_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    env_id, objective, setting, mode, seed = (
        cell[k] for k in ("env", "objective", "setting", "mode", "seed")
    )
    encoder, pre = encoder_for(cfg, env_id, objective, seed, data, RunDir(folder), encoder_state)
    device = resolve_device(cfg.device)
    frozen = mode == "frozen"
    obs_dim, act_dim = data["expert"].obs_dim, data["expert"].act_dim
    hook = {"encoder": encoder, "feature_dim": cfg.feature_dim, "freeze_encoder": frozen}
    before = copy.deepcopy(encoder.state_dict())
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    curve: list[dict[str, float]] = []
    agent: Any
    if setting == "online":
        run_cfg = cfg.online_run_config(env_id, seed)
        agent = SAC(obs_dim, act_dim, run_cfg.sac(), **hook)
        name = f"{env_id}-{objective}-{mode}-s{seed}"
        run = RunDir.open(folder / "online" / name, prepare_sac(run_cfg))
        _, summary = train_sac(run_cfg, run, agent=agent, quiet=True)
        curve = [
            {"step": e["step"], "return": e["eval_return_mean"]} for e in summary["evaluations"]
        ]
    elif setting == "imitation":  # the verbs' own update loop, without a run folder
        expert = data["expert"]
        if cell.get("episodes") is not None:
            expert = expert.first_episodes(cell["episodes"])
        agent = BehaviourCloning(obs_dim, act_dim, loss=cfg.bc_loss, **hook).to(device)
        train_offline(agent, expert, cfg.bc_steps, 256, seed)
    else:
        agent = TD3BC(obs_dim, act_dim, **hook).to(device)
        train_offline(agent, data["offline"], cfg.offline_steps, 256, seed)
    seconds = time.perf_counter() - t0
    unchanged = all(torch.equal(v, encoder.state_dict()[k].cpu()) for k, v in before.items())
    if frozen and not unchanged:
        raise RuntimeError(f"{cell}: a frozen encoder changed during downstream training")
    hidden = cfg.online_hide_dims if setting == "online" else 0
    returns = cell_returns(agent, env_id, cfg.eval_episodes, seed, hidden)
    ref = zoo_reference(env_id)
    return {
        **cell,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "score": normalized_score(float(returns.mean()), reference=ref),
        "encoder_changed": not unchanged,
        "downstream_seconds": seconds,
        "pretrain_seconds": pre["seconds"],
        "pretrain_final": {
            k: v for k, v in (pre["history"][-1] if pre["history"] else {}).items() if k != "step"
        },
        "curve": curve,
    }
