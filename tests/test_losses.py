"""Losses against brute-force loops, closed forms, gradcheck and pytorch-metric-learning."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from seqrep.critics import BilinearCritic, ConcatCritic, CosineCritic
from seqrep.losses import (
    batch_contrastive_margin,
    batch_triplet,
    contrastive_margin,
    info_nce,
    info_nce_bound,
    info_nce_result,
    pairwise_distances,
    triplet_margin,
)

D64 = torch.float64


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=D64) * scale


# ----------------------------------------------------------------------------- references
def ref_nce_row(scores: list[float], positive: int) -> float:
    """-log softmax(scores)[positive] with a hand-written, max-shifted log-sum-exp."""
    m = max(scores)
    lse = m + math.log(sum(math.exp(s - m) for s in scores))
    return lse - scores[positive]


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum(float(x) * float(y) for x, y in zip(a, b, strict=True))


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def ref_info_nce(q, k, negatives=None, sim=dot, t=1.0) -> list[float]:
    out = []
    for i in range(len(q)):
        if negatives is None:
            scores = [sim(q[i], k[j]) / t for j in range(len(k))]
            out.append(ref_nce_row(scores, i))
        else:
            negs = negatives if negatives.ndim == 2 else negatives[i]
            scores = [sim(q[i], k[i]) / t] + [sim(q[i], n) / t for n in negs]
            out.append(ref_nce_row(scores, 0))
    return out


def dist(a: torch.Tensor, b: torch.Tensor, squared: bool = False) -> float:
    d2 = sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True))
    return d2 if squared else math.sqrt(d2)


# ----------------------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_info_nce_in_batch_matches_loop(similarity, temperature):
    q, k = rand(7, 5, seed=1), rand(7, 5, seed=2)
    sim = dot if similarity == "dot" else cos
    want = ref_info_nce(q, k, sim=sim, t=temperature)
    got = info_nce(q, k, similarity=similarity, temperature=temperature, reduction="none")
    torch.testing.assert_close(got, torch.tensor(want, dtype=got.dtype), rtol=1e-6, atol=1e-6)
    mean = info_nce(q, k, similarity=similarity, temperature=temperature)
    assert math.isclose(float(mean), sum(want) / len(want), rel_tol=1e-6)


def test_info_nce_shared_and_per_query_negatives_match_loop():
    q, k = rand(6, 4, seed=3), rand(6, 4, seed=4)
    bank, per_query = rand(9, 4, seed=5), rand(6, 3, 4, seed=6)
    for negs in (bank, per_query):
        got = info_nce(q, k, negs, temperature=0.5, reduction="none")
        want = torch.tensor(ref_info_nce(q, k, negs, t=0.5), dtype=got.dtype)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_info_nce_bilinear_and_concat_critics_match_loop():
    q, k = rand(5, 3, seed=7), rand(5, 4, seed=8)
    critic = BilinearCritic(3, 4).double()
    w = critic.weight.detach()

    def bil(a, b):
        return sum(float(a[i]) * float(w[i, j]) * float(b[j]) for i in range(3) for j in range(4))

    got = info_nce(q, k, similarity=critic, reduction="none")
    torch.testing.assert_close(got, torch.tensor(ref_info_nce(q, k, sim=bil), dtype=got.dtype))
    negs = rand(5, 2, 4, seed=9)
    got = info_nce(q, k, negs, similarity=critic, reduction="none")
    torch.testing.assert_close(
        got, torch.tensor(ref_info_nce(q, k, negs, sim=bil), dtype=got.dtype)
    )

    net = torch.nn.Linear(7, 1).double()
    concat = ConcatCritic(net)

    def cat_sim(a, b):
        return float(net(torch.cat([a, b])).detach())

    got = info_nce(q, k, similarity=concat, reduction="none")
    torch.testing.assert_close(got, torch.tensor(ref_info_nce(q, k, sim=cat_sim), dtype=got.dtype))


def test_info_nce_collinear_is_exactly_log_n():
    # Every candidate scores the same: the positive is one of N equals, loss = -log(1/N).
    v = torch.tensor([[1.0, 2.0, -1.0]], dtype=D64)
    q = v.repeat(8, 1) * torch.arange(1, 9, dtype=D64)[:, None]  # collinear, different norms
    for n_neg, negs in ((8, None), (13, v.repeat(12, 1)), (6, v.repeat(8, 5, 1))):
        res = info_nce_result(q, v.repeat(8, 1), negs, similarity="cosine", temperature=0.07)
        assert res.num_candidates == n_neg
        torch.testing.assert_close(res.loss, torch.tensor(math.log(n_neg), dtype=res.loss.dtype))


def test_info_nce_result_accuracy_and_logits():
    q = torch.eye(4, dtype=D64) * 5
    res = info_nce_result(q, q)
    assert float(res.accuracy) == 1.0
    assert res.logits.shape == (4, 4) and res.target.tolist() == [0, 1, 2, 3]
    res = info_nce_result(q, q.roll(1, dims=0))
    assert float(res.accuracy) == 0.0


def test_info_nce_reductions():
    q, k = rand(5, 3, seed=10), rand(5, 3, seed=11)
    per = info_nce(q, k, reduction="none")
    torch.testing.assert_close(info_nce(q, k, reduction="sum"), per.sum())
    torch.testing.assert_close(info_nce(q, k, reduction="mean"), per.mean())


def test_info_nce_small_temperature_is_stable():
    # Scores of order 1e3 after dividing by t = 0.01: naive exp overflows, log-sum-exp does not.
    q, k = rand(16, 8, seed=12, scale=3.0), rand(16, 8, seed=13, scale=3.0)
    want = torch.tensor(ref_info_nce(q, k, t=0.01), dtype=D64)
    got = info_nce(q.float(), k.float(), temperature=0.01, reduction="none")
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-2)


def test_info_nce_bf16_autocast():
    q, k = rand(32, 16, seed=14).float(), rand(32, 16, seed=15).float()
    q.requires_grad_(True)
    ref = info_nce(q, k, similarity="cosine", temperature=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = info_nce(q, k, similarity="cosine", temperature=0.05)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    assert abs(got.item() - ref.item()) < 0.05 * ref.item() + 0.05
    got.backward()
    assert torch.isfinite(q.grad).all()


def test_info_nce_gradcheck():
    q = rand(4, 3, seed=16).requires_grad_(True)
    k = rand(4, 3, seed=17).requires_grad_(True)
    n = rand(4, 2, 3, seed=18).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, temperature=0.3), (q, k))
    assert torch.autograd.gradcheck(lambda a, b, c: info_nce(a, b, c), (q, k, n))
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, similarity="cosine"), (q, k))


def test_info_nce_bound():
    assert math.isclose(float(info_nce_bound(torch.tensor(math.log(64.0)), 64)), 0.0, abs_tol=1e-6)
    assert math.isclose(float(info_nce_bound(0.0, 64)), math.log(64))
    with pytest.raises(ValueError, match="num_candidates"):
        info_nce_bound(0.0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"query": torch.randn(4, 3), "positive": torch.randn(5, 3)}, "same batch size"),
        ({"query": torch.randn(4, 3), "positive": torch.randn(4, 2)}, "features"),
        ({"query": torch.randn(0, 3), "positive": torch.randn(0, 3)}, "empty batch"),
        ({"query": torch.randn(4), "positive": torch.randn(4)}, r"query must have shape \[B, D\]"),
        (
            {"query": torch.full((2, 3), float("nan")), "positive": torch.randn(2, 3)},
            "query contains NaN",
        ),
        (
            {"query": torch.randn(2, 3), "positive": torch.randn(2, 3), "temperature": 0.0},
            "temperature",
        ),
        (
            {"query": torch.randn(2, 3), "positive": torch.randn(2, 3), "temperature": -1.0},
            "temperature",
        ),
        (
            {"query": torch.randn(2, 3), "positive": torch.randn(2, 3), "similarity": "l2"},
            "similarity",
        ),
        (
            {"query": torch.randn(2, 3), "positive": torch.randn(2, 3), "reduction": "max"},
            "reduction",
        ),
        (
            {
                "query": torch.randn(2, 3),
                "positive": torch.randn(2, 3),
                "negatives": torch.randn(3, 2, 3),
            },
            "same batch size",
        ),
        (
            {
                "query": torch.randn(2, 3),
                "positive": torch.randn(2, 3),
                "negatives": torch.randn(5, 4),
            },
            "negatives have 4 features",
        ),
        (
            {
                "query": torch.randn(2, 3),
                "positive": torch.randn(2, 3),
                "negatives": torch.randn(3),
            },
            "negatives must be",
        ),
    ],
)
def test_info_nce_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        info_nce(**kwargs)


def test_cosine_critic_equals_cosine_similarity_with_temperature():
    q, k = rand(5, 4, seed=19), rand(5, 4, seed=20)
    a = info_nce(q, k, similarity=CosineCritic(temperature=0.2).double(), reduction="none")
    b = info_nce(q, k, similarity="cosine", temperature=0.2, reduction="none")
    torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- margin losses
@pytest.mark.parametrize("squared", [True, False])
def test_contrastive_margin_matches_loop(squared):
    a, b = rand(9, 4, seed=21), rand(9, 4, seed=22) * 0.5
    same = torch.tensor([1, 0, 1, 0, 0, 1, 0, 1, 0], dtype=torch.bool)
    m = 2.0
    want = []
    for i in range(9):
        d = dist(a[i], b[i])
        if squared:
            want.append(0.5 * d * d if same[i] else 0.5 * max(0.0, m - d) ** 2)
        else:
            want.append(d if same[i] else max(0.0, m - d))
    got = contrastive_margin(a, b, same, m, squared=squared, reduction="none")
    torch.testing.assert_close(got, torch.tensor(want, dtype=D64))
    assert math.isclose(float(contrastive_margin(a, b, same, m, squared=squared)), sum(want) / 9)


def test_contrastive_margin_gradcheck_and_identical_pairs():
    a = rand(5, 3, seed=23).requires_grad_(True)
    b = rand(5, 3, seed=24).requires_grad_(True)
    same = torch.tensor([1, 0, 1, 0, 1])
    for squared in (True, False):
        assert torch.autograd.gradcheck(
            lambda x, y, s=squared: contrastive_margin(x, y, same, 3.0, squared=s), (a, b)
        )
    # Identical "same" pairs: zero loss and a finite (zero) gradient, not NaN from sqrt(0).
    x = rand(3, 2, seed=25).requires_grad_(True)
    loss = contrastive_margin(x, x.detach().clone(), torch.ones(3), squared=False)
    loss.backward()
    assert loss.item() < 1e-5 and torch.isfinite(x.grad).all()


def test_batch_contrastive_margin_matches_loop():
    x, y = rand(8, 3, seed=26), torch.tensor([0, 1, 0, 2, 1, 0, 2, 2])
    want = []
    for i, j in itertools.combinations(range(8), 2):
        d = dist(x[i], x[j])
        want.append(0.5 * d * d if y[i] == y[j] else 0.5 * max(0.0, 1.5 - d) ** 2)
    got = batch_contrastive_margin(x, y, 1.5, reduction="none")
    torch.testing.assert_close(got, torch.tensor(want, dtype=D64))


def test_triplet_margin_matches_loop_and_gradcheck():
    a, p, n = rand(6, 3, seed=27), rand(6, 3, seed=28), rand(6, 3, seed=29)
    for squared in (False, True):
        want = [
            max(0.0, dist(a[i], p[i], squared) - dist(a[i], n[i], squared) + 0.7) for i in range(6)
        ]
        got = triplet_margin(a, p, n, 0.7, squared=squared, reduction="none")
        torch.testing.assert_close(got, torch.tensor(want, dtype=D64))
    args = tuple(t.clone().requires_grad_(True) for t in (a, p, n))
    assert torch.autograd.gradcheck(lambda x, y, z: triplet_margin(x, y, z, 2.0), args)


def ref_triplets(x, y, margin, mining, squared=False) -> list[float]:
    b = len(x)
    d = [[dist(x[i], x[j], squared) for j in range(b)] for i in range(b)]
    out = []
    if mining == "all":
        for a, p, n in itertools.product(range(b), repeat=3):
            if a != p and y[a] == y[p] and y[n] != y[a]:
                out.append(max(0.0, d[a][p] - d[a][n] + margin))
    elif mining == "batch_hard":
        for a in range(b):
            pos = [d[a][p] for p in range(b) if p != a and y[p] == y[a]]
            neg = [d[a][n] for n in range(b) if y[n] != y[a]]
            if pos and neg:
                out.append(max(0.0, max(pos) - min(neg) + margin))
    else:  # semi_hard: nearest negative farther than the positive, counted if within margin
        for a, p in itertools.product(range(b), repeat=2):
            if a == p or y[a] != y[p]:
                continue
            farther = [d[a][n] for n in range(b) if y[n] != y[a] and d[a][n] > d[a][p]]
            if farther and min(farther) < d[a][p] + margin:
                out.append(d[a][p] - min(farther) + margin)
    return out


@pytest.mark.parametrize("mining", ["all", "batch_hard", "semi_hard"])
@pytest.mark.parametrize("squared", [False, True])
def test_batch_triplet_matches_loop(mining, squared):
    x = rand(12, 4, seed=30)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 3, 3])
    margin = 1.0 if not squared else 3.0
    want = sorted(ref_triplets(x, y, margin, mining, squared))
    got = batch_triplet(x, y, margin, mining=mining, squared=squared, reduction="none")
    assert len(want) > 0
    torch.testing.assert_close(sorted(got.tolist()), want, rtol=1e-9, atol=1e-9)
    mean = batch_triplet(x, y, margin, mining=mining, squared=squared)
    assert math.isclose(float(mean), sum(want) / len(want), rel_tol=1e-9)


@pytest.mark.parametrize("mining", ["all", "batch_hard", "semi_hard"])
def test_batch_triplet_gradcheck(mining):
    x = rand(8, 3, seed=31).requires_grad_(True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda e: batch_triplet(e, y, 5.0, mining=mining), (x,))


@pytest.mark.parametrize("mining", ["all", "batch_hard", "semi_hard"])
def test_batch_triplet_no_valid_triplet_is_differentiable_zero(mining):
    x = rand(4, 3, seed=32).requires_grad_(True)
    for labels in (torch.tensor([0, 1, 2, 3]), torch.tensor([5, 5, 5, 5])):
        loss = batch_triplet(x, labels, 0.5, mining=mining)
        assert float(loss.detach()) == 0.0
        loss.backward()
        assert x.grad is not None and float(x.grad.abs().sum()) == 0.0


def test_pairwise_distances_match_cdist():
    x = rand(10, 6, seed=33)
    torch.testing.assert_close(pairwise_distances(x), torch.cdist(x, x))
    torch.testing.assert_close(pairwise_distances(x, squared=True), torch.cdist(x, x) ** 2)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda: batch_triplet(torch.randn(4, 2), torch.tensor([0, 1, 0])), "labels has length 3"),
        (lambda: batch_triplet(torch.randn(4, 2), torch.zeros(4, 1)), "labels must be a 1-D"),
        (lambda: batch_triplet(torch.randn(0, 2), torch.zeros(0)), "empty batch"),
        (lambda: batch_triplet(torch.randn(4, 2), torch.zeros(4), mining="hard"), "mining"),
        (lambda: batch_triplet(torch.randn(4, 2), torch.zeros(4), margin=-1), "margin"),
        (
            lambda: batch_triplet(torch.tensor([[float("nan"), 0.0]] * 2), torch.zeros(2)),
            "embeddings contains NaN",
        ),
        (
            lambda: triplet_margin(torch.randn(3, 2), torch.randn(3, 2), torch.randn(4, 2)),
            "shapes must match",
        ),
        (
            lambda: contrastive_margin(torch.randn(3, 2), torch.randn(3, 2), torch.ones(2)),
            "same must be",
        ),
        (
            lambda: contrastive_margin(torch.randn(3, 2), torch.randn(3, 3), torch.ones(3)),
            "shapes must match",
        ),
        (lambda: batch_contrastive_margin(torch.randn(1, 2), torch.zeros(1)), "at least 2"),
    ],
)
def test_margin_losses_bad_input(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


# ----------------------------------------------------------------------------- peer library
pml = pytest.importorskip("pytorch_metric_learning")


def avg_nonzero(v: torch.Tensor) -> torch.Tensor:
    nz = v[v > 0]
    return nz.mean() if nz.numel() else v.sum() * 0


def test_matches_pml_triplet_margin_loss_all_triplets():
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss

    x, y = (
        rand(24, 8, seed=34),
        torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(0)),
    )
    peer = TripletMarginLoss(margin=0.3, distance=LpDistance(normalize_embeddings=False))
    ours = avg_nonzero(batch_triplet(x, y, 0.3, mining="all", reduction="none"))
    torch.testing.assert_close(ours, peer(x, y).to(ours.dtype), rtol=1e-6, atol=1e-8)


def test_matches_pml_batch_hard():
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner

    x, y = (
        rand(32, 8, seed=35),
        torch.randint(0, 5, (32,), generator=torch.Generator().manual_seed(1)),
    )
    distance = LpDistance(normalize_embeddings=False)
    peer_loss = TripletMarginLoss(margin=0.5, distance=distance)
    peer = peer_loss(x, y, BatchHardMiner(distance=distance)(x, y))
    ours = avg_nonzero(batch_triplet(x, y, 0.5, mining="batch_hard", reduction="none"))
    torch.testing.assert_close(ours, peer.to(ours.dtype), rtol=1e-6, atol=1e-8)


def test_matches_pml_contrastive_loss():
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import ContrastiveLoss

    x, y = (
        rand(20, 6, seed=36),
        torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(2)),
    )
    peer = ContrastiveLoss(
        pos_margin=0.0, neg_margin=4.0, distance=LpDistance(normalize_embeddings=False)
    )
    per_pair = batch_contrastive_margin(x, y, 4.0, squared=False, reduction="none")
    i, j = torch.triu_indices(20, 20, 1)
    same = y[i] == y[j]
    ours = avg_nonzero(per_pair[same]) + avg_nonzero(per_pair[~same])
    torch.testing.assert_close(ours, peer(x, y).to(ours.dtype), rtol=1e-6, atol=1e-8)
