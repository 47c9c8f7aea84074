"""MomentumEncoder and critics against hand computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqrep.critics import BilinearCritic, BilinearPredictors, CosineCritic
from seqrep.nets import MomentumEncoder, mlp


def test_momentum_update_formula_and_no_grad():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    key = MomentumEncoder(online, tau=0.1)
    before = [p.clone() for p in key.target.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    online.train()
    online(torch.randn(8, 3))  # changes BatchNorm's running stats
    key.update(online)
    for b, k, o in zip(before, key.target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(k, 0.9 * b + 0.1 * o)
        assert not k.requires_grad
    torch.testing.assert_close(key.target[1].running_mean, online[1].running_mean)
    out = key(torch.randn(2, 3))
    assert not out.requires_grad
    key.update(online, tau=1.0)
    for k, o in zip(key.target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(k, o)


def test_momentum_rejects_bad_tau_and_other_architecture():
    with pytest.raises(ValueError, match="tau"):
        MomentumEncoder(nn.Linear(2, 2), tau=1.5)
    key = MomentumEncoder(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="architecture"):
        key.update(nn.Linear(3, 2))


def test_bilinear_critic_curl_init_and_score():
    torch.manual_seed(0)
    c = BilinearCritic(4, 3)
    assert c.weight.shape == (4, 3) and 0 <= c.weight.min().item() and c.weight.max().item() < 1
    q, k = torch.randn(2, 4), torch.randn(5, 3)
    want = torch.tensor(
        [[float(q[i] @ c.weight.detach() @ k[j]) for j in range(5)] for i in range(2)]
    )
    torch.testing.assert_close(c.pairwise(q, k).detach(), want)
    with pytest.raises(ValueError, match="features"):
        c.pairwise(torch.randn(2, 3), k)
    with pytest.raises(ValueError, match="init"):
        BilinearCritic(3, init="zeros")


def test_bilinear_predictors_are_k_separate_maps():
    torch.manual_seed(0)
    pred = BilinearPredictors(context_dim=5, z_dim=3, steps=4)
    c = torch.randn(2, 7, 5)
    out = pred(c)
    assert out.shape == (2, 7, 4, 3)
    w = pred.proj.weight.view(4, 3, 5)
    for k in range(4):
        torch.testing.assert_close(out[:, :, k], c @ w[k].T)


def test_cosine_critic_learnable_temperature():
    c = CosineCritic(temperature=0.5, learnable=True)
    assert abs(c.temperature - 0.5) < 1e-6
    assert any(p.requires_grad for p in c.parameters())
    with pytest.raises(ValueError, match="temperature"):
        CosineCritic(temperature=0.0)


def test_mlp_shapes():
    net = mlp(3, [8, 8], 2)
    assert net(torch.randn(5, 3)).shape == (5, 2)
    assert sum(isinstance(m, nn.ReLU) for m in net) == 2


def test_pool_steps_matches_a_loop_over_valid_steps():
    """max and max-mean pooling read only each row's valid steps (padding may hold anything)."""
    from seqrep.nets import pool_steps

    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 9, 3, generator=g, dtype=torch.float64)
    lengths = torch.tensor([9, 1, 5, 3])
    h[1, 1:] = 1e6  # padding larger than any valid value must not reach the max or the mean
    expected_max, expected_mean = [], []
    for b in range(4):
        rows = [h[b, t] for t in range(int(lengths[b]))]
        expected_max.append([max(float(r[d]) for r in rows) for d in range(3)])
        expected_mean.append([sum(float(r[d]) for r in rows) / len(rows) for d in range(3)])
    want_max = torch.tensor(expected_max, dtype=torch.float64)
    want_mean = torch.tensor(expected_mean, dtype=torch.float64)
    torch.testing.assert_close(pool_steps(h, lengths, "max"), want_max)
    torch.testing.assert_close(
        pool_steps(h, lengths, "max-mean"), torch.cat([want_max, want_mean], dim=1)
    )
    with pytest.raises(ValueError, match="unknown pool 'sum'; choose max, max-mean"):
        pool_steps(h, lengths, "sum")
