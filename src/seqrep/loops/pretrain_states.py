"""Pretraining a state representation on offline trajectories ("Representation Matters").

:func:`pretrain_state_encoder` trains one objective of :mod:`seqrep.methods.states` on windows of
a :class:`TrajectoryDataset` (the study calls it for every cell's encoder); ``seqrep
pretrain-states`` wraps it in a run folder (config, metrics, checkpoints with exact resume,
``encoder.pt``, report) for a user's own data, and ``--encoder RUN`` on ``bc``, ``offline-rl``
and ``sac`` puts the result under an agent (:func:`load_state_encoder`).

Under torch.distributed (``torchrun -m seqrep pretrain-states``), ``batch_size`` is per rank:
every rank draws the same global batch and trains on its share (see :mod:`seqrep.distributed`);
rank 0 writes the run folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.devices import batch_to, check_device, resolve_device
from seqrep.distributed import (
    data_parallel_loss,
    rank_rows,
    world_size,
)
from seqrep.loops.progress import console, progress_bar
from seqrep.loops.runs import (
    MAY_CHANGE_ON_RESUME,
    Prepared,
    RunDir,
    RunDirError,
    restore_shared_checkpoint,
    save_shared_checkpoint,
)
from seqrep.methods.states import STATE_OBJECTIVES, StateMethod, build_state_method
from seqrep.nets import StateEncoder
from seqrep.options import check_options

__all__ = [
    "PreparedStatePretraining",
    "StatePretrainConfig",
    "check_objective_fits",
    "encoder_hook",
    "load_state_encoder",
    "prepare_state_pretraining",
    "pretrain_state_encoder",
    "run_state_pretraining",
    "save_state_encoder",
    "write_state_report",
]

ENCODER_FILE = "encoder.pt"


@dataclass
class StatePretrainConfig:
    """Pretrain a state encoder phi(s) on offline trajectories with one objective."""

    data: str = field(
        default="", metadata={"help": "Minari data set id, or a D4RL-layout .hdf5 path"}
    )
    objective: str = field(default="cpc", metadata={"help": ", ".join(STATE_OBJECTIVES)})
    steps: int = field(default=3000, metadata={"help": "gradient steps"})
    batch_size: int = field(default=64, metadata={"help": "windows per batch (per process)"})
    window: int = field(default=8, metadata={"help": "steps per window"})
    feature_dim: int = field(default=64, metadata={"help": "representation size"})
    hidden: int = field(default=256, metadata={"help": "encoder hidden units"})
    lr: float = field(default=3e-4, metadata={"help": "Adam learning rate"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    log_every: int = field(default=100, metadata={"help": "log metrics every N steps"})
    checkpoint_every: int = field(
        default=500, metadata={"help": "checkpoint every N steps", **MAY_CHANGE_ON_RESUME}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})

    def validate(self) -> None:
        check_options(
            self,
            positive=(
                "steps",
                "batch_size",
                "window",
                "feature_dim",
                "hidden",
                "lr",
                "log_every",
                "checkpoint_every",
            ),
            choices={"objective": STATE_OBJECTIVES},
        )
        if not self.data:
            raise ValueError("--data is required: a Minari data set id or a .hdf5 path")


def _build(
    objective: str, data: TrajectoryDataset, feature_dim: int, hidden: int, window: int
) -> StateMethod:
    """``objective``'s method for ``data``, its encoder z-scoring inputs with the data's
    statistics."""
    obs = torch.from_numpy(data.observations)
    return build_state_method(
        objective,
        data.obs_dim,
        data.act_dim,
        feature_dim=feature_dim,
        hidden=hidden,
        window=window,
        obs_mean=obs.mean(0),
        obs_std=obs.std(0),
    )


def check_objective_fits(cfg: StatePretrainConfig, data: TrajectoryDataset) -> None:
    """One loss evaluation of ``cfg.objective`` on a batch of ``data`` as
    :func:`pretrain_state_encoder` draws it, with a throwaway model and generators: windows
    longer than every episode, or data the objective cannot read, fail here, before anything
    is written.

    Raises:
        ValueError: the objective cannot train on these data with these options.
    """
    with torch.random.fork_rng(devices=[]):
        method = _build(cfg.objective, data, cfg.feature_dim, cfg.hidden, cfg.window)
        try:
            batch = _sample(data, None, cfg.batch_size, cfg.window, torch.Generator())
            with torch.no_grad():
                method.loss(batch, torch.Generator())
        except ValueError as e:
            raise ValueError(
                f"--objective {cfg.objective} cannot train on {cfg.data} with --window "
                f"{cfg.window} (episodes of {int(data.episode_lengths.min())} to "
                f"{int(data.episode_lengths.max())} steps): {e}"
            ) from e


@dataclass
class PreparedStatePretraining(Prepared):
    """``seqrep pretrain-states``' work, checked: the config and the loaded trajectories."""

    data: TrajectoryDataset


