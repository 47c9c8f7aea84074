"""Pretraining loop for sequence representations (CPC, triplet, pairwise margin).

One typed config (:class:`PretrainConfig`) builds the method, samples random crops from the
training split, and runs Adam with a progress bar; checkpoints (model, optimiser, RNG, step)
are written atomically every ``checkpoint_every`` steps, and a rerun resumes the same curve.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from seqrep.data.series import (
    SeriesDataset,
    Standardizer,
    load_series,
    load_splits,
    reference_table,
)
from seqrep.devices import check_device, resolve_device
from seqrep.distributed import (
    data_parallel_loss,
    rank_rows,
    shutdown,
    world_size,
)
from seqrep.loops.probes import encode_dataset, logistic_probe, raw_features, svm_probe, zero_padded
from seqrep.loops.progress import progress_bar
from seqrep.loops.runs import (
    MAY_CHANGE_ON_RESUME,
    Prepared,
    RunDir,
    load_run,
    restore_shared_checkpoint,
    save_shared_checkpoint,
)
from seqrep.methods import SERIES_METHODS, SeriesMethod, build_series_method
from seqrep.methods.base import take_steps
from seqrep.methods.cpc import NEGATIVE_SOURCES
from seqrep.nets import POOLS
from seqrep.options import check_options

__all__ = [
    "BASELINES",
    "PreparedPretrain",
    "PretrainConfig",
    "PretrainResult",
    "build_from_config",
    "check_method_fits",
    "crop_batch",
    "crop_in_context",
    "global_batch_size",
    "load_pretrained",
    "prepare_pretrain",
    "pretrain",
    "pretrain_and_probe",
    "run_pretrain",
    "write_pretrain_report",
]


@dataclass
class PretrainConfig:
    """Sequence pretraining. One default configuration serves every data set."""

    # What a run folder written before an option existed did: its config.json lacks the key,
    # and the option's later default would rebuild (or pool) its model differently.
    absent_in_old_runs: ClassVar[dict[str, Any]] = {
        "bidirectional": False,
        "crop_context": False,
        "pool": "max",
    }

    data: str = field(
        default="GunPoint", metadata={"help": "aeon data set name or .ts/.arff/.tsv path"}
    )
    test_data: str = field(
        default="", metadata={"help": "test file (default: X_TEST beside X_TRAIN)"}
    )
    method: str = field(default="cpc", metadata={"help": ", ".join(SERIES_METHODS)})
    encoder: str = field(
        default="dilated", metadata={"help": "dilated (short series) or strided (raw signals)"}
    )
    hidden: int = field(default=64, metadata={"help": "encoder channels"})
    depth: int = field(default=6, metadata={"help": "dilated residual blocks"})
    z_dim: int = field(default=128, metadata={"help": "encoder output size"})
    context_dim: int = field(default=128, metadata={"help": "CPC GRU size"})
    horizon: int = field(default=8, metadata={"help": "CPC: K, the future steps predicted"})
    negatives: str = field(
        default="position",
        metadata={
            "help": "CPC negatives: batch, time, both, or position (other series, same step)"
        },
    )
    num_negatives: int = field(default=32, metadata={"help": "CPC: negatives per query"})
    bidirectional: bool = field(
        default=True,
        metadata={
            "help": "CPC: a second CPC on the reversed series, features side by side (the "
            "window objectives have no direction and ignore it)"
        },
    )
    max_queries: int = field(default=512, metadata={"help": "CPC: (b, t, k) queries per batch"})
    margin: float = field(default=0.5, metadata={"help": "triplet/contrastive margin"})
    mining: str = field(
        default="all", metadata={"help": "triplet mining: all, batch_hard, semi_hard"}
    )
    window: int = field(default=128, metadata={"help": "longest random crop for pretraining"})
    pool: str = field(
        default="max-mean",
        metadata={
            "help": "features for probes and export: each series' steps pooled by max (TS2Vec's), "
            "or max-mean (max and mean side by side)"
        },
    )
    crop_context: bool = field(
        default=True,
        metadata={
            "help": "CPC with the dilated encoder: the encoder also reads up to its receptive "
            "field - 1 real steps each side of a crop, which the loss does not score, so no crop "
            "step sees padding that the whole series lacks (else its position in the crop "
            "is a shortcut)"
        },
    )
    batch_size: int = field(default=8, metadata={"help": "series per batch (TS2Vec: 8)"})
    iterations: int = field(
        default=100,
        metadata={
            "help": "optimiser steps (one step of bidirectional CPC trains both directions: "
            "100 cost what TS2Vec's 200 do)"
        },
    )
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    log_every: int = field(default=10, metadata={"help": "log metrics every N steps"})
    checkpoint_every: int = field(
        default=50, metadata={"help": "checkpoint every N steps", **MAY_CHANGE_ON_RESUME}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})

    def validate(self) -> None:
        check_options(
            self,
            positive=(
                "iterations",
                "batch_size",
                "window",
                "horizon",
                "num_negatives",
                "max_queries",
                "hidden",
                "depth",
                "z_dim",
                "context_dim",
                "margin",
                "lr",
                "log_every",
                "checkpoint_every",
            ),
            choices={
                "method": tuple(SERIES_METHODS),
                "encoder": ("dilated", "strided"),
                "negatives": NEGATIVE_SOURCES,
                "mining": ("all", "batch_hard", "semi_hard"),
                "pool": POOLS,
            },
        )

    def reads_crop_context(self) -> bool:
        """Whether crops come with context: CPC on the dilated encoder with --crop-context (the
        window objectives encode windows alone, and the strided encoder's output steps are not
        its input steps)."""
        return self.crop_context and self.method == "cpc" and self.encoder == "dilated"


def build_from_config(cfg: PretrainConfig, in_channels: int) -> SeriesMethod:
    """The method named by ``cfg.method`` with its encoder."""
    return build_series_method(
        cfg.method,
        in_channels,
        encoder=cfg.encoder,
        hidden=cfg.hidden,
        depth=cfg.depth,
        z_dim=cfg.z_dim,
        context_dim=cfg.context_dim,
        steps=cfg.horizon,
        negatives=cfg.negatives,
        num_negatives=cfg.num_negatives,
        max_queries=cfg.max_queries,
        margin=cfg.margin,
        mining=cfg.mining,
        bidirectional=cfg.bidirectional and cfg.method == "cpc",  # a CPC option
        pool=cfg.pool,
    )


def crop_in_context(
    values: Tensor, lengths: Tensor, window: int, context: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """A random crop of at most ``window`` valid steps per series, with up to ``context`` real
    steps on each side of it that the encoder reads but the loss does not score.

    Returns x [B, T, C] (the steps [start - before, start + crop + after), left-aligned and
    NaN-padded), its valid lengths [B] (before + crop + after) and ``margins`` [B, 2] (before,
    after). Why: a causal encoder whose receptive field exceeds the crop sees padding at the
    crop's first steps, so every output encodes its position in the crop; with the series'
    own history before the crop, no crop position sees padding the full series does not.
    ``generator`` lives on the device of ``values``."""
    b, dev = values.shape[0], values.device
    crop = lengths.clamp_max(window)
    start = (torch.rand(b, generator=generator, device=dev) * (lengths - crop + 1).float()).long()
    before = start.clamp_max(context)
    after = (lengths - start - crop).clamp_max(context)
    total = before + crop + after
    w = int(total.max())
    out = take_steps(values, start - before, w)
    pad = torch.arange(w, device=dev)[None, :] >= total[:, None]
    return out.masked_fill(pad[:, :, None], float("nan")), total, torch.stack([before, after], 1)


def crop_batch(
    values: Tensor, lengths: Tensor, window: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A random crop of at most ``window`` valid steps per series: [B, T, C] -> [B, W, C], and
    the crops' valid lengths [B] (:func:`crop_in_context` without context)."""
    x, crop, _ = crop_in_context(values, lengths, window, 0, generator)
    return x, crop


