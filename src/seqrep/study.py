"""Representation Matters (Yang & Nachum 2021), reproduced: pretrain a state encoder on offline
trajectories with each objective, then measure what it buys downstream.

A study is a grid of cells ``environment x objective x downstream setting x mode x seed``:

* data (per environment, collected once with the behaviour zoo, kept as D4RL-layout HDF5 in the
  study folder): a large low-quality set (``pretrain_data``, medium-replay-like by default), a
  small expert set (``expert_episodes`` episodes) and the offline-RL set (medium-replay-like);
* pretraining: every objective trains the same StateEncoder for the same steps on the same
  batches; ``none`` is no pretraining (random init, trained end to end downstream);
* ``imitation``: behaviour cloning on the expert episodes, encoder frozen or fine-tuned;
  ``offline``: TD3+BC on the offline set; ``online``: SAC from the environment's reward.

Every finished cell is appended to ``cells.jsonl``; a rerun skips finished cells and recomputes
an interrupted one from its seed, so a killed study resumes to the same table. Scores are
normalised with the zoo's own (random, expert) returns for the v5 tasks.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.evaluate import bootstrap_ci, interquartile_mean
from seqrep.methods.states import (
    CONTRASTIVE_OBJECTIVES,
    STATE_OBJECTIVES,
)
from seqrep.nets import StateEncoder
from seqrep.rl.envs import evaluate_policy
from seqrep.rl.offline import BC_LOSSES, TD3BC, BehaviourCloning
from seqrep.rl.scores import normalized_score
from seqrep.rl.zoo import zoo_reference
from seqrep.runs import (
    Prepared,
    RunDir,
    RunDirError,
    atomic_write_text,
    batch_to,
    check_options,
    progress_bar,
    resolve_device,
)
from seqrep.sweep import connect, stream
from seqrep.train_rl import SACRunConfig, prepare_sac, train_sac, zoo_dataset
from seqrep.train_states import pretrain_state_encoder

__all__ = [
    "PROFILES",
    "PreparedStudy",
    "StudyConfig",
    "check_cell_filter",
    "finished_cells",
    "headline",
    "merge_studies",
    "parse_cell_filter",
    "prepare_study",
    "profile_config",
    "run_study",
    "summarise_study",
    "write_study_report",
]

SETTINGS = ("imitation", "offline", "online")


@dataclass
class StudyConfig:
    """One study grid; ``seqrep study --profile quick|full|low-data`` starts from
    :data:`PROFILES`."""

    envs: tuple[str, ...] = field(
        default=("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"),
        metadata={"help": "gymnasium ids with a zoo entry"},
    )
    objectives: tuple[str, ...] = field(
        default=("none", *STATE_OBJECTIVES),
        metadata={"help": "objectives pretrained and run with BC ('none': no pretraining)"},
    )
    settings: tuple[str, ...] = field(
        default=("imitation", "offline", "online"), metadata={"help": "imitation, offline, online"}
    )
    modes: tuple[str, ...] = field(
        default=("frozen", "finetune"), metadata={"help": "encoder frozen / fine-tuned in BC"}
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "training seeds"})
    pretrain_data: str = field(
        default="medium-replay", metadata={"help": "zoo level of the pretraining set"}
    )
    pretrain_transitions: int = field(default=100_000, metadata={"help": "pretraining set size"})
    expert_episodes: int = field(default=10, metadata={"help": "expert episodes for BC"})
    bc_episodes: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "the data-efficiency axis: imitation cells for each of these numbers of "
            "expert episodes (the first N of the expert set), e.g. 1,2,5,10; empty: "
            "--expert-episodes alone"
        },
    )
    pretrain_steps: int = field(default=3000, metadata={"help": "pretraining gradient steps"})
    batch_size: int = field(default=64, metadata={"help": "pretraining windows per batch"})
    window: int = field(default=8, metadata={"help": "steps per pretraining window"})
    feature_dim: int = field(
        default=64, metadata={"help": "representation size (the paper's code: 256)"}
    )
    pretrain_expert_fraction: float = field(
        default=0.0,
        metadata={
            "help": "share of each pretraining batch drawn from the expert set (the paper's "
            "code: about 0.1)"
        },
    )
    bc_loss: str = field(
        default="mse",
        metadata={"help": "BC loss: mse, gaussian, or tanh_gaussian (the paper's, + entropy)"},
    )
    hidden: int = field(default=256, metadata={"help": "encoder hidden units"})
    lr: float = field(default=3e-4, metadata={"help": "pretraining learning rate"})
    bc_steps: int = field(default=5000, metadata={"help": "behaviour-cloning steps"})
    offline_steps: int = field(default=10_000, metadata={"help": "TD3+BC steps"})
    online_steps: int = field(default=30_000, metadata={"help": "SAC environment steps"})
    offline_objectives: tuple[str, ...] = field(
        default=("none", "cpc", "temporal", "acl", "autoencoder"),
        metadata={"help": "objectives run with TD3+BC"},
    )
    offline_modes: tuple[str, ...] = field(
        default=("finetune",), metadata={"help": "encoder modes with TD3+BC"}
    )
    online_envs: tuple[str, ...] = field(
        default=("Hopper-v5",), metadata={"help": "environments run online (SAC is costly)"}
    )
    online_objectives: tuple[str, ...] = field(
        default=("none", "temporal", "acl"), metadata={"help": "objectives run online"}
    )
    online_modes: tuple[str, ...] = field(
        default=("finetune",), metadata={"help": "encoder modes with SAC"}
    )
    online_hide_dims: int = field(
        default=0,
        metadata={
            "help": "online: zero N random state dimensions every step, also in evaluation "
            "(the paper's partial observability: 1)"
        },
    )
    eval_episodes: int = field(default=10, metadata={"help": "evaluation episodes per cell"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})

    def validate(self) -> None:
        unknown = set(self.objectives + self.offline_objectives + self.online_objectives) - {
            "none",
            *STATE_OBJECTIVES,
        }
        if unknown:
            raise ValueError(
                f"unknown objectives {sorted(unknown)}; choose from none, "
                + ", ".join(STATE_OBJECTIVES)
            )
        if set(self.settings) - set(SETTINGS):
            raise ValueError(f"settings must be among {', '.join(SETTINGS)}: {self.settings}")
        for modes in (self.modes, self.offline_modes, self.online_modes):
            if set(modes) - {"frozen", "finetune"}:
                raise ValueError(f"modes must be among frozen, finetune: {modes}")
        from seqrep.rl.zoo import zoo_index

        zoo_envs = sorted(zoo_index())
        missing = [e for e in self.envs if e not in zoo_envs]
        if missing:
            raise ValueError(
                f"--envs {','.join(missing)}: the study needs the behaviour zoo's policies and "
                f"the zoo has none for it; choose among {', '.join(zoo_envs) or '(empty zoo)'} "
                "or build a zoo of your own (SEQREP_ZOO, see README)"
            )
        if "online" in self.settings and set(self.online_envs) - set(self.envs):
            raise ValueError(
                f"--online-envs {','.join(self.online_envs)} must be among --envs "
                f"{','.join(self.envs)}; pass --online-envs too"
            )
        check_options(
            self,
            positive=(
                "pretrain_transitions",
                "expert_episodes",
                "pretrain_steps",
                "batch_size",
                "window",
                "feature_dim",
                "hidden",
                "lr",
                "bc_steps",
                "offline_steps",
                "online_steps",
                "eval_episodes",
            ),
            non_negative=("online_hide_dims",),
            choices={"bc_loss": BC_LOSSES},
        )
        if not 0 <= self.pretrain_expert_fraction < 1:
            raise ValueError(
                "--pretrain-expert-fraction is the expert share of a pretraining batch, in "
                f"[0, 1); got {self.pretrain_expert_fraction}"
            )
        if not self.seeds:
            raise ValueError("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2")
        if any(not 1 <= n <= self.expert_episodes for n in self.bc_episodes):
            raise ValueError(
                f"--bc-episodes {','.join(map(str, self.bc_episodes))}: each must lie in "
                f"[1, --expert-episodes {self.expert_episodes}] (the expert set they are cut from)"
            )
        if self.pretrain_expert_fraction and (
            min(self.bc_episodes, default=self.expert_episodes) < self.expert_episodes
        ):
            raise ValueError(
                "--pretrain-expert-fraction mixes all --expert-episodes into pretraining, so "
                "an imitation cell with fewer --bc-episodes would be pretrained on expert data "
                "its BC is not given; use one or the other"
            )


# What the full profile cuts to fit about 16 CPU-hours, put back: 200k pretraining steps and a
# 256-d representation (the paper's code), its tanh-Gaussian BC, 1M downstream steps.
PAPER_SIZED_COMMAND = (
    "seqrep study --profile full --pretrain-steps 200000 --feature-dim 256 "
    "--bc-loss tanh_gaussian --bc-steps 1000000 --offline-steps 1000000 "
    "--online-steps 1000000 --device cuda --jobs 8 --out runs/study-paper"
)

PROFILES: dict[str, StudyConfig] = {
    # The regime the paper's claim is about is the main axis: imitation at 1, 2, 5 and 10 expert
    # episodes (the first N of one 10-episode set), every objective frozen and fine-tuned;
    # TD3+BC on five objectives; SAC on Hopper-v5; 5 seeds, 3 tasks. Cost, measured by the
    # cells' own clocks (two workers on 2 cores, 2026-12-05): 255 encoders 2.2 h, 2,100 BC
    # cells 11.7 h, TD3+BC 2.6 h, SAC 2.1 h: 18.6 CPU-hours, resumable across sittings.
    # Online SAC hides one random state dimension every step, as the paper's online setting:
    # on the full state a representation has little to add.
    "full": StudyConfig(bc_episodes=(1, 2, 5, 10), online_hide_dims=1),
    # The data-efficiency axis alone (about 12 CPU-hours): the full profile's imitation cells.
    "low-data": StudyConfig(settings=("imitation",), bc_episodes=(1, 2, 5, 10)),
    # Under 20 minutes on 2 CPU cores (about 6 with --jobs 2): one environment, imitation only,
    # three seeds, and 2 expert episodes: with 10, BC from scratch already reaches the expert on
    # Hopper-v5 (measured 98.6), which leaves no room to see what a representation buys.
    "quick": StudyConfig(
        envs=("Hopper-v5",),
        objectives=(
            "none",
            "cpc",
            "temporal",
            "acl",
            "triplet",
            "forward",
            "inverse",
            "autoencoder",
        ),
        settings=("imitation",),
        modes=("frozen",),
        seeds=(0, 1, 2),
        expert_episodes=2,
        pretrain_transitions=30_000,
        pretrain_steps=1500,
        bc_steps=3000,
        eval_episodes=5,
    ),
}


# ----------------------------------------------------------------------------- data
def _study_data(
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
def _encoder_checkpoint(env_id: str, objective: str, seed: int) -> str:
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


def _encoder_for(
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
        name = _encoder_checkpoint(env_id, objective, seed)
        state = run.load_checkpoint(name)
        if state is None:
            state = pretrained_encoder_state(cfg, objective, seed, data)
            run.save_checkpoint(state, name)
    enc = StateEncoder(obs_dim, cfg.feature_dim, cfg.hidden)
    enc.load_state_dict(state["encoder"])
    return enc, {"seconds": state["seconds"], "history": state["history"]}


def _evaluate(agent: Any, env_id: str, episodes: int, seed: int, hide_dims: int = 0) -> np.ndarray:
    """Returns of the deterministic policy (SAC's mean action; BC / TD3+BC are deterministic)."""
    return evaluate_policy(env_id, agent.numpy_policy(), episodes, 10_000 + seed, hide_dims)


def _run_cell(
    cfg: StudyConfig,
    cell: dict[str, Any],
    data: dict[str, TrajectoryDataset],
    folder: Path,
    encoder_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    env_id, objective, setting, mode, seed = (
        cell[k] for k in ("env", "objective", "setting", "mode", "seed")
    )
    encoder, pre = _encoder_for(cfg, env_id, objective, seed, data, RunDir(folder), encoder_state)
    device = resolve_device(cfg.device)
    frozen = mode == "frozen"
    obs_dim, act_dim = data["expert"].obs_dim, data["expert"].act_dim
    hook = {"encoder": encoder, "feature_dim": cfg.feature_dim, "freeze_encoder": frozen}
    before = copy.deepcopy(encoder.state_dict())
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    curve: list[dict[str, float]] = []
    agent: Any
    if setting == "imitation":
        expert = data["expert"]
        if cell.get("episodes") is not None:
            expert = expert.first_episodes(cell["episodes"])
        agent = BehaviourCloning(obs_dim, act_dim, loss=cfg.bc_loss, **hook).to(device)
        for _ in range(cfg.bc_steps):
            agent.update(batch_to(expert.sample_transitions(256, gen), device))
    elif setting == "offline":
        agent = TD3BC(obs_dim, act_dim, **hook).to(device)
        for _ in range(cfg.offline_steps):
            agent.update(batch_to(data["offline"].sample_transitions(256, gen), device))
    else:
        from seqrep.rl.sac import SAC

        run_cfg = SACRunConfig(
            env=env_id,
            total_steps=cfg.online_steps,
            learning_starts=min(5000, cfg.online_steps // 4),  # CleanRL's 5000 when it fits
            eval_every=max(1, cfg.online_steps // 10),
            eval_episodes=cfg.eval_episodes,
            # A 100k-step cell takes hours on a CPU core: it checkpoints (replay included) at
            # every tenth of its steps and a rerun of the study resumes it exactly.
            checkpoint_every=max(1, cfg.online_steps // 10),
            seed=seed,
            device=cfg.device,
            hide_dims=cfg.online_hide_dims,
        )
        agent = SAC(obs_dim, act_dim, run_cfg.sac(), **hook)
        name = f"{env_id}-{objective}-{mode}-s{seed}"
        run = RunDir.open(folder / "online" / name, prepare_sac(run_cfg))
        _, summary = train_sac(run_cfg, run, agent=agent, quiet=True)
        curve = [
            {"step": e["step"], "return": e["eval_return_mean"]} for e in summary["evaluations"]
        ]
    seconds = time.perf_counter() - t0
    unchanged = all(torch.equal(v, encoder.state_dict()[k].cpu()) for k, v in before.items())
    if frozen and not unchanged:
        raise RuntimeError(f"{cell}: a frozen encoder changed during downstream training")
    hidden = cfg.online_hide_dims if setting == "online" else 0
    returns = _evaluate(agent, env_id, cfg.eval_episodes, seed, hidden)
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


def _cells(cfg: StudyConfig) -> list[dict[str, Any]]:
    cells = []
    grid = {
        "imitation": (cfg.envs, cfg.objectives, cfg.modes),
        "offline": (cfg.envs, cfg.offline_objectives, cfg.offline_modes),
        "online": (cfg.online_envs, cfg.online_objectives, cfg.online_modes),
    }
    # Setting-major, cheapest first: a partly finished study already holds the imitation
    # comparison on every environment.
    for setting in cfg.settings:
        envs, objectives, setting_modes = grid[setting]
        for env_id in cfg.envs:
            if env_id not in envs:
                continue
            for objective in objectives:
                # With no pretraining there is nothing to freeze: the encoder trains end to end.
                modes = ("scratch",) if objective == "none" else setting_modes
                # The data-efficiency axis: one imitation cell per expert-set size (the key is
                # absent without the axis, so cells files of earlier studies still resume).
                sizes: tuple[int | None, ...] = (
                    cfg.bc_episodes if setting == "imitation" and cfg.bc_episodes else (None,)
                )
                for mode in modes:
                    for episodes in sizes:
                        for seed in cfg.seeds:
                            cell = {
                                "env": env_id,
                                "setting": setting,
                                "objective": objective,
                                "mode": mode,
                                "seed": seed,
                            }
                            cells.append(
                                cell if episodes is None else {**cell, "episodes": episodes}
                            )
    return cells


# The fields that name a cell, in the order of its key; what --only can select on. Every cell
# has the others; ``episodes`` only on the data-efficiency axis.
CELL_FIELDS = ("env", "setting", "objective", "mode", "seed", "episodes")
CellFilter = dict[str, frozenset[str]]


def _cell_key(c: dict[str, Any]) -> tuple[Any, ...]:
    return (*(c[k] for k in CELL_FIELDS[:-1]), c.get("episodes"))


def parse_cell_filter(terms: tuple[str, ...] | list[str]) -> CellFilter:
    """``("env=Walker2d-v5,Hopper-v5", "setting=imitation")`` -> {field: accepted values}: a
    cell is selected when every named field holds one of its values (compared as text).

    Raises:
        ValueError: a term is not ``FIELD=VALUE[,VALUE...]`` or names no cell field.
    """
    selected: CellFilter = {}
    for term in terms:
        name, sep, values = term.partition("=")
        name = name.strip()
        accepted = frozenset(v.strip() for v in values.split(",") if v.strip())
        if not sep or not accepted:
            raise ValueError(f"--only {term!r}: write FIELD=VALUE[,VALUE...], e.g. env=Hopper-v5")
        if name not in CELL_FIELDS:
            raise ValueError(
                f"--only {term!r}: unknown field {name!r}; choose {', '.join(CELL_FIELDS)}"
            )
        selected[name] = selected.get(name, accepted) & accepted
    return selected


def _selected(cell: dict[str, Any], only: CellFilter | None) -> bool:
    return not only or all(str(cell.get(k)) in values for k, values in only.items())


def check_cell_filter(cfg: StudyConfig, only: CellFilter) -> int:
    """The number of ``cfg``'s cells that ``only`` selects (all of them when it is empty).

    Raises:
        ValueError: it selects none (a misspelt value, say), with the values the grid holds.
    """
    cells = _cells(cfg)
    count = sum(_selected(c, only) for c in cells)
    if count == 0:
        held = "; ".join(
            f"{k}: {', '.join(dict.fromkeys(str(c.get(k)) for c in cells))}" for k in only
        )
        raise ValueError(f"--only selects none of the study's {len(cells)} cells ({held})")
    return count


def _owners(cfg: StudyConfig, jobs: int) -> dict[tuple[Any, ...], int]:
    """Which worker runs each cell: round-robin over pretrained encoders (env, objective, seed),
    so that every cell needing one encoder runs in the worker that trains it."""
    encoders = list(dict.fromkeys((c["env"], c["objective"], c["seed"]) for c in _cells(cfg)))
    worker = {e: i % jobs for i, e in enumerate(encoders)}
    return {_cell_key(c): worker[(c["env"], c["objective"], c["seed"])] for c in _cells(cfg)}


def _read_rows(folder: Path) -> list[dict[str, Any]]:
    """The finished cells in ``folder``'s cells.jsonl, each cell once (its first row).

    A cell can be appended twice: a worker whose study process was killed finishes the cell it
    was running, while a resumed study runs that cell again. A cell's result depends only on its
    seed, so the first row stands and a repeat would only count one seed twice in the summary.
    """
    path = folder / "cells.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i < len(lines) - 1:  # only the line being appended (or torn by a kill) may be cut
                raise ValueError(f"{path}: line {i + 1} is not JSON; the file is damaged") from None
            continue
        rows.setdefault(_cell_key(row), row)
    return list(rows.values())


def _append_row(folder: Path, row: dict[str, Any]) -> None:
    # One write per finished cell, in append mode: workers never interleave lines.
    with (folder / "cells.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")


def _todo(cfg: StudyConfig, folder: Path, only: CellFilter | None) -> list[dict[str, Any]]:
    """The selected cells of ``cfg`` that ``folder`` has not finished, in grid order."""
    done = {_cell_key(r) for r in _read_rows(folder)}
    return [c for c in _cells(cfg) if _cell_key(c) not in done and _selected(c, only)]


def _run_worker(
    cfg: StudyConfig,
    folder: Path,
    worker: int,
    jobs: int,
    quiet: bool,
    only: CellFilter | None = None,
    parent: int | None = None,
) -> None:
    """Run this worker's unfinished cells, appending each finished row to cells.jsonl.

    ``parent``: the pid of the study process that started this worker. Once that process is
    gone (killed; its lock on the folder went with it, so a resumed study may be running), the
    worker starts no further cell.
    """
    if jobs > 1:
        torch.set_num_threads(1)  # one core per worker
    owner = _owners(cfg, jobs)
    todo = [c for c in _todo(cfg, folder, only) if owner[_cell_key(c)] == worker]
    data_cache: dict[str, dict[str, TrajectoryDataset]] = {}
    label = "study cells" if jobs == 1 else f"study cells (worker {worker + 1}/{jobs})"
    with progress_bar(label, len(todo), disable=quiet) as advance:
        for cell in todo:
            if parent is not None and os.getppid() != parent:
                return  # orphaned: the study that owned the folder was killed
            env_id = cell["env"]
            if env_id not in data_cache:
                data_cache[env_id] = _study_data(cfg, env_id, folder)
            _append_row(folder, _run_cell(cfg, cell, data_cache[env_id], folder))
            advance(1)


@dataclass
class PreparedStudy(Prepared):
    """``seqrep study``'s work, checked: the config, the workers (``jobs``) or Ray cluster
    (``ray_address``, connected), the cell filter and the folders to merge (each of the same
    study)."""

    jobs: int = 1
    ray_address: str | None = None
    only: CellFilter | None = None
    merge: tuple[Path, ...] = ()


def prepare_study(
    cfg: StudyConfig,
    *,
    jobs: int = 1,
    ray_address: str | None = None,
    only: CellFilter | None = None,
    merge: tuple[str, ...] = (),
) -> PreparedStudy:
    """Validate ``cfg`` and how the study will run (``jobs`` >= 1, the filter selects cells,
    each folder to merge holds this study, Ray reachable); nothing is written.

    Raises:
        ValueError, RunDirError, ImportError: what is wrong, in one line.
    """
    cfg.validate()
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1 (worker processes, one core each), got {jobs}")
    if only:
        check_cell_filter(cfg, only)
    for source in merge:  # a folder of another study must fail before --out is written
        try:
            RunDir.attach(source, "study", cfg)
        except RunDirError as e:
            raise RunDirError(f"--merge {source}: {e}") from None
    if ray_address is not None:
        connect(ray_address)  # Ray missing or unreachable: say so before the folder is touched
    return PreparedStudy("study", cfg, jobs, ray_address, only, tuple(Path(m) for m in merge))


def run_study(
    cfg: StudyConfig,
    run: RunDir,
    *,
    quiet: bool = False,
    jobs: int = 1,
    ray_address: str | None = None,
    only: CellFilter | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) every cell of ``cfg`` into ``run``; returns all finished cell rows.

    ``jobs`` > 1 runs that many worker processes (one core each) after collecting the data sets
    once; ``ray_address`` runs every pretraining and every cell as a Ray task instead (see
    :mod:`seqrep.sweep`). Each cell's result depends only on its seed, not on who ran it.
    ``only`` (:func:`parse_cell_filter`) runs just the selected cells, e.g. one machine's share
    of a study whose folders :func:`merge_studies` joins afterwards.
    """
    cfg.validate()
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1 (worker processes, one core each), got {jobs}")
    if ray_address is not None:
        _run_on_ray(cfg, run, ray_address, quiet, only)
    elif jobs == 1:
        _run_worker(cfg, run.path, 0, 1, quiet, only)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        for env_id in dict.fromkeys(c["env"] for c in _todo(cfg, run.path, only)):
            _study_data(cfg, env_id, run.path)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = [
                pool.submit(_run_worker, cfg, run.path, i, jobs, quiet or i > 0, only, os.getpid())
                for i in range(jobs)
            ]
            for future in futures:
                future.result()  # re-raises a worker's error
    return finished_cells(cfg, run)


def _ray_cell(
    cfg: StudyConfig,
    cell: dict[str, Any],
    data: dict[str, TrajectoryDataset],
    folder: str,
    encoder_state: dict[str, Any] | None,
) -> dict[str, Any]:
    torch.set_num_threads(1)  # one core per task, as Ray reserved
    return _run_cell(cfg, cell, data, Path(folder), encoder_state)


def _ray_pretrain(
    cfg: StudyConfig, objective: str, seed: int, data: dict[str, TrajectoryDataset]
) -> dict[str, Any]:
    torch.set_num_threads(1)
    return pretrained_encoder_state(cfg, objective, seed, data)


def _run_on_ray(
    cfg: StudyConfig, run: RunDir, address: str, quiet: bool, only: CellFilter | None = None
) -> None:
    """Every unfinished cell as a Ray task, fed the data sets (collected once, here) and its
    encoder (from the cache, or from a pretraining task); the driver caches each encoder and
    appends each row as it arrives."""
    ray = connect(address)
    gpus = 1 if resolve_device(cfg.device) == "cuda" else 0
    pretrain_task = ray.remote(num_cpus=1, num_gpus=gpus)(_ray_pretrain)
    cell_task = ray.remote(num_cpus=1, num_gpus=gpus)(_ray_cell)
    todo = _todo(cfg, run.path, only)
    data = {
        env: ray.put(_study_data(cfg, env, run.path))
        for env in dict.fromkeys(c["env"] for c in todo)
    }
    encoders: dict[tuple[Any, ...], Any] = {}
    tasks: dict[Any, tuple[str, Any]] = {}
    for cell in todo:
        key = (cell["env"], cell["objective"], cell["seed"])
        if cell["objective"] != "none" and key not in encoders:
            cached = run.load_checkpoint(_encoder_checkpoint(*key))
            if cached is not None:
                encoders[key] = ray.put(cached)
            else:
                encoders[key] = pretrain_task.remote(cfg, key[1], key[2], data[key[0]])
                tasks[encoders[key]] = ("encoder", key)
        ref = cell_task.remote(cfg, cell, data[cell["env"]], str(run.path), encoders.get(key))
        tasks[ref] = ("cell", cell)
    with progress_bar("study cells (ray)", len(todo), disable=quiet) as advance:
        for (kind, what), result in stream(ray, tasks):
            if kind == "encoder":
                run.save_checkpoint(result, _encoder_checkpoint(*what))
            else:
                _append_row(run.path, result)
                advance(1)


def finished_cells(cfg: StudyConfig, run: RunDir) -> list[dict[str, Any]]:
    """The rows of ``cfg``'s cells that ``run`` has finished so far, in grid order."""
    order = {_cell_key(c): i for i, c in enumerate(_cells(cfg))}
    rows = [r for r in _read_rows(run.path) if _cell_key(r) in order]
    return sorted(rows, key=lambda r: order[_cell_key(r)])


def merge_studies(cfg: StudyConfig, run: RunDir, sources: list[Path]) -> int:
    """Join the cells that other folders of the same study finished (for example, shares run
    on other machines with ``--only``) into ``run``: each finished cell ``run`` lacks is
    appended to its cells.jsonl, each pretrained encoder it lacks is copied into its
    checkpoints. The sources are only read. Returns the number of cells added.

    Raises:
        RunDirError: a source holds no study, or a study of another configuration.
    """
    grid = {_cell_key(c) for c in _cells(cfg)}
    done = {_cell_key(r) for r in _read_rows(run.path)}
    added: list[dict[str, Any]] = []
    for source in sources:
        other = RunDir.attach(source, "study", cfg)  # refuses another configuration
        for row in _read_rows(other.path):
            if _cell_key(row) in grid and _cell_key(row) not in done:
                done.add(_cell_key(row))
                added.append(row)
        for encoder in sorted(other.checkpoints.glob("encoder-*.pt")):
            target = run.checkpoints / encoder.name
            if not target.exists():
                tmp = target.with_suffix(".pt.tmp")
                shutil.copyfile(encoder, tmp)
                tmp.replace(target)  # a kill never leaves half a checkpoint under its name
    if added:  # one rewrite, so that a kill keeps either the old file or the merged one
        path = run.path / "cells.jsonl"
        kept = path.read_text() if path.exists() else ""
        kept = kept[: kept.rfind("\n") + 1]  # a line torn by a kill is no finished cell
        atomic_write_text(path, kept + "".join(json.dumps(r) + "\n" for r in added))
    return len(added)


# ----------------------------------------------------------------------------- report
def summarise_study(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (env, setting, objective, mode, expert episodes): mean, 95% bootstrap CI, IQM of the
    normalised score over seeds, and the pretraining's final metrics and seconds. ``episodes``
    is None outside the data-efficiency axis."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["env"], r["setting"], r["objective"], r["mode"], r.get("episodes"))
        groups.setdefault(key, []).append(r)
    out = []
    for (env_id, setting, objective, mode, episodes), rs in groups.items():
        scores = np.array([r["score"] for r in rs])
        low, high = bootstrap_ci(scores)
        final = rs[0]["pretrain_final"]
        out.append(
            {
                "env": env_id,
                "setting": setting,
                "objective": objective,
                "mode": mode,
                "episodes": episodes,
                "seeds": len(rs),
                "score_mean": float(scores.mean()),
                "score_std": float(scores.std()),
                "ci_low": low,
                "ci_high": high,
                "score_iqm": interquartile_mean(scores),
                "return_mean": float(np.mean([r["return_mean"] for r in rs])),
                "pretrain_seconds": float(np.mean([r["pretrain_seconds"] for r in rs])),
                "pretrain_metric": final.get("accuracy", final.get("prediction_error")),
            }
        )
    return out


# A normalised score whose whole CI lies above this is at the expert: nothing left to gain.
CEILING = 95.0
# The data-efficiency axis states the headline at the fewest expert episodes where BC from
# scratch is below this: the "mediocre on its own" learner the paper's claim is about.
MEDIOCRE = 80.0


def _headline_size(cells: list[dict[str, Any]]) -> int | None:
    """On the data-efficiency axis, the expert-set size the headline is stated at: the smallest
    where BC from scratch scores below :data:`MEDIOCRE`, else the smallest (None: no axis)."""
    sizes = sorted({s["episodes"] for s in cells if s.get("episodes") is not None})
    if not sizes:
        return None
    scratch = {s["episodes"]: s["score_mean"] for s in cells if s["objective"] == "none"}
    return next((n for n in sizes if scratch.get(n, 100.0) < MEDIOCRE), sizes[0])


# The reinforcement learners of the study's RL settings, as the headline names them.
RL_LEARNERS = {"offline": "offline RL (TD3+BC)", "online": "online RL (SAC)"}


def headline(summary: list[dict[str, Any]]) -> list[str]:
    """The paper's headline, checked per environment on the imitation cells: does BC with the
    best frozen contrastive encoder beat BC from scratch outside the 95% CIs, and does it beat
    the best frozen non-contrastive baseline (forward, inverse, autoencoder, VAE)? Then the
    same question for the best fine-tuned contrastive encoder, the other way a user would take
    a pretrained encoder. On the data-efficiency axis, at the fewest expert episodes where BC
    from scratch is mediocre. Then, per environment, offline RL (TD3+BC) and online RL (SAC):
    the best pretrained encoder, frozen or fine-tuned, against the same learner from scratch."""
    lines = []
    for env_id in dict.fromkeys(s["env"] for s in summary):
        cells = [s for s in summary if s["env"] == env_id and s["setting"] == "imitation"]
        size = _headline_size(cells)
        if size is not None:
            cells = [s for s in cells if s.get("episodes") == size]
        scratch = [s for s in cells if s["objective"] == "none"]
        frozen = [s for s in cells if s["mode"] == "frozen"]
        contrastive = [s for s in frozen if s["objective"] in CONTRASTIVE_OBJECTIVES]
        baselines = [s for s in frozen if s["objective"] not in CONTRASTIVE_OBJECTIVES]
        if not scratch or not contrastive:
            continue
        best, none = max(contrastive, key=lambda s: s["score_mean"]), scratch[0]
        at = "" if size is None else f" with {size} expert episode{'s' * (size > 1)}"
        text = (
            f"- {env_id}{at}: best frozen contrastive encoder `{best['objective']}` "
            f"{_fmt_ci(best)} vs BC from scratch {_fmt_ci(none)}: "
            + (
                "beats it outside the CIs"
                if _ci_above(best, none)
                else "does **not** beat it outside the CIs"
            )
        )
        if baselines:
            base = max(baselines, key=lambda s: s["score_mean"])
            text += (
                f"; best non-contrastive baseline `{base['objective']}` "
                f"{_fmt(base['score_mean'])}: "
                + ("below" if best["score_mean"] > base["score_mean"] else "**not below**")
            )
        tuned = [
            s for s in cells if s["mode"] == "finetune" and s["objective"] in CONTRASTIVE_OBJECTIVES
        ]
        if tuned:
            top = max(tuned, key=lambda s: s["score_mean"])
            text += (
                f"; best fine-tuned contrastive encoder `{top['objective']}` {_fmt_ci(top)}: "
                + (
                    "beats scratch outside the CIs"
                    if _ci_above(top, none)
                    else "does **not** beat scratch outside the CIs"
                )
            )
        if size is not None and none["score_mean"] >= MEDIOCRE:
            text += (
                f"; BC from scratch is not mediocre (below {MEDIOCRE:.0f}) at any expert-set size "
                "here, so the paper's regime (a learner mediocre on its own) is not reached"
            )
        if none["ci_low"] >= CEILING:
            text += (
                f"; BC from scratch is already at the expert (CI above {CEILING:.0f}), so this "
                "setting leaves no room for a representation to help"
            )
        lines.append(text + ".")
    for env_id in dict.fromkeys(s["env"] for s in summary):
        for setting, learner in RL_LEARNERS.items():
            cells = [s for s in summary if s["env"] == env_id and s["setting"] == setting]
            scratch = [s for s in cells if s["objective"] == "none"]
            pretrained = [s for s in cells if s["objective"] != "none"]
            if not scratch or not pretrained:
                continue
            best, none = max(pretrained, key=lambda s: s["score_mean"]), scratch[0]
            verdict = (
                "beats it outside the CIs"
                if _ci_above(best, none)
                else "lies **below** it outside the CIs"
                if _ci_above(none, best)
                else "does **not** beat it outside the CIs"
            )
            lines.append(
                f"- {env_id}, {learner}: best pretrained encoder `{best['objective']}` "
                f"({best['mode']}) {_fmt_ci(best)} vs from scratch {_fmt_ci(none)}: {verdict}."
            )
    return lines


def _efficiency_axis(
    summary: list[dict[str, Any]], env_id: str
) -> tuple[list[dict[str, Any]], list[int]]:
    """``env_id``'s imitation rows on the data-efficiency axis and its expert-set sizes
    (ascending); no rows when the axis has fewer than two sizes."""
    cells = [
        s
        for s in summary
        if s["env"] == env_id and s["setting"] == "imitation" and s["episodes"] is not None
    ]
    sizes = sorted({s["episodes"] for s in cells})
    return (cells, sizes) if len(sizes) >= 2 else ([], [])


def efficiency_tables(summary: list[dict[str, Any]]) -> str:
    """Per environment on the data-efficiency axis, one row per (objective, mode) and one column
    per expert-set size: mean [95% CI], marked up (down) where the CI lies wholly above (below)
    BC from scratch's at that size. Empty without the axis."""
    out = []
    for env_id in dict.fromkeys(s["env"] for s in summary):
        cells, sizes = _efficiency_axis(summary, env_id)
        if not cells:
            continue
        scratch = {s["episodes"]: s for s in cells if s["objective"] == "none"}
        by_key: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        for s in cells:
            by_key.setdefault((s["objective"], s["mode"]), {})[s["episodes"]] = s

        def entry(s: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
            if s is None:
                return "-"
            text = _fmt_ci(s)
            if base is not None and s is not base:
                if _ci_above(s, base):
                    text += " ↑"
                elif _ci_above(base, s):
                    text += " ↓"
            return text

        header = " | ".join(f"{n} ep" for n in sizes)
        lines = [
            f"### {env_id}",
            "",
            f"| objective | mode | {header} |",
            "|---|---|" + "---|" * len(sizes),
        ]
        for (objective, mode), row in by_key.items():
            values = " | ".join(entry(row.get(n), scratch.get(n)) for n in sizes)
            lines.append(f"| {objective} | {mode} | {values} |")
        out.append("\n".join(lines))
    if not out:
        return ""
    return (
        "\n## Imitation against expert data\n\nNormalised score, mean [95% CI] over seeds, "
        "per number of expert episodes; ↑ (↓): the CI lies wholly above (below) BC from "
        "scratch's at that size.\n\n" + "\n\n".join(out) + "\n"
    )


def _online_curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict]]:
    """Online cells with a learning curve, grouped by (env, objective, mode) in first-seen
    order; one row per seed."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        if r["setting"] == "online" and r["curve"]:
            groups.setdefault((r["env"], r["objective"], r["mode"]), []).append(r)
    return groups


def online_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Online cells summarised over the whole learning curve, not only its last point: per
    (env, objective, mode), the normalised score averaged over every evaluation (the area under
    the curve, which a single noisy final evaluation hides), mean over seeds with a 95% CI."""
    lines = []
    for key, rs in _online_curves(rows).items():
        reference = zoo_reference(key[0])
        auc = np.array(
            [
                np.mean([normalized_score(p["return"], reference=reference) for p in r["curve"]])
                for r in rs
            ]
        )
        low, high = bootstrap_ci(auc)
        lines.append(
            f"- {key[0]} `{key[1]}` {key[2]}: {_fmt(float(auc.mean()))} "
            f"[{_fmt(low)}, {_fmt(high)}] over {len(rs)} seeds"
        )
    return lines


def _fmt_ci(s: dict[str, Any]) -> str:
    """A summary row's score as ``mean [low, high]``."""
    return f"{_fmt(s['score_mean'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]"


def _ci_above(s: dict[str, Any], base: dict[str, Any]) -> bool:
    """Whether ``s``'s 95% CI lies wholly above ``base``'s."""
    return bool(s["ci_low"] > base["ci_high"])


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def write_study_report(cfg: StudyConfig, run: RunDir, rows: list[dict[str, Any]]) -> str:
    """cells.csv (every cell), summary.csv, report.md with bar charts (95% CIs), pretraining
    curves and online learning curves; returns the Markdown table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = [{k: v for k, v in r.items() if k not in ("curve", "pretrain_final")} for r in rows]
    _write_csv(run, "cells.csv", flat)
    summary = summarise_study(rows)
    _write_csv(run, "summary.csv", summary)
    lines = [
        "| env | setting | objective | mode | expert episodes | seeds | score mean ± std "
        "[95% CI] | IQM | return | pretrain s | pretrain acc / error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        episodes = cfg.expert_episodes if s["episodes"] is None else s["episodes"]
        lines.append(
            f"| {s['env']} | {s['setting']} | {s['objective']} | {s['mode']} | "
            f"{episodes if s['setting'] == 'imitation' else '-'} | {s['seeds']} | "
            f"{_fmt(s['score_mean'])} ± {_fmt(s['score_std'])} "
            f"[{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}] | "
            f"{_fmt(s['score_iqm'])} | {_fmt(s['return_mean'])} | "
            f"{_fmt(s['pretrain_seconds'])} | {_fmt(s['pretrain_metric'], 3)} |"
        )
    table = "\n".join(lines)
    plots = []
    for env_id in dict.fromkeys(s["env"] for s in summary):
        for setting in dict.fromkeys(s["setting"] for s in summary if s["env"] == env_id):
            sel = [s for s in summary if s["env"] == env_id and s["setting"] == setting]
            if setting == "imitation" and any(s["episodes"] is not None for s in sel):
                continue  # a bar per (objective, mode, size) is unreadable: the panels show it
            fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(sel)), 4))
            x = np.arange(len(sel))
            mean = np.array([s["score_mean"] for s in sel])
            err = np.array(
                [[m - s["ci_low"], s["ci_high"] - m] for m, s in zip(mean, sel, strict=True)]
            ).T
            mode_colour = {"frozen": "C0", "finetune": "C1"}
            colors = [mode_colour.get(s["mode"], "gray") for s in sel]
            ax.bar(x, mean, yerr=np.nan_to_num(err), color=colors, capsize=3)
            ax.set_xticks(
                x,
                [
                    f"{s['objective']} {s['mode']}"
                    + ("" if s["episodes"] is None else f" {s['episodes']} ep")
                    for s in sel
                ],
                fontsize=7,
                rotation=40,
                ha="right",
            )
            ax.set(ylabel="normalised score (95% bootstrap CI)", title=f"{env_id}: {setting}")
            fig.tight_layout()
            name = f"scores-{env_id}-{setting}.png"
            fig.savefig(run.path / name, dpi=100)
            plt.close(fig)
            plots.append(name)
    for env_id in cfg.envs:
        if efficiency_plot := _plot_data_efficiency(summary, run.path, env_id):
            plots.append(efficiency_plot)
        if pretraining_plot := _plot_pretraining(cfg, run.path, env_id):
            plots.append(pretraining_plot)
    if groups := _online_curves(rows):
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, rs in groups.items():
            steps = [p["step"] for p in rs[0]["curve"]]
            returns = np.array([[p["return"] for p in r["curve"]] for r in rs])  # [seeds, evals]
            band = np.array([bootstrap_ci(column) for column in returns.T])  # [evals, 2]
            (line,) = ax.plot(steps, returns.mean(axis=0), "o-", label=" ".join(key))
            if len(rs) > 1:
                ax.fill_between(steps, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.15)
        ax.set(
            xlabel="environment step",
            ylabel="evaluation return (mean, 95% CI over seeds)",
            title="online SAC",
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(run.path / "online-curves.png", dpi=100)
        plt.close(fig)
        plots.append("online-curves.png")
    refs = "\n".join(
        f"- {e}: random {zoo_reference(e)[0]:.1f}, expert {zoo_reference(e)[1]:.1f}"
        for e in cfg.envs
    )
    images = "\n\n".join(f"![{p}]({p})" for p in plots)
    diagnostics = _diagnostics_section(cfg, run)
    claims = "\n".join(headline(summary)) or (
        "- No setting has both its learner from scratch and a pretrained encoder yet."
    )
    online_lines = online_summary(rows)
    efficiency = efficiency_tables(summary)
    episodes_text = (
        ", ".join(map(str, cfg.bc_episodes)) + " (the first N of one expert set)"
        if cfg.bc_episodes
        else str(cfg.expert_episodes)
    )
    online_section = (
        "\n## Online RL over the whole curve\n\nNormalised score averaged over every evaluation"
        " of the learning curve (its area), mean over seeds [95% CI]; the table below scores"
        " the last evaluation only.\n\n" + "\n".join(online_lines) + "\n"
        if online_lines
        else ""
    )
    online_note = (
        f" Online curves stop at {cfg.online_steps} environment steps for CPU cost; the first"
        " 100k steps are the fuller picture (`--online-steps 100000`)."
        if cfg.online_steps < 100_000
        else ""
    )
    hidden_note = (
        f", with {cfg.online_hide_dims} random state dimension(s) zeroed at every step, also in"
        " evaluation (the paper's partial observability)"
        if cfg.online_hide_dims
        else " on the full state"
    )
    expert_mix = (
        f"; {cfg.pretrain_expert_fraction:.0%} of each batch from the expert set"
        if cfg.pretrain_expert_fraction
        else ""
    )
    run.write_text(
        "report.md",
        f"""# Representation Matters, reproduced

Pretraining: {cfg.pretrain_steps} steps, {cfg.batch_size} windows of {cfg.window} steps, on
{cfg.pretrain_transitions} transitions of zoo `{cfg.pretrain_data}` data{expert_mix}; encoder MLP
{cfg.hidden}-{cfg.hidden}-{cfg.feature_dim} + LayerNorm for every objective. Imitation: BC
({cfg.bc_steps} steps, `{cfg.bc_loss}` loss) on {episodes_text} zoo-expert episodes. Offline:
TD3+BC ({cfg.offline_steps} steps) on medium-replay-like data. Online: SAC for
{cfg.online_steps} steps{hidden_note}. Scores: 100 (return - random) / (expert - random) with the zoo's own (random, expert) references (not
D4RL's), {cfg.eval_episodes} evaluation episodes per cell; mean over seeds with a 95%
percentile-bootstrap CI, and the interquartile mean.

Cells finished: {len(rows)} of {len(_cells(cfg))} (a study resumes where it stopped).

References used:
{refs}

Where this differs from Yang & Nachum (2021): v5 environments instead of D4RL's v2; data from
seqrep's own behaviour zoo instead of D4RL's files; a CPU budget (the paper pretrains 200k
steps with a 256-unit embedding; downstream budgets are longer there too).{online_note} The paper
reports its comparisons as figures, not tables, so the orderings, not the decimals, are what
compare. The paper-sized run, for a machine with a GPU and many cores:
`{PAPER_SIZED_COMMAND}`.

## The headline, measured

{claims}
{efficiency}{online_section}
## Every setting

{table}

{diagnostics}
{images}
""",
    )
    return table


def representation_diagnostics(cfg: StudyConfig, run: RunDir) -> list[dict[str, Any]]:
    """Why an objective helps or fails, for every cached encoder of the first seed: on the
    expert episodes (never seen in pretraining), the features' effective rank and the held-out
    R^2 of linear probes from the features to the observed state and to the expert's action
    (half the states fit the probes, the other half score them). ``none`` is the random
    encoder every objective starts from."""
    from seqrep.evaluate import effective_rank, linear_probe_r2

    rows = []
    seed = cfg.seeds[0]
    for env_id in cfg.envs:
        try:  # a report of a running study never collects: the study does, in its own time
            data = _study_data(cfg, env_id, run.path, collect=False)
        except FileNotFoundError:
            continue
        states, actions = data["expert"].observations, data["expert"].actions
        order = np.random.default_rng(seed).permutation(len(states))
        fit, score = order[: len(order) // 2], order[len(order) // 2 :]
        for objective in cfg.objectives:
            cached = run.checkpoints / _encoder_checkpoint(env_id, objective, seed)
            if objective != "none" and not cached.exists():
                continue  # not pretrained yet: the report shows what exists
            encoder, _ = _encoder_for(cfg, env_id, objective, seed, data, run)
            with torch.no_grad():
                f = encoder(torch.from_numpy(states)).numpy()
            rows.append(
                {
                    "env": env_id,
                    "objective": objective,
                    "effective_rank": effective_rank(f[score]),
                    "r2_state": linear_probe_r2(f[fit], states[fit], f[score], states[score]),
                    "r2_action": linear_probe_r2(f[fit], actions[fit], f[score], actions[score]),
                }
            )
    return rows


def _diagnostics_section(cfg: StudyConfig, run: RunDir) -> str:
    """The diagnostics table, computed from the folder's encoders; a folder without encoders or
    data (a study's committed cells and files, copied to report again) keeps the table its
    ``diagnostics.csv`` holds from when they were there."""
    rows: list[dict[str, Any]] = representation_diagnostics(cfg, run)
    saved = run.path / "diagnostics.csv"
    if rows:
        _write_csv(run, "diagnostics.csv", rows)
    elif saved.exists():
        with saved.open(newline="") as f:
            rows = [
                {k: v if k in ("env", "objective") else float(v) for k, v in r.items()}
                for r in csv.DictReader(f)
            ]
    if not rows:
        return ""
    lines = [
        "| env | objective | effective rank | R^2 state | R^2 expert action |",
        "|---|---|---|---|---|",
        *(
            f"| {r['env']} | {r['objective']} | {r['effective_rank']:.1f} | "
            f"{r['r2_state']:.3f} | {r['r2_action']:.3f} |"
            for r in rows
        ),
    ]
    return (
        f"""## Why an objective helps or fails: representation diagnostics

First seed's encoders on the expert episodes (unseen in pretraining): effective rank of the
{cfg.feature_dim} features (Roy & Vetterli 2007), and held-out R^2 of linear probes from the
features to the observed state and to the expert's action. `none` is the random encoder.
(`diagnostics.csv`)

"""
        + "\n".join(lines)
        + "\n"
    )


def _panel_grid(
    n: int, width: float, height: float, pad: tuple[float, float] = (0.0, 0.6), **kw: Any
) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels in rows of at most six, each ``width`` x ``height`` inches, plus
    ``pad`` inches (width, height) for titles and legends; spare cells switched off; ``kw``
    goes to ``plt.subplots``. Returns (figure, the n axes)."""
    import matplotlib.pyplot as plt

    ncols = min(6, n)
    nrows = -(-n // ncols)
    size = (width * ncols + pad[0], height * nrows + pad[1])
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, list(axes.flat[:n])


def _plot_data_efficiency(summary: list[dict[str, Any]], folder: Path, env_id: str) -> str | None:
    """Imitation score against expert episodes: one small panel per pretrained objective, its
    frozen and fine-tuned lines beside BC from scratch, each with its 95% CI band (None without
    the data-efficiency axis). Panels rather than one axis: with a dozen objectives on one
    axis, the lines and bands cannot be told apart."""
    cells, sizes = _efficiency_axis(summary, env_id)
    if not cells:
        return None
    import matplotlib.pyplot as plt

    def line(objective: str, mode: str) -> list[dict[str, Any]]:
        chosen = (s for s in cells if (s["objective"], s["mode"]) == (objective, mode))
        return sorted(chosen, key=lambda s: s["episodes"])

    def draw(ax: Any, points: list[dict[str, Any]], colour: str, label: str, **kw: Any) -> None:
        if not points:
            return
        x, mean = [s["episodes"] for s in points], [s["score_mean"] for s in points]
        ax.plot(x, mean, color=colour, marker="o", ms=3, label=label, **kw)
        low = np.nan_to_num([s["ci_low"] for s in points], nan=np.nan_to_num(mean))
        high = np.nan_to_num([s["ci_high"] for s in points], nan=np.nan_to_num(mean))
        ax.fill_between(x, low, high, color=colour, alpha=0.15, lw=0)

    objectives = [o for o in dict.fromkeys(s["objective"] for s in cells) if o != "none"]
    panels = objectives or ["none"]
    fig, axes = _panel_grid(len(panels), 2.3, 1.9, (0.4, 0.9), sharex=True, sharey=True)
    scratch = line("none", "scratch")
    for ax, objective in zip(axes, panels, strict=True):
        draw(ax, scratch, "black", "BC from scratch", lw=1.2)
        if objective != "none":
            draw(ax, line(objective, "frozen"), "tab:blue", "frozen encoder")
            draw(ax, line(objective, "finetune"), "tab:orange", "fine-tuned encoder", ls="--")
        ax.axhline(MEDIOCRE, color="gray", lw=0.7, ls=":")
        ax.set_title(objective, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    ax = axes[0]
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    handles, labels = ax.get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="gray", lw=0.7, ls=":"))
    labels.append(f"{MEDIOCRE:.0f}: scratch below it is mediocre")
    fig.legend(handles, labels, loc="upper right", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(
        f"{env_id}: imitation score against expert episodes (mean, 95% CI)",
        x=0.01,
        ha="left",
        fontsize=10,
    )
    fig.supxlabel("expert episodes for behaviour cloning", fontsize=9)
    fig.supylabel("normalised score", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    name = f"data-efficiency-{env_id}.png"
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name


def _plot_pretraining(cfg: StudyConfig, folder: Path, env_id: str) -> str | None:
    """Loss and accuracy / prediction-error curves of every objective (first seed): one panel
    per objective, in rows of six, the loss on the left axis and its metric on the right. A
    folder without encoders keeps the plot it already holds (drawn when they were there)."""
    import matplotlib.pyplot as plt

    name = f"pretraining-{env_id}.png"
    histories = {}
    for objective in cfg.objectives:
        state = RunDir(folder).load_checkpoint(_encoder_checkpoint(env_id, objective, cfg.seeds[0]))
        if state is not None:
            histories[objective] = state["history"]
    if not histories:
        return name if (folder / name).exists() else None
    fig, axes = _panel_grid(len(histories), 2.6, 2.0, sharex=True)
    for ax, (objective, hist) in zip(axes, histories.items(), strict=True):
        steps = [h["step"] for h in hist]
        ax.plot(steps, [h["loss"] for h in hist], color="C0", lw=1)
        metric = "accuracy" if "accuracy" in hist[-1] else "prediction_error"
        right = ax.twinx()
        right.plot(steps, [h[metric] for h in hist], color="C1", lw=1)
        ax.set_title(f"{objective} ({metric.replace('_', ' ')})", fontsize=8)
        ax.tick_params(labelsize=6, labelcolor="C0")
        right.tick_params(labelsize=6, labelcolor="C1")
    fig.suptitle(
        f"{env_id}: pretraining (seed {cfg.seeds[0]}); loss (blue, left axis) and accuracy or "
        "prediction error (orange, right axis) against step",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name


def _write_csv(run: RunDir, name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    # The union of the rows' columns: only imitation cells on the data-efficiency axis have
    # "episodes".
    columns = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    run.write_text(name, buf.getvalue())


def profile_config(profile: str, **overrides: Any) -> StudyConfig:
    """A profile's config with fields replaced by ``overrides`` (ignoring ``None``)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose {', '.join(PROFILES)}")
    return dataclasses.replace(
        PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}
    )