def prepare_state_pretraining(cfg: StatePretrainConfig) -> PreparedStatePretraining:
    """Validate ``cfg``, load its data and check that the objective trains on them
    (:func:`check_objective_fits`); nothing is written."""
    from seqrep.data.trajectories import load_trajectories

    cfg.validate()
    data, _ = load_trajectories(cfg.data)
    check_objective_fits(cfg, data)
    return PreparedStatePretraining("pretrain-states", cfg, data)


def pretrain_state_encoder(
    objective: str,
    data: TrajectoryDataset,
    *,
    steps: int = 2000,
    batch_size: int = 64,
    window: int = 8,
    feature_dim: int = 64,
    hidden: int = 256,
    lr: float = 3e-4,
    seed: int = 0,
    log_every: int = 100,
    quiet: bool = True,
    device: str = "cpu",
    run: RunDir | None = None,
    checkpoint_every: int = 0,
    mix: tuple[TrajectoryDataset, float] | None = None,
) -> tuple[StateMethod, list[dict[str, float]]]:
    """Train ``objective`` on ``data`` with Adam; every objective sees the same batches
    (``batch_size`` windows of ``window`` steps drawn with the same seed).

    ``mix`` = (other data set, fraction): that share of every batch's windows comes from the
    other set (Representation Matters' code mixes about 10% of the downstream expert data into
    pretraining), shuffled into the batch; the input statistics stay those of ``data``.

    With ``run`` (rank 0's, under torch.distributed), metrics go to its metrics.jsonl and every
    ``checkpoint_every`` steps (and after the last) a checkpoint holds the method, optimiser,
    both generators and every rank's torch RNG: a killed run resumes the same curve. Returns
    the method (its ``encoder`` is phi) and the metrics logged every ``log_every`` steps."""
    torch.manual_seed(seed)
    method = _build(objective, data, feature_dim, hidden, window).to(device)
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)
    data_gen = torch.Generator().manual_seed(seed)
    loss_gen = torch.Generator(device=device).manual_seed(seed + 1)
    parts = {"model": method, "optim": opt, "data_generator": data_gen, "loss_generator": loss_gen}
    state = restore_shared_checkpoint(run, parts, "step", steps)
    start, seconds, history = (
        (state["step"], state["seconds"], state["history"]) if state else (0, 0.0, [])
    )
    if run is not None:  # records after the checkpoint are logged again
        run.truncate_metrics(len(history))
    loss_fn = data_parallel_loss(method)
    t0 = time.perf_counter() - seconds
    with progress_bar(f"pretrain {objective}", steps, disable=quiet) as advance:
        advance(start)
        for step in range(start + 1, steps + 1):
            batch = _sample(data, mix, batch_size * world_size(), window, data_gen)
            out = loss_fn(batch_to({k: rank_rows(v) for k, v in batch.items()}, device), loss_gen)
            _descend(opt, out.loss)
            method.update_targets()
            advance(1, loss=out.metrics["loss"])
            if step % log_every == 0 or step == steps:
                history.append({"step": step, "seconds": time.perf_counter() - t0, **out.metrics})
                if run is not None:
                    run.log(history[-1])
            if checkpoint_every and (step % checkpoint_every == 0 or step == steps):
                seconds = time.perf_counter() - t0
                save_shared_checkpoint(run, parts, step=step, seconds=seconds, history=history)
    return method, history