def _logs(it: int, cfg: PretrainConfig) -> bool:
    """Whether step ``it`` (0-based) writes a metrics record: every log_every, and the last."""
    return (it + 1) % cfg.log_every == 0 or it + 1 == cfg.iterations


def global_batch_size(cfg: PretrainConfig, n_series: int) -> int:
    """Series per optimiser step over all ranks: ``batch_size`` per rank, at most the data set,
    a multiple of the number of ranks."""
    ranks = world_size()
    size = min(cfg.batch_size * ranks, n_series) // ranks * ranks
    if size == 0:
        raise ValueError(
            f"{n_series} training series cannot give each of {ranks} processes a series; "
            "use fewer processes"
        )
    return size


def _draw_batch(
    cfg: PretrainConfig,
    values: Tensor,
    lengths: Tensor,
    batch: int,
    context: int,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """One training batch as :func:`pretrain` draws it: ``batch`` random series, each cropped
    to at most ``cfg.window`` steps with ``context`` steps either side (x, lengths, margins)."""
    idx = torch.randperm(len(values), generator=gen, device=values.device)[:batch]
    return crop_in_context(values[idx], lengths[idx], cfg.window, context, gen)


def check_method_fits(cfg: PretrainConfig, train: SeriesDataset) -> None:
    """One loss evaluation of ``cfg.method`` on a batch of ``train`` drawn as :func:`pretrain`
    draws them, on a throwaway model, generator and RNG state: what only the data can reveal
    (crops too short for CPC's horizon, too few series for a batch) fails here, before
    anything is written, and not after an ``--overwrite`` has cleared the old run.

    Raises:
        ValueError: the method cannot train on these data with these options (naming them).
    """
    with torch.random.fork_rng(devices=[]):
        method = build_from_config(cfg, train.num_channels)
        gen = torch.Generator().manual_seed(cfg.seed)
        context = method.encoder.receptive_field - 1 if cfg.reads_crop_context() else 0
        values, lengths = torch.from_numpy(train.values), torch.from_numpy(train.lengths)
        x, lens, margins = _draw_batch(
            cfg, values, lengths, global_batch_size(cfg, len(train)), context, gen
        )
        try:
            with torch.no_grad():
                method.loss(x, lens, gen, *((margins,) if context else ()))
        except ValueError as e:
            raise ValueError(
                f"--method {cfg.method} cannot train on {cfg.data} with --window {cfg.window} "
                f"and --horizon {cfg.horizon} (series of {int(train.lengths.min())} to "
                f"{int(train.lengths.max())} steps): {e}"
            ) from e


@dataclass
class PreparedPretrain(Prepared):
    """``seqrep pretrain``'s work, checked: the config, the training split and the test split
    (None without one) z-scored with the training split's statistics, and those statistics."""

    train: SeriesDataset
    test: SeriesDataset | None
    scaler: Standardizer

    @property
    def probes(self) -> bool:
        """Whether a classifier probe can score the features: both splits labelled, the
        training split with two classes or more."""
        return (
            self.test is not None
            and self.train.labelled
            and self.test.labelled
            and len(np.unique(self.train.labels)) > 1
        )


def prepare_pretrain(cfg: PretrainConfig) -> PreparedPretrain:
    """Validate ``cfg``, load its data (labelled or not; the test split where there is one),
    normalise it, and check that the method trains on it (:func:`check_method_fits`); nothing
    is written.

    Raises:
        ValueError, FileNotFoundError: an option out of range, unreadable data, or data the
            method cannot train on.
    """
    cfg.validate()
    train, test = load_splits(cfg.data, cfg.test_data or None)
    scaler = Standardizer().fit(train)
    train = scaler.transform(train)
    test = scaler.transform(test) if test is not None else None
    check_method_fits(cfg, train)
    return PreparedPretrain("pretrain", cfg, train, test, scaler)


@dataclass
class PretrainResult:
    """What ``seqrep pretrain`` gives back: the trained method, the normaliser its inputs need,
    and the probe table (Markdown; empty where no probe ran)."""

    method: SeriesMethod
    scaler: Standardizer
    table: str


def run_pretrain(
    prepared: PreparedPretrain, run: RunDir | None = None, *, quiet: bool = False
) -> PretrainResult:
    """Train (on every torchrun rank, each its share); then, in the process holding ``run``
    (rank 0) or alone, probe the features beside the raw series where the data are labelled,
    and write data.json (the data's paths and the normaliser), probe.json and report.md."""
    cfg, train, test = prepared.config, prepared.train, prepared.test
    if run is not None:
        # config.json keeps the paths as typed (a resume must match them); data.json records
        # where they pointed, so that `seqrep probe` finds the files from any directory, and
        # the normaliser, so that `seqrep.load` needs no data.
        paths = {k: _absolute(getattr(cfg, k)) for k in ("data", "test_data")}
        run.write_json("data.json", {**paths, "normaliser": prepared.scaler.to_dict()})
    if world_size() > 1:
        # Every rank trains its share; the group is closed and rank 0 alone probes, its
        # pretraining below resuming the finished checkpoint.
        method, _ = pretrain(cfg, train, run, quiet=quiet or run is None)
        shutdown()
        if run is None:
            return PretrainResult(method, prepared.scaler, "")
    if not prepared.probes:
        method, _ = pretrain(cfg, train, run, quiet=quiet)
        if run is not None:
            shown = test if test is not None else train
            write_pretrain_report(run, cfg, [], shown, encode_dataset(method, shown))
        return PretrainResult(method, prepared.scaler, "")
    assert test is not None
    row = pretrain_and_probe(cfg, train, test, run=run, quiet=quiet)
    rows = [row, pretrain_and_probe(replace(cfg, method="raw"), train, test)]
    table = ""
    if run is not None:
        run.write_json(
            "probe.json", [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        )
        table = write_pretrain_report(run, cfg, rows, test, row["_features"][1])
    return PretrainResult(row["_method"], prepared.scaler, table)


def load_pretrained(
    run_dir: str | Path, device: str = "cpu"
) -> tuple[PretrainConfig, SeriesMethod, Standardizer, int]:
    """The config, trained method (on ``device``, in eval mode), input normaliser and steps
    trained of a ``seqrep pretrain`` run. The normaliser comes from data.json; for a run that did not
    record it, from the run's training data (which must then still be where it was).

    Raises:
        RunDirError: not a ``seqrep pretrain`` run folder, or no checkpoint yet.
        ValueError: the checkpoint does not fit the config (another data set's channels).
    """
    cfg, state = load_run(run_dir, "pretrain", PretrainConfig)
    record = Path(run_dir) / "data.json"
    saved = json.loads(record.read_text()) if record.exists() else {}
    if "normaliser" in saved:
        scaler = Standardizer.from_dict(saved["normaliser"])
    else:
        source = saved.get("data", cfg.data) if Path(saved.get("data", "")).exists() else cfg.data
        scaler = Standardizer().fit(load_series(source, "train"))
    assert scaler.mean is not None
    method = build_from_config(cfg, len(scaler.mean)).to(check_device(device))
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(
            f"{run_dir}'s checkpoint does not fit its config ({len(scaler.mean)} channels): "
            "was the folder copied from another run?"
        ) from e
    return cfg, method.eval(), scaler, int(state["iteration"])


def _absolute(path: str) -> str:
    """An existing file's absolute path; anything else (a shipped data set's name) as given."""
    return str(Path(path).resolve()) if path and Path(path).is_file() else path


def pretrain(
    cfg: PretrainConfig,
    train: SeriesDataset,
    run: RunDir | None = None,
    *,
    quiet: bool = False,
) -> tuple[SeriesMethod, dict[str, Any]]:
    """Pretrain on ``train`` (already normalised). Returns the method and a summary.

    With a ``run`` folder: metrics go to metrics.jsonl, checkpoints to checkpoints/last.pt, and an
    existing checkpoint is resumed.

    Under torch.distributed (``torchrun``), every rank calls this with the same config and data
    and only rank 0 passes ``run``: the ranks draw the same global batch of W * batch_size series
    from one generator seeded alike, each trains on its share through DistributedDataParallel,
    and the losses see every rank's embeddings (see :mod:`seqrep.distributed`); rank 0 reads the
    checkpoint for everyone and writes metrics and checkpoints, with every rank's RNG state.
    A finished run loads in any number of processes.
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    method = build_from_config(cfg, train.num_channels).to(device)
    opt = torch.optim.Adam(method.parameters(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    values, lengths = (torch.from_numpy(a).to(device) for a in (train.values, train.lengths))
    parts = {"model": method, "optim": opt, "generator": gen}
    state = restore_shared_checkpoint(run, parts, "iteration", cfg.iterations)
    start, seconds = (state["iteration"], state["seconds"]) if state else (0, 0.0)
    if run is not None:  # drop records logged after the checkpoint (all, without one): redone
        run.truncate_metrics(sum(1 for i in range(start) if _logs(i, cfg)))
    batch = global_batch_size(cfg, len(train))
    loss_fn = data_parallel_loss(method)
    context = method.encoder.receptive_field - 1 if cfg.reads_crop_context() else 0
    last: dict[str, float] = {}
    t0 = time.perf_counter() - seconds
    method.train()
    with progress_bar(f"pretrain {cfg.method}", cfg.iterations, disable=quiet) as advance:
        advance(start)
        for it in range(start, cfg.iterations):
            x, lens, margins = _draw_batch(cfg, values, lengths, batch, context, gen)
            with_context = (rank_rows(margins),) if context else ()  # only CPC takes context
            out = loss_fn(rank_rows(x), rank_rows(lens), gen, *with_context)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            last = out.metrics
            advance(1, loss=last["loss"], acc=last["accuracy"])
            if run is not None and _logs(it, cfg):
                run.log({"step": it + 1, "seconds": time.perf_counter() - t0, **last})
            if (it + 1) % cfg.checkpoint_every == 0 or it + 1 == cfg.iterations:
                seconds = time.perf_counter() - t0
                save_shared_checkpoint(run, parts, iteration=it + 1, seconds=seconds)
    method.eval()
    params = int(np.sum([p.numel() for p in method.parameters()]))
    seconds = time.perf_counter() - t0
    summary = {"seconds": seconds, "final": last, "iterations": cfg.iterations}
    return method, {**summary, "processes": world_size(), "params": params}


# The feature baselines a probe compares the pretrained features with.
BASELINES = ("raw", "random", "minirocket")


def pretrain_and_probe(
    cfg: PretrainConfig,
    train: SeriesDataset,
    test: SeriesDataset,
    *,
    run: RunDir | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Pretrain ``cfg.method`` (``raw``/``random`` are the baselines) and probe it.

    Returns a row: method, seed, accuracy (SVM), logistic accuracy, seconds (pretrain + encode +
    SVM, comparable with TS2Vec's measured total), pretrain seconds, and the probe's detail.
    """
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if cfg.method == "minirocket":
        return _minirocket_row(cfg, train, test)
    if cfg.method == "raw":
        length = train.max_length
        tr_x, te_x = raw_features(train, length), raw_features(test, length)
        method = None
    else:
        if cfg.method == "random":
            torch.manual_seed(cfg.seed)
            method = build_from_config(replace(cfg, method="cpc"), train.num_channels).eval()
        else:
            method, summary = pretrain(cfg, train, run, quiet=quiet)
            extra = {"pretrain_seconds": summary["seconds"], "final": summary["final"]}
        tr_x, te_x = encode_dataset(method, train), encode_dataset(method, test)
    svm = svm_probe(tr_x, train.labels, te_x, test.labels)
    seconds = time.perf_counter() - t0  # pretrain + encode + SVM, as TS2Vec's total_seconds
    logreg = logistic_probe(tr_x, train.labels, te_x, test.labels)
    row = {
        "method": cfg.method,
        "seed": cfg.seed,
        "accuracy": svm.accuracy,
        "logistic_accuracy": logreg.accuracy,
        "svm": svm.detail,
        "seconds": seconds,
        **extra,
    }
    row["_features"] = (tr_x, te_x)
    row["_method"] = method
    return row


def _minirocket_row(
    cfg: PretrainConfig, train: SeriesDataset, test: SeriesDataset
) -> dict[str, Any]:
    """aeon's MiniRocket with its usual ridge classifier (RidgeClassifierCV), what a practitioner
    would pick instead of a learned encoder: fit and predict timed together. MiniRocket needs equal
    lengths, so every series is zero-padded (after z-normalisation) to the training set's
    longest, as the raw baseline is."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    length = train.max_length
    x_train, x_test = (zero_padded(d, length).transpose(0, 2, 1) for d in (train, test))
    # numba compiles MiniRocket's kernels on first use (tens of seconds, once per process and
    # input kind): a warm-up fit on a few series keeps that out of the timed fit.
    few = np.concatenate([np.flatnonzero(train.labels == c)[:2] for c in np.unique(train.labels)])
    MiniRocketClassifier(n_kernels=84, random_state=0, n_jobs=1).fit(
        x_train[few], train.labels[few]
    )
    t0 = time.perf_counter()
    clf = MiniRocketClassifier(random_state=cfg.seed, n_jobs=1)
    clf.fit(x_train, train.labels)
    accuracy = float((clf.predict(x_test) == test.labels).mean())
    return {
        "method": "minirocket",
        "seed": cfg.seed,
        "accuracy": accuracy,
        "svm": "aeon MiniRocketClassifier (10,000 kernels, RidgeClassifierCV; JIT warm-up untimed)",
        "seconds": time.perf_counter() - t0,
    }


def write_pretrain_report(
    run: RunDir,
    cfg: PretrainConfig,
    rows: list[dict[str, Any]],
    test: SeriesDataset,
    test_features: np.ndarray,
) -> str:
    """report.md with the probe table, training curves and a 2-D PCA of test embeddings."""
    _plot_pretraining(run.read_metrics(), test, test_features, run.path / "training.png")
    ref = reference_table().get(_base_name(cfg.data), {})
    table = [
        "| features | SVM accuracy (TS2Vec protocol) | logistic probe | seconds |",
        "|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['method']} | {r['accuracy']:.3f} ({r['svm']}) | "
            f"{r['logistic_accuracy']:.3f} | {r['seconds']:.1f} |"
        )
    if ref:
        table.append(f"| TS2Vec (published) | {ref['ts2vec']} | - | - |")
    probe = (
        f"{len(test)} test series, {test.num_classes} classes, {test.num_channels} channel(s). "
        "The probe sees only\nfrozen features (pooled over valid steps as the config's `pool`); "
        f"normalisation was fitted on the training split.\n\n{chr(10).join(table)}"
        if rows
        else "No probe: a classifier probe needs labelled training and test splits, and these "
        "data have none\n(pass labelled `--test-data` to score the features). The plot shows "
        f"the features of {len(test)} series."
    )
    text = f"""# Pretraining: {cfg.method} on {cfg.data}

{probe}

![training](training.png)

Config: see config.json. Metrics per step: metrics.jsonl. Checkpoint: checkpoints/last.pt.
"""
    run.write_text("report.md", text)
    return "\n".join(table)


def _plot_pretraining(
    metrics: list[dict[str, Any]], test: SeriesDataset, test_features: np.ndarray, path: Path
) -> None:
    """The training loss, the contrastive accuracy per k against chance, and a 2-D PCA of the
    test embeddings coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if metrics:
        steps = [m["step"] for m in metrics]
        axes[0].plot(steps, [m["loss"] for m in metrics])
        axes[0].set(title="training loss", xlabel="step")
        # Per-k accuracy: CPC's acc_k*, or a bidirectional CPC's forward model's.
        per_k = [k for k in metrics[-1] if k.startswith("acc_k")] or [
            k for k in metrics[-1] if k.startswith("forward_acc_k")
        ]
        for key in sorted(per_k, key=lambda k: int(k.rsplit("_k", 1)[1])):
            label = key.replace("acc_", "").replace("_", " ")
            axes[1].plot(steps, [m.get(key, np.nan) for m in metrics], label=label, lw=1)
        axes[1].plot(steps, [m["accuracy"] for m in metrics], "k", lw=2, label="all")
        if "chance" in metrics[-1]:
            axes[1].axhline(metrics[-1]["chance"], color="gray", ls="--", label="chance")
        axes[1].set(title="contrastive accuracy", xlabel="step", ylim=(0, 1))
        axes[1].legend(fontsize=7, ncol=2)
    centred = test_features - test_features.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    for c in range(test.num_classes):
        sel = test.labels == c
        axes[2].scatter(xy[sel, 0], xy[sel, 1], s=8, label=test.classes[c])
    if not test.labelled:
        axes[2].scatter(xy[:, 0], xy[:, 1], s=8)
    axes[2].set(title="embeddings, PCA" + (" (colour = class)" if test.labelled else ""))
    if 0 < test.num_classes <= 12:
        axes[2].legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _base_name(data: str) -> str:
    return Path(data).stem.replace("_TRAIN", "") if Path(data).suffix else data
