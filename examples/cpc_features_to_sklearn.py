"""CPC features into scikit-learn: pretrain on a multivariate UCR/UEA set without its labels,
load the run back in one call, and classify the frozen features with your own pipeline.

PickupGestureWiimoteZ (shipped inside aeon): the z-axis acceleration of a Wii remote during
10 gestures, 50 training and 50 test series of 29 to 361 steps (unequal lengths: the encoder
reads them as they are). The labels reach only the classifier. The same classifier on the raw
series, resampled to one length, is the baseline.

    python examples/cpc_features_to_sklearn.py            # about a minute on a CPU
    python examples/cpc_features_to_sklearn.py --quick    # seconds (the tests' run)
"""

from __future__ import annotations

import argparse

import numpy as np
from aeon.datasets import load_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import seqrep


def resampled(X, length: int = 100) -> np.ndarray:
    """Each series linearly interpolated to ``length`` steps, channels concatenated:
    [n_cases, n_channels * length] (the raw baseline needs one length)."""
    rows = []
    for series in X:
        grid = np.linspace(0, series.shape[1] - 1, length)
        rows.append(np.concatenate([np.interp(grid, np.arange(len(c)), c) for c in series]))
    return np.asarray(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="PickupGestureWiimoteZ", help="a set aeon ships")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--out", default="runs/examples/cpc-features")
    parser.add_argument("--quick", action="store_true", help="5 iterations (the tests' run)")
    args = parser.parse_args()
    iterations = 5 if args.quick else args.iterations

    # A run folder (config, metrics, checkpoint, report); rerunning resumes or reuses it.
    seqrep.pretrain(data=args.data, method="cpc", iterations=iterations, out=args.out)
    encoder = seqrep.load(args.out)  # a fitted CPCTransformer, z-scoring with the run's data

    # A list of [n_channels, T_i] arrays (or one [n_cases, n_channels, T] array).
    X, y = load_classification(args.data, split="train")
    Xt, yt = load_classification(args.data, split="test")
    features, features_test = encoder.transform(X), encoder.transform(Xt)  # [n_cases, d]
    print(f"{args.data}: {len(X)} training series -> features {features.shape}")

    def classifier():
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))

    for name, train, test in (
        ("CPC features", features, features_test),
        ("raw series", resampled(X), resampled(Xt)),
    ):
        cv = cross_val_score(classifier(), train, y, cv=5).mean()
        accuracy = classifier().fit(train, y).score(test, yt)
        print(f"{name:13s} 5-fold CV accuracy {cv:.3f}, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
