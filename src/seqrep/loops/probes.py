"""Probes on frozen features: the TS2Vec SVM protocol and a logistic-regression probe.

The SVM protocol (Yue et al. 2022, as in shared/reference/timeseries_classification.csv): an RBF
SVC with ``gamma="scale"``; ``C = inf`` when the training split has fewer than 50 series or fewer
than 5 per class, else a 5-fold grid search over C in {1e-4, ..., 1e4, inf}.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqrep.data.series import SeriesDataset
from seqrep.nets import sliding_pool

__all__ = [
    "ProbeResult",
    "bootstrap_ci",
    "effective_rank",
    "encode_dataset",
    "encode_steps",
    "interquartile_mean",
    "linear_probe_r2",
    "logistic_probe",
    "raw_features",
    "svm_probe",
]

SVM_HARD_MARGIN_MAX_ITER = 1_000_000  # libsvm iterations: milliseconds on < 50 series
SVM_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, float("inf"))


@dataclass
class ProbeResult:
    accuracy: float
    detail: str


@torch.no_grad()
def encode_dataset(method: nn.Module, data: SeriesDataset, batch_size: int = 64) -> np.ndarray:
    """Frozen instance vectors of every series: [N, D] (``method.represent`` in eval mode, on
    the method's device)."""
    was_training = method.training
    method.eval()
    device = next(method.parameters()).device
    out = []
    for i in range(0, len(data), batch_size):
        sl = slice(i, i + batch_size)
        lengths = torch.from_numpy(data.lengths[sl])
        x = torch.from_numpy(data.values[sl, : int(lengths.max())])
        z = method.represent(x.to(device), lengths.to(device))  # type: ignore[operator]
        out.append(z.cpu().numpy())
    method.train(was_training)
    return np.concatenate(out)


@torch.no_grad()
def encode_steps(
    method: nn.Module,
    data: SeriesDataset,
    window: int = 0,
    causal: bool = True,
    batch_size: int = 64,
) -> np.ndarray:
    """Frozen per-step vectors of every series: [N, T', D] (``method.step_vectors``; pooled over
    the last ``window`` steps as the method's ``pool`` when ``window`` > 0), NaN past each
    series' end, in eval mode on the method's device."""
    was_training = method.training
    method.eval()
    device = next(method.parameters()).device
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(0, len(data), batch_size):
        sl = slice(i, i + batch_size)
        lengths = torch.from_numpy(data.lengths[sl]).to(device)
        x = torch.from_numpy(data.values[sl, : int(lengths.max())]).to(device)
        h, out_len = method.step_vectors(x, lengths, causal)  # type: ignore[operator]
        if window:
            pool = str(getattr(method, "pool", None) or method.forward_cpc.pool)  # type: ignore[union-attr]
            h = sliding_pool(h, out_len, window, pool)
        parts.append((h.cpu().numpy(), out_len.cpu().numpy()))
    method.train(was_training)
    width = max(h.shape[1] for h, _ in parts)
    out = np.full((len(data), width, parts[0][0].shape[2]), np.nan, dtype=np.float32)
    row = 0
    for h, lens in parts:
        for j, n in enumerate(lens):
            out[row + j, :n] = h[j, :n]
        row += len(lens)
    return out


def zero_padded(data: SeriesDataset, length: int) -> np.ndarray:
    """The normalised series with NaN padding set to 0, cut or padded to ``length`` steps:
    [N, length, C] (what the raw and MiniRocket baselines read)."""
    x = np.nan_to_num(data.values[:, :length])
    if x.shape[1] < length:
        x = np.pad(x, ((0, 0), (0, length - x.shape[1]), (0, 0)))
    return x


def raw_features(data: SeriesDataset, length: int) -> np.ndarray:
    """The raw baseline's input: :func:`zero_padded`, flattened: [N, length * C]."""
    return zero_padded(data, length).reshape(len(data), -1)


def uses_fixed_c(train_labels: np.ndarray) -> bool:
    """TS2Vec's rule: C = inf below 50 training series or below 5 series per class."""
    n, classes = len(train_labels), len(np.unique(train_labels))
    return n // classes < 5 or n < 50


def svm_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> ProbeResult:
    """RBF SVM on frozen features with TS2Vec's C rule; returns test accuracy."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.svm import SVC

    svm = SVC(C=float("inf"), gamma="scale")
    if uses_fixed_c(train_y):
        # With C = inf libsvm looks for a hard margin and never stops when classes overlap;
        # bound it, and fall back to the largest finite C of TS2Vec's grid, saying so.
        hard = SVC(C=float("inf"), gamma="scale", max_iter=SVM_HARD_MARGIN_MAX_ITER)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            hard.fit(train_x, train_y)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            svm = SVC(C=SVM_C_GRID[-2], gamma="scale").fit(train_x, train_y)
            detail = (
                f"C=inf did not converge in {SVM_HARD_MARGIN_MAX_ITER} iterations (the classes "
                f"overlap in feature space); fell back to C={SVM_C_GRID[-2]:g}"
            )
        else:
            svm, detail = hard, "C=inf (small training split)"
    else:
        if len(train_y) > 10000:  # as TS2Vec: grid-search on a stratified 10k subset
            train_x, _, train_y, _ = train_test_split(
                train_x, train_y, train_size=10000, random_state=0, stratify=train_y
            )
        search = GridSearchCV(svm, {"C": list(SVM_C_GRID)}, cv=5, n_jobs=1)
        search.fit(train_x, train_y)
        svm = search.best_estimator_
        detail = f"C={search.best_params_['C']:g} (5-fold grid)"
    return ProbeResult(float((svm.predict(test_x) == test_y).mean()), detail)


def logistic_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> ProbeResult:
    """Standardised features + L2 logistic regression (C=1); returns test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    clf.fit(train_x, train_y)
    return ProbeResult(float((clf.predict(test_x) == test_y).mean()), "logistic C=1")


def effective_rank(features: np.ndarray) -> float:
    """Roy & Vetterli's (2007) effective rank of features [N, F]: exp of the Shannon entropy of
    the centred features' normalised singular values; F equal singular values give F, one
    dominant direction gives about 1."""
    x = np.asarray(features, dtype=np.float64)
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    if sv.sum() <= 0:
        return 0.0
    p = sv / sv.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def linear_probe_r2(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    """Held-out R^2 of a least-squares linear map features [N, F] -> targets [N, T] (averaged
    over targets, each weighted by its variance)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    model = LinearRegression().fit(train_x, train_y)
    return float(r2_score(test_y, model.predict(test_x), multioutput="variance_weighted"))


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50% of the values (rliable's IQM; 25% trimmed from each end)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    k = int(0.25 * len(v))  # as scipy.stats.trim_mean(v, 0.25), which rliable uses
    return float(v[k : len(v) - k].mean())


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over runs: values [R]."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    stats = np.array([statistic(values[i]) for i in idx])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)
