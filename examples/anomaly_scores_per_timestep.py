"""Per-time-step anomaly scores from a causal CPC encoder, on a real anomaly benchmark.

KDD-TSAD 135 (UCR anomaly archive, "InternalBleeding16", shipped inside aeon): 7,501 steps of
a physiological signal whose first 1,200 are known normal (the training part) and which holds
one labelled anomaly of 12 steps. CPC is pretrained on windows of the normal part only; every
step of the whole series is then encoded causally from the last --context steps alone (a step's
vector reads no later step and no step long before it, as a streaming detector would), and a
step's anomaly score is the mean distance of its vector to its k nearest vectors of the normal
part. The same nearest-neighbour score on raw windows of
the signal is the baseline. Scored as the archive scores: is the highest-scoring step within
100 steps of the labelled anomaly; and ROC AUC over all steps after the training part.

    python examples/anomaly_scores_per_timestep.py           # a few minutes on a CPU
    python examples/anomaly_scores_per_timestep.py --quick   # seconds (the tests' run)

Writes anomaly.png (the series, the labelled anomaly and both scores) into --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from aeon.datasets import load_kdd_tsad_135
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

import seqrep

TOLERANCE = 100  # the UCR anomaly archive's: a detection within 100 steps of the anomaly counts


def knn_score(reference: np.ndarray, query: np.ndarray, k: int = 5) -> np.ndarray:
    """Mean distance of each query row [M, D] to its k nearest reference rows [R, D]: [M]."""
    distances, _ = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(query)
    return distances.mean(1)


def streaming_vectors(
    encoder: seqrep.CPCTransformer, x: np.ndarray, context: int, stride: int
) -> np.ndarray:
    """One vector per step of ``x`` [T], each computed from at most the last ``context`` steps:
    [T, D]. Chunks of ``context`` steps every ``stride`` steps are encoded per time step, and
    each keeps the vectors of its last ``stride`` steps (the first chunk keeps all of its own).
    Reading the whole history instead drifts: CPC's context vector was trained on windows."""
    starts = list(range(0, len(x) - context + 1, stride))
    if starts[-1] + context < len(x):
        starts.append(len(x) - context)
    chunks = np.stack([x[s : s + context] for s in starts])[:, None, :]  # [n, 1, context]
    vectors = encoder.encode(chunks, per_timestep=True)  # [n, context, D]
    out = np.empty((len(x), vectors.shape[2]))
    out[:context] = vectors[0]
    for chunk, s in zip(vectors, starts, strict=True):
        out[s + context - stride : s + context] = chunk[context - stride :]
    return out


def raw_windows(x: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` steps ending at each step (causal; the first ones edge-padded): [T, width]."""
    padded = np.concatenate([np.full(width - 1, x[0]), x])
    return np.lib.stride_tricks.sliding_window_view(padded, width)


def report(name: str, score: np.ndarray, labels: np.ndarray, start: int) -> str:
    anomaly = np.flatnonzero(labels)
    top = start + int(np.argmax(score[start:]))
    hit = anomaly[0] - TOLERANCE <= top <= anomaly[-1] + TOLERANCE
    auc = roc_auc_score(labels[start:], score[start:])
    return f"{name:18s} top-scoring step {top:5d} ({'hit' if hit else 'miss'}), ROC AUC {auc:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", default="5,300", help="CPC training budgets to compare (comma-separated)"
    )
    parser.add_argument("--context", type=int, default=256, help="steps each CPC vector reads")
    parser.add_argument("--window", type=int, default=64, help="raw baseline's window (steps)")
    parser.add_argument("--out", default="runs/examples/anomaly")
    parser.add_argument("--quick", action="store_true", help="5 iterations only (the tests' run)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    normal, _ = load_kdd_tsad_135(split="train")  # [1200]: the known-normal prefix
    series, labels = load_kdd_tsad_135(split="test")  # [7501], labels [7501] in {0, 1}
    start = len(normal)

    # Training windows of the normal part, as an unlabelled .npy set [n, 1, 256].
    windows = np.lib.stride_tricks.sliding_window_view(normal, 256)[::16][:, None, :]
    np.save(out / "normal_windows.npy", windows)
    scores = {}
    for iterations in [5] if args.quick else [int(n) for n in args.iterations.split(",")]:
        run = out / f"cpc-{iterations}"
        seqrep.pretrain(
            data=str(out / "normal_windows.npy"), iterations=iterations, batch_size=16, out=run,
        )  # fmt: skip
        steps = streaming_vectors(seqrep.load(run), series, args.context, stride=32)  # [T, D]
        scores[f"CPC, {iterations} it."] = knn_score(steps[:start], steps)
    raw = raw_windows(series, args.window)
    scores["raw windows"] = knn_score(raw_windows(normal, args.window), raw)
    for name, score in scores.items():
        print(report(name, score, labels, start))

    fig, axes = plt.subplots(1 + len(scores), 1, figsize=(11, 2 + 1.6 * len(scores)), sharex=True)
    axes[0].plot(series, lw=0.6)
    axes[0].set_ylabel("signal")
    for ax, (name, score) in zip(axes[1:], scores.items(), strict=True):
        ax.plot(score, lw=0.6)
        ax.set_ylabel(f"{name}\nkNN score", fontsize=8)
    for ax in axes:
        ax.axvspan(np.flatnonzero(labels)[0], np.flatnonzero(labels)[-1], color="red", alpha=0.3)
        ax.axvline(start, color="gray", ls="--", lw=0.8)
    axes[0].set_title("KDD-TSAD 135: labelled anomaly in red; training part left of the dashes")
    axes[-1].set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(out / "anomaly.png", dpi=110)
    print(f"figure: {out / 'anomaly.png'}")


if __name__ == "__main__":
    main()
