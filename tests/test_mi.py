"""MI bounds against closed forms, scipy densities and the bounds' known limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from seqrep.mi import (
    correlated_gaussian,
    gaussian_log_density_ratio,
    gaussian_mi,
    infonce_lower_bound,
    nwj_lower_bound,
    rho_for_mi,
)


def test_rho_and_mi_are_inverse():
    for mi in (0.1, 2.0, 10.0):
        assert math.isclose(gaussian_mi(rho_for_mi(mi, 20), 20), mi, rel_tol=1e-12)


def test_log_density_ratio_matches_scipy():
    # log p(y|x) - log p(y) from scipy's multivariate normal densities, pair by pair.
    d, rho = 3, 0.6
    x, y, _ = correlated_gaussian(4, d, gaussian_mi(rho, d), torch.Generator().manual_seed(0))
    got = gaussian_log_density_ratio(x.double(), y.double(), rho)
    for i in range(4):
        for j in range(4):
            cond = multivariate_normal(mean=rho * x[i].numpy(), cov=(1 - rho**2) * np.eye(d))
            want = cond.logpdf(y[j].numpy()) - multivariate_normal(np.zeros(d)).logpdf(y[j].numpy())
            assert math.isclose(float(got[i, j]), want, rel_tol=1e-6, abs_tol=1e-6)


def test_samples_have_the_stated_correlation_and_mi():
    x, y, mi = correlated_gaussian(200_000, 2, 1.0, torch.Generator().manual_seed(1))
    rho = rho_for_mi(1.0, 2)
    corr = float((x * y).mean())
    assert abs(corr - rho) < 0.01
    # Monte-Carlo E_joint[log p(y|x)/p(y)] is the true MI.
    var = 1 - rho**2
    log_ratio = -math.log(var) - ((y - rho * x) ** 2).sum(1) / (2 * var) + (y**2).sum(1) / 2
    assert abs(float(log_ratio.double().mean()) - mi) < 0.02


def _mean_bound(bound, mi, k, shift=0.0, batches=200, dim=20):
    gen = torch.Generator().manual_seed(2)
    rho = rho_for_mi(mi, dim)
    vals = []
    for _ in range(batches):
        x, y, _ = correlated_gaussian(k, dim, mi, gen)
        vals.append(float(bound(gaussian_log_density_ratio(x.double(), y.double(), rho) + shift)))
    return float(np.mean(vals)), vals


def test_infonce_with_true_critic_is_close_to_mi_when_mi_is_small():
    est, _ = _mean_bound(infonce_lower_bound, mi=1.0, k=512)
    assert 0.9 < est <= 1.0 + 0.01


def test_infonce_never_exceeds_log_k():
    for mi in (4.0, 10.0, 30.0):
        _, vals = _mean_bound(infonce_lower_bound, mi=mi, k=64, batches=50)
        assert max(vals) <= math.log(64) + 1e-9
    est, _ = _mean_bound(infonce_lower_bound, mi=30.0, k=64, batches=50)
    assert est > math.log(64) - 0.05  # saturates at log K


def test_nwj_with_optimal_critic_is_unbiased():
    # NWJ's optimum is f* = 1 + log p(y|x)/p(y); then E[NWJ] = MI exactly.
    est, _ = _mean_bound(nwj_lower_bound, mi=2.0, k=128, shift=1.0, batches=300)
    assert abs(est - 2.0) < 0.1


def test_bounds_reject_bad_scores():
    for bad in (torch.zeros(3, 4), torch.zeros(1, 1), torch.zeros(5)):
        with pytest.raises(ValueError, match="square"):
            infonce_lower_bound(bad)
        with pytest.raises(ValueError, match="square"):
            nwj_lower_bound(bad)
