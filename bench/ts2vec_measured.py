"""TS2Vec's own code, seeds 0-4, beside CPC, both timed in this run on this machine.

The shipped reference (src/seqrep/data/reference/ts2vec_cpu_measured.csv) is one TS2Vec seed
from another day. This measures TS2Vec's spread over seeds and, in the same process and
conditions, CPC's time for one seed, so that the time comparison is a ratio measured in one
run. TS2Vec: the authors' code as packaged on PyPI (``pip install 'seqrep[ts2vec-bench]'``),
its paper's protocol (batch 8, lr 1e-3, 320-d output, 200 iterations or 600 when the training
array has more than 100,000 values, max_train_length 3000, full-series max pooling), on the
same normalised splits as CPC, probed with the same SVM (TS2Vec's C rule, seqrep.loops.probes).

    python bench/ts2vec_measured.py [--datasets ...] [--seeds 0,1,2,3,4] [--threads 2]

Writes bench/results/ts2vec_measured.{json,md} (rows appended as they finish; a rerun resumes)
and the summary src/seqrep/data/reference/ts2vec_measured_seeds.csv that `seqrep bench series`
shows as its "TS2Vec measured" column.
CPC's accuracy column is read from bench/results/series.json (5 seeds).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from seqrep.data.series import SHIPPED_DATASETS, load_normalised
from seqrep.loops.pretrain import PretrainConfig, pretrain_and_probe
from seqrep.loops.probes import svm_probe

OUT = Path(__file__).parent / "results"


def ts2vec_row(name: str, seed: int) -> dict:
    """TS2Vec pretrained on ``name``'s training split with ``seed``; SVM accuracy, seconds."""
    try:
        from ts2vec import TS2Vec
    except ImportError as e:  # an optional bench dependency
        raise SystemExit("TS2Vec is not installed: pip install 'seqrep[ts2vec-bench]'") from e
    train, test = load_normalised(name)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (TS2Vec draws its crops from the legacy global RNG)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = TS2Vec(
        input_dims=train.num_channels,
        output_dims=320,
        batch_size=8,
        lr=1e-3,
        max_train_length=3000,
        device="cpu",
    )
    model.fit(train.values.astype(np.float32))  # NaN-padded [N, T, C], as TS2Vec expects
    seconds_train = time.perf_counter() - t0
    tr = model.encode(train.values.astype(np.float32), encoding_window="full_series")
    te = model.encode(test.values.astype(np.float32), encoding_window="full_series")
    probe = svm_probe(tr, train.labels, te, test.labels)
    return {
        "dataset": name,
        "method": "ts2vec",
        "seed": seed,
        "accuracy": probe.accuracy,
        "seconds": time.perf_counter() - t0,
        "train_seconds": seconds_train,
    }


def cpc_row(name: str, seed: int) -> dict:
    """seqrep's default CPC cell (the configuration of series.md), timed here."""
    train, test = load_normalised(name)
    row = pretrain_and_probe(replace(PretrainConfig(), data=name, seed=seed), train, test)
    return {"dataset": name, **{k: v for k, v in row.items() if not k.startswith("_")}}


