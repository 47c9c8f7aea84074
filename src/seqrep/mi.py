"""Mutual-information lower bounds and the correlated-Gaussian benchmark (Poole et al. 2019).

Bounds take a score matrix ``scores[i, j] = f(x_i, y_j)`` of shape [K, K] whose diagonal holds
the K samples from the joint p(x, y) and whose off-diagonal entries stand for the product of
marginals p(x)p(y). All values are in nats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from seqrep.losses import at_least_float32, info_nce_bound

__all__ = [
    "correlated_gaussian",
    "gaussian_log_density_ratio",
    "gaussian_mi",
    "infonce_lower_bound",
    "nwj_lower_bound",
    "rho_for_mi",
]


def _check_scores(scores: Tensor) -> int:
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(
            f"scores must be a square [K, K] matrix with K >= 2, got {tuple(scores.shape)}"
        )
    return int(scores.shape[0])


def gaussian_mi(rho: float, dim: int) -> float:
    """I(x; y) = -(d/2) log(1 - rho^2) for y = rho x + sqrt(1 - rho^2) eps, x, eps ~ N(0, I_d)."""
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (-1, 1), got {rho}")
    return -0.5 * dim * math.log1p(-rho * rho)


def rho_for_mi(mi: float, dim: int) -> float:
    """The correlation giving mutual information ``mi`` nats in ``dim`` dimensions."""
    if mi < 0:
        raise ValueError(f"mi must be >= 0, got {mi}")
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


def correlated_gaussian(
    batch: int, dim: int, mi: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, float]:
    """Samples (x, y) with known MI.

    Returns:
        x [batch, dim], y [batch, dim] (float32, on the generator's device) and the true MI
        in nats.
    """
    rho = rho_for_mi(mi, dim)
    device = generator.device if generator is not None else None
    x = torch.randn(batch, dim, generator=generator, device=device)
    eps = torch.randn(batch, dim, generator=generator, device=device)
    y = rho * x + math.sqrt(1.0 - rho * rho) * eps
    return x, y, gaussian_mi(rho, dim)


def gaussian_log_density_ratio(x: Tensor, y: Tensor, rho: float) -> Tensor:
    """The optimal critic log p(y | x) - log p(y) for every pair: [K, D], [K, D] -> [K, K].

    Entry [i, j] is the critic on (x_i, y_j); its expectation over the joint is the true MI.
    """
    dim = x.shape[1]
    var = 1.0 - rho * rho
    diff2 = (y[None, :, :] - rho * x[:, None, :]).pow(2).sum(-1)
    return -0.5 * dim * math.log(var) - diff2 / (2.0 * var) + 0.5 * y.pow(2).sum(-1)[None, :]


def infonce_lower_bound(scores: Tensor) -> Tensor:
    """InfoNCE bound ``log K + mean_i [f(x_i, y_i) - logsumexp_j f(x_i, y_j)]``; never > log K."""
    k = _check_scores(scores)
    target = torch.arange(k, device=scores.device)
    return info_nce_bound(F.cross_entropy(at_least_float32(scores), target), k)


def nwj_lower_bound(scores: Tensor) -> Tensor:
    """NWJ / f-GAN KL bound ``E_p[f] - e^{-1} E_{p(x)p(y)}[e^f]`` (Nguyen, Wainwright, Jordan).

    The marginal term averages the K(K-1) off-diagonal pairs, computed in log space.
    """
    k = _check_scores(scores)
    scores = at_least_float32(scores)
    joint = scores.diagonal().mean()
    off = scores.masked_fill(torch.eye(k, dtype=torch.bool, device=scores.device), float("-inf"))
    log_mean_marginal = torch.logsumexp(off.flatten(), 0) - math.log(k * (k - 1))
    return joint - torch.exp(log_mean_marginal - 1.0)