def _descend(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step down ``loss``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _sample(
    data: TrajectoryDataset,
    mix: tuple[TrajectoryDataset, float] | None,
    size: int,
    window: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """``size`` windows of ``data``, or of both sets in the ``mix`` proportion, shuffled."""
    if mix is None:
        return data.sample_sequences(size, window, generator)
    other, fraction = mix
    extra = round(size * fraction)
    parts = [
        data.sample_sequences(size - extra, window, generator),
        other.sample_sequences(extra, window, generator),
    ]
    order = torch.randperm(size, generator=generator)
    return {k: torch.cat([p[k] for p in parts])[order] for k in parts[0]}


def save_state_encoder(run: RunDir, encoder: StateEncoder, objective: str) -> Path:
    """``encoder.pt`` in the run folder: what ``--encoder RUN`` loads (CPU tensors)."""
    return run.save_checkpoint(
        {
            "encoder": {k: v.cpu() for k, v in encoder.state_dict().items()},
            "obs_dim": encoder.obs_dim,
            "feature_dim": encoder.feature_dim,
            "hidden": encoder.hidden,
            "objective": objective,
        },
        ENCODER_FILE,
    )


def load_state_encoder(run_dir: str | Path, device: str = "cpu") -> StateEncoder:
    """The encoder a ``seqrep pretrain-states`` run saved (in eval mode, on ``device``); its
    objective is ``encoder.objective``.

    Raises:
        RunDirError: the folder holds no finished state pretraining.
    """
    state = RunDir(Path(run_dir)).load_checkpoint(ENCODER_FILE)
    if state is None:
        raise RunDirError(
            f"{run_dir} holds no {ENCODER_FILE}: pass the folder of a finished "
            "`seqrep pretrain-states` run"
        )
    encoder = StateEncoder(state["obs_dim"], state["feature_dim"], state["hidden"])
    encoder.load_state_dict(state["encoder"])
    encoder.objective = state["objective"]
    return encoder.to(check_device(device)).eval()


def run_state_pretraining(
    prepared: PreparedStatePretraining, run: RunDir | None = None, *, quiet: bool = False
) -> tuple[StateEncoder, str]:
    """Pretrain the objective (every torchrun rank its share of each batch); in the process
    holding ``run``, save ``encoder.pt`` (what ``--encoder RUN`` loads) and the report.
    Returns the encoder (in eval mode) and the report's table ('' without a run folder)."""
    cfg, data = prepared.config, prepared.data
    if run is not None:
        console.print(
            f"data: {data.num_episodes} episodes, {len(data)} transitions"
            f"{f', {world_size()} processes' if world_size() > 1 else ''}"
        )
    method, history = pretrain_state_encoder(
        cfg.objective,
        data,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        window=cfg.window,
        feature_dim=cfg.feature_dim,
        hidden=cfg.hidden,
        lr=cfg.lr,
        seed=cfg.seed,
        log_every=cfg.log_every,
        quiet=quiet or run is None,
        device=resolve_device(cfg.device),
        run=run,
        checkpoint_every=cfg.checkpoint_every,
    )
    encoder: StateEncoder = method.encoder.eval()
    if run is None:
        return encoder, ""
    save_state_encoder(run, encoder, cfg.objective)
    return encoder, write_state_report(cfg, run, history, data)


def write_state_report(
    cfg: StatePretrainConfig, run: RunDir, history: list[dict[str, Any]], data: TrajectoryDataset
) -> str:
    """report.md (and pretraining.png): the data, the objective's curve, how to use the encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history])
    ax.set(xlabel="gradient step", ylabel=f"{cfg.objective} loss", title="pretraining")
    fig.tight_layout()
    fig.savefig(run.path / "pretraining.png", dpi=100)
    plt.close(fig)
    last = history[-1]
    extra = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k not in ("step", "seconds"))
    text = (
        f"# State pretraining: {cfg.objective} on {cfg.data}\n\n"
        f"{data.num_episodes} episodes, {len(data)} transitions, observations of size "
        f"{data.obs_dim}. {cfg.steps} steps of {cfg.batch_size} windows of {cfg.window} steps, "
        f"{last['seconds']:.0f} s.\n\nLast logged step {last['step']}: {extra}.\n\n"
        "![pretraining](pretraining.png)\n\n"
        f"The encoder (features of size {cfg.feature_dim}) is `{ENCODER_FILE}`; use it with "
        f"`seqrep bc --encoder {run.path}` (add `--freeze-encoder` to keep it fixed), "
        "`seqrep offline-rl` or `seqrep sac`.\n"
    )
    run.write_text("report.md", text)
    return text


def encoder_hook(run_dir: str, obs_dim: int, freeze: bool) -> dict[str, Any]:
    """An agent's encoder arguments from a ``seqrep pretrain-states`` run (none for "").

    Raises:
        ValueError: the encoder reads observations of another size.
    """
    if not run_dir:
        return {}
    encoder = load_state_encoder(run_dir)
    if encoder.obs_dim != obs_dim:
        raise ValueError(
            f"--encoder {run_dir} ({encoder.objective}) reads observations of size {encoder.obs_dim}, "
            f"but this task's have size {obs_dim}: pretrain on data of this environment"
        )
    return {"encoder": encoder, "feature_dim": encoder.feature_dim, "freeze_encoder": freeze}
