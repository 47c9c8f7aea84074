"""Sequence pretraining + probe, one cell at a time, and the UCR/UEA benchmark table.

:func:`pretrain_and_probe` is what ``seqrep pretrain`` and ``seqrep bench series`` both run: load and
normalise a data set (train statistics only), pretrain a method (or not, for the baselines),
encode frozen features, run the SVM and logistic probes. :func:`run_series_bench` loops it over
data sets x methods x seeds, appending each finished cell to a JSON file so that a rerun skips
what is done.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.data.series import SHIPPED_DATASETS, SeriesDataset, load_normalised, reference_table
from seqrep.devices import resolve_device
from seqrep.loops.pretrain import BASELINES, PretrainConfig, pretrain_and_probe
from seqrep.loops.progress import console
from seqrep.loops.runs import atomic_write_text, hold_lock, with_options_added_since
from seqrep.loops.sweep import connect, stream
from seqrep.methods import SERIES_METHODS
from seqrep.options import require_extra

__all__ = [
    "bench_config",
    "check_bench_options",
    "load_normalised",
    "run_series_bench",
    "summarise",
]


def bench_config(base: PretrainConfig) -> dict[str, Any]:
    """The options of a series benchmark that change its numbers (not the per-row data set,
    method and seed, nor logging)."""
    # The device is where it runs, like --threads: the same configuration on another device.
    skip = ("data", "test_data", "seed", "method", "log_every", "checkpoint_every", "device")
    return {k: v for k, v in asdict(base).items() if k not in skip}


def check_bench_options(
    out_json: Path,
    datasets: tuple[str, ...],
    methods: tuple[str, ...],
    seeds: tuple[int, ...],
    threads: int,
) -> None:
    """What ``seqrep bench series`` checks before any cell runs, each failure one line.

    Raises:
        ValueError: an empty list, an unknown method, threads < 1, or an --out that is not a
            .json file path.
    """
    for flag, values in (("--datasets", datasets), ("--methods", methods), ("--seeds", seeds)):
        if not values:
            raise ValueError(f"{flag} is empty; give a comma-separated list")
    unknown = sorted(set(methods) - set(SERIES_METHODS) - set(BASELINES))
    if unknown:
        raise ValueError(
            f"unknown --methods {', '.join(unknown)}; choose among "
            f"{', '.join((*SERIES_METHODS, *BASELINES))}"
        )
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    if not str(out_json).strip() or out_json.suffix != ".json" or out_json.is_dir():
        raise ValueError(
            f"--out {str(out_json)!r} must be a .json file path (rows are written there, the "
            "table and configuration beside it), e.g. runs/bench-series/series.json"
        )


def run_series_bench(
    out_json: Path,
    datasets: tuple[str, ...] = SHIPPED_DATASETS,
    methods: tuple[str, ...] = ("cpc", "triplet", "contrastive", "raw", "random"),
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    base: PretrainConfig | None = None,
    threads: int = 2,
    ray_address: str | None = None,
) -> list[dict[str, Any]]:
    """Every data set x method x seed; one JSON row each, appended as it finishes (resumable).

    ``ray_address``: each cell a Ray task of ``threads`` CPUs (see :mod:`seqrep.loops.sweep`)."""
    require_extra("series", "seqrep bench series")
    base = base or PretrainConfig()
    base.validate()
    check_bench_options(out_json, datasets, methods, seeds, threads)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    hold_lock(
        out_json.with_name(out_json.name + ".lock"),
        out_json,
        "two benchmarks must not append to one results file",
        "choose another --out",
    )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_series_bench(out_json, datasets, methods, seeds, base, threads, ray_address)
    finally:  # callers (a test session, a notebook) keep their own thread count
        torch.set_num_threads(previous_threads)


def series_row(
    cfg: PretrainConfig,
    threads: int | None = None,
    data: tuple[SeriesDataset, SeriesDataset] | None = None,
) -> dict[str, Any]:
    """One benchmark row: ``cfg.data`` (loaded unless ``data`` holds its train and test
    splits), ``cfg.method`` pretrained (or a baseline) and probed. ``threads`` sets torch's
    threads first (a Ray task's share of a machine)."""
    if threads is not None:
        torch.set_num_threads(threads)
    train, test = data if data is not None else load_normalised(cfg.data)
    row = pretrain_and_probe(cfg, train, test)
    return {"dataset": cfg.data, **{k: v for k, v in row.items() if not k.startswith("_")}}


def _resumable_rows(out_json: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows ``out_json`` holds, once their recorded configuration matches ``config``
    (recorded beside them, as ``.config.json``, now): rows measured with another configuration
    must never be mixed into one table.

    Raises:
        ValueError: rows without a recorded configuration, or with another one.
    """
    rows: list[dict[str, Any]] = json.loads(out_json.read_text()) if out_json.exists() else []
    sidecar = out_json.with_suffix(".config.json")
    if rows:
        if not sidecar.exists():
            raise ValueError(
                f"{out_json} holds {len(rows)} rows whose configuration was not recorded; "
                "seqrep will not add rows of another run to them. Choose another --out."
            )
        # Options added since the rows were measured: at the values the rows ran with.
        old = with_options_added_since(json.loads(sidecar.read_text()), PretrainConfig)
        old = {k: v for k, v in old.items() if k in config}
        if old != config:
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ValueError(
                f"{out_json} holds rows measured with another configuration (differs in: "
                f"{', '.join(changed)}); resuming would mix them. Choose another --out, or "
                "rerun with the recorded options."
            )
    out_json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sidecar, json.dumps(config, indent=2) + "\n")
    return rows


def _run_series_bench(
    out_json: Path,
    datasets: tuple[str, ...],
    methods: tuple[str, ...],
    seeds: tuple[int, ...],
    base: PretrainConfig,
    threads: int,
    ray_address: str | None,
) -> list[dict[str, Any]]:
    rows = _resumable_rows(out_json, bench_config(base))
    done = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    todo = [
        replace(base, data=name, method=method, seed=seed)
        for name in datasets
        for method in methods
        for seed in (seeds if method != "raw" else seeds[:1])
        if (name, method, seed) not in done
    ]
    # After MiniRocket's numba code has run, later torch cells of the same process ran slower
    # (ACSF1 CPC: 77 s against 45 s alone; why is not settled): its cells go last.
    todo.sort(key=lambda cfg: cfg.method == "minirocket")
    if ray_address is not None:
        ray = connect(ray_address)
        task = ray.remote(num_cpus=threads, num_gpus=int(resolve_device(base.device) == "cuda"))
        finished = stream(ray, {task(series_row).remote(cfg, threads): cfg for cfg in todo})
    else:  # the cells of one data set are consecutive: load each set once
        loaded: dict[str, tuple[SeriesDataset, SeriesDataset]] = {}

        def local(cfg: PretrainConfig) -> dict[str, Any]:
            if cfg.data not in loaded:
                loaded.clear()
                loaded[cfg.data] = load_normalised(cfg.data)
            return series_row(cfg, data=loaded[cfg.data])

        finished = ((cfg, local(cfg)) for cfg in todo)
    for cfg, row in finished:
        rows.append(row)
        atomic_write_text(out_json, json.dumps(rows, indent=1) + "\n")
        console.print(
            f"{cfg.data:22s} {cfg.method:12s} seed {cfg.seed}  acc {row['accuracy']:.3f}  "
            f"logreg {row.get('logistic_accuracy', float('nan')):.3f}  {row['seconds']:.1f} s"
        )
    return rows


def _ts2vec_measured(
    dataset: str, seeded: dict[str, dict[str, str]], one_seed: dict[str, dict[str, str]]
) -> dict[str, Any] | None:
    """TS2Vec's own code measured on this kind of machine: the seeds of bench/ts2vec_measured.py
    (with CPC's time in the same run) where they exist, else the one-seed reference."""
    if dataset in seeded:
        r = seeded[dataset]
        return {
            "accuracy": float(r["accuracy"]),
            "spread": f"± {float(r['accuracy_std']):.3f} ({r['seeds']} seed"
            + ("s)" if int(r["seeds"]) != 1 else ")"),
            "seconds": float(r["seconds"]),
            "time_ratio": float(r["cpc_seconds_same_run"]) / float(r["seconds"]),
        }
    if dataset in one_seed:
        r = one_seed[dataset]
        acc, secs = float(r["accuracy"]), float(r["total_seconds"])
        return {"accuracy": acc, "spread": "(1 seed)", "seconds": secs, "time_ratio": None}
    return None


def summarise(rows: list[dict[str, Any]], base: PretrainConfig | None = None) -> str:
    """Markdown: mean ± std accuracy per data set and method beside the published columns."""
    ref = reference_table()
    cpu = reference_table("ts2vec_cpu_measured.csv")
    seeded = reference_table("ts2vec_measured_seeds.csv")
    order = ("cpc", "triplet", "contrastive", "raw", "random", "minirocket")
    present = list(dict.fromkeys(r["method"] for r in rows))
    methods = [m for m in order if m in present] + [m for m in present if m not in order]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    published = ["ts2vec", "t_loss", "tnc", "ts_tcc", "dtw_1nn", "inceptiontime"]
    head = [
        "data set",
        *methods,
        "TS2Vec measured",
        "cpc - TS2Vec measured",
        "cpc s/seed",
        "MiniRocket s/seed",
        "TS2Vec s/seed",
        "cpc / TS2Vec time, same run",
        *published,
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    means: dict[str, list[float]] = {m: [] for m in methods}
    measured = []  # TS2Vec's, per data set
    for d in datasets:
        cells = [d]
        for m in methods:
            acc = [r["accuracy"] for r in rows if r["dataset"] == d and r["method"] == m]
            means[m].append(float(np.mean(acc)) if acc else float("nan"))
            cells.append(f"{np.mean(acc):.3f} ± {np.std(acc):.3f}" if acc else "-")
        ts = _ts2vec_measured(d, seeded, cpu)
        measured.append(ts)
        cells.append(f"{ts['accuracy']:.3f} {ts['spread']}" if ts else "-")
        cpc = means["cpc"][-1] if "cpc" in means else float("nan")
        cells.append(f"{cpc - ts['accuracy']:+.3f}" if ts and np.isfinite(cpc) else "-")
        for timed in ("cpc", "minirocket"):
            secs = [r["seconds"] for r in rows if r["dataset"] == d and r["method"] == timed]
            cells.append(f"{np.mean(secs):.1f}" if secs else "-")
        cells.append(f"{ts['seconds']:.1f}" if ts else "-")
        cells.append(f"{ts['time_ratio']:.2f}" if ts and ts["time_ratio"] else "-")
        cells += [ref.get(d, {}).get(p, "") or "-" for p in published]
        lines.append("| " + " | ".join(cells) + " |")
    mean_cells = ["**mean**", *(f"**{np.nanmean(means[m]):.3f}**" for m in methods)]
    if all(measured) and "cpc" in means:
        ts2vec = [m["accuracy"] for m in measured if m]
        gap = np.nanmean(means["cpc"]) - np.mean(ts2vec)
        mean_cells += [f"{np.mean(ts2vec):.3f}", f"{gap:+.3f}"]
    else:
        mean_cells += ["-", "-"]
    mean_cells += ["", "", "", ""]
    for p in published:
        vals = [float(ref[d][p]) for d in datasets if d in ref and ref[d].get(p)]
        mean_cells.append(f"{np.mean(vals):.3f}" if len(vals) == len(datasets) else "-")
    lines.append("| " + " | ".join(mean_cells) + " |")
    note = ""
    if base is not None:
        cfg = {k: v for k, v in asdict(base).items() if k not in ("data", "test_data", "seed")}
        note = f"\nOne configuration for every data set (no per-data-set tuning): `{cfg}`\n"
    return "\n".join(lines) + "\n" + note