def table(rows: list[dict]) -> str:
    series_json = OUT / "series.json"
    series = json.loads(series_json.read_text()) if series_json.exists() else []
    lines = [
        "| data set | TS2Vec (own code) | seeds | TS2Vec s/seed | CPC (series.md, 5 seeds) | "
        "CPC - TS2Vec | CPC s, same run | CPC time / TS2Vec time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    gaps, ratios, ts_means, cpc_means = [], [], [], []
    for d in dict.fromkeys(r["dataset"] for r in rows):
        ts = [r for r in rows if r["dataset"] == d and r["method"] == "ts2vec"]
        cpc_here = [r["seconds"] for r in rows if r["dataset"] == d and r["method"] == "cpc"]
        cpc = [r["accuracy"] for r in series if r["dataset"] == d and r["method"] == "cpc"]
        if not ts:
            continue
        acc = np.array([r["accuracy"] for r in ts])
        secs = float(np.mean([r["seconds"] for r in ts]))
        cells = [d, f"{acc.mean():.3f} ± {acc.std():.3f}", str(len(ts)), f"{secs:.1f}"]
        if cpc:
            gap = float(np.mean(cpc)) - acc.mean()
            gaps.append(gap)
            ts_means.append(acc.mean())
            cpc_means.append(float(np.mean(cpc)))
            cells += [f"{np.mean(cpc):.3f} ± {np.std(cpc):.3f}", f"{gap:+.3f}"]
        else:
            cells += ["-", "-"]
        if cpc_here:
            ratio = float(np.mean(cpc_here)) / secs
            ratios.append(ratio)
            cells += [f"{np.mean(cpc_here):.1f}", f"{ratio:.2f}"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    if gaps:
        lines.append(
            f"| **mean** | **{np.mean(ts_means):.3f}** | | | **{np.mean(cpc_means):.3f}** | "
            f"{np.mean(gaps):+.3f} | | {np.mean(ratios) if ratios else float('nan'):.2f} |"
        )
    return "\n".join(lines) + "\n"


REFERENCE = Path(__file__).parents[1] / "src/seqrep/data/reference/ts2vec_measured_seeds.csv"


def write_reference(rows: list[dict]) -> None:
    """The per-set summary that `seqrep bench series` shows as "TS2Vec measured"."""
    lines = [
        "# TS2Vec, its authors' code (PyPI ts2vec 0.1), measured by bench/ts2vec_measured.py on this",
        "# project's 2-core CPU machine, 2 torch threads: batch 8, lr 1e-3, 320-d output, 200",
        "# iterations (600 above 100,000 training values), max_train_length 3000, full-series max",
        "# pooling, seqrep's normalised splits and SVM probe (TS2Vec's C rule). accuracy: mean over",
        "# the seeds; seconds: pretraining + encoding + SVM, mean per seed; cpc_seconds_same_run:",
        "# seqrep's default CPC, seed 0, timed in the same run (the time ratio's numerator).",
        "dataset,accuracy,accuracy_std,seeds,seconds,cpc_seconds_same_run",
    ]
    for d in dict.fromkeys(r["dataset"] for r in rows):
        ts = [r for r in rows if r["dataset"] == d and r["method"] == "ts2vec"]
        cpc = [r["seconds"] for r in rows if r["dataset"] == d and r["method"] == "cpc"]
        if not ts or not cpc:
            continue
        acc = np.array([r["accuracy"] for r in ts])
        secs = np.mean([r["seconds"] for r in ts])
        lines.append(
            f"{d},{acc.mean():.3f},{acc.std():.3f},{len(ts)},{secs:.1f},{np.mean(cpc):.1f}"
        )
    REFERENCE.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(SHIPPED_DATASETS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(OUT / "ts2vec_measured.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows: list[dict] = json.loads(out.read_text()) if out.exists() else []
    done = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.datasets.split(","):
        # CPC's seed 0 beside TS2Vec's seeds, in the same process and conditions: the ratio.
        cells = [("cpc", seeds[0])] + [("ts2vec", s) for s in seeds]
        for method, seed in cells:
            if (name, method, seed) in done:
                continue
            row = (cpc_row if method == "cpc" else ts2vec_row)(name, seed)
            rows.append(row)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=1) + "\n")
            print(
                f"{name:22s} {method:7s} seed {seed}  acc {row['accuracy']:.3f}  "
                f"{row['seconds']:.1f} s",
                flush=True,
            )
    write_reference(rows)
    md = table(rows)
    out.with_suffix(".md").write_text(
        "# TS2Vec (its authors' code) over seeds, beside seqrep's CPC\n\n" + md
    )
    print(md)


if __name__ == "__main__":
    main()
