"""CPC and window objectives on sequences, the series loaders, and the SVM protocol."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from seqrep.cli import main
from seqrep.data.series import SeriesDataset, Standardizer, load_series, load_train_test
from seqrep.loops.pretrain import PretrainConfig, crop_batch, crop_in_context, pretrain
from seqrep.loops.probes import svm_probe, uses_fixed_c
from seqrep.methods import CPC, WindowMetricLearning, crop_windows, sample_negatives
from seqrep.methods.cpc import reverse_valid
from seqrep.nets import DilatedConvEncoder, StridedConvEncoder


# ----------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("source", ["batch", "time", "both", "position"])
def test_negative_sampler_respects_validity_and_exclusions(source):
    lengths = torch.tensor([5, 0, 3, 7])
    t_max = 8
    valid = {b * t_max + t for b in range(4) for t in range(int(lengths[b]))}
    pos_seq = torch.tensor([0, 0, 2, 3, 3, 3])
    pos_t = torch.tensor([1, 4, 2, 0, 5, 6])
    pos_flat = pos_seq * t_max + pos_t
    gen = torch.Generator().manual_seed(0)
    neg = sample_negatives(pos_flat, pos_seq, lengths, t_max, 4000, source, gen)
    for q in range(len(pos_flat)):
        b, p = int(pos_seq[q]), int(pos_flat[q])
        if source == "batch":
            allowed = {i for i in valid if i // t_max != b}
        elif source == "time":
            allowed = {i for i in valid if i // t_max == b and i != p}
        elif source == "position":  # other series at the same step; none there: other series
            allowed = {i for i in valid if i // t_max != b and i % t_max == p % t_max}
            allowed = allowed or {i for i in valid if i // t_max != b}
        else:
            allowed = valid - {p}
        got = set(neg[q].tolist())
        assert got == allowed  # every allowed index is drawn (4000 draws) and nothing else
        counts = np.bincount(neg[q].numpy(), minlength=4 * t_max)[sorted(allowed)]
        assert counts.min() > 0.5 * counts.mean()  # roughly uniform


def test_crop_batch_and_windows_stay_inside_valid_steps():
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([10, 4, 7])
    x = torch.arange(3 * 10, dtype=torch.float32).reshape(3, 10, 1)
    x[1, 4:] = float("nan")
    x[2, 7:] = float("nan")
    for _ in range(20):
        crop, crop_len = crop_batch(x, lengths, 5, gen)
        assert crop_len.tolist() == [5, 4, 5]
        for b in range(3):
            seg = crop[b, : crop_len[b], 0]
            assert not torch.isnan(seg).any()
            assert torch.all(seg.diff() == 1)  # a contiguous slice of the original
            assert torch.isnan(crop[b, crop_len[b] :]).all()
        anc, a_len, pos, p_len = crop_windows(x, lengths, 2, gen)
        for b in range(3):
            a = anc[b, : a_len[b], 0]
            p = pos[b, : p_len[b], 0]
            assert not torch.isnan(a).any() and not torch.isnan(p).any()
            assert set(p.tolist()) <= set(a.tolist())  # the positive lies inside the anchor
            assert 2 <= p_len[b] <= a_len[b] <= lengths[b]


# ----------------------------------------------------------------------------- encoders
def test_encoders_are_causal():
    torch.manual_seed(0)
    enc = DilatedConvEncoder(2, hidden=8, out_dim=4, depth=3)
    x = torch.randn(1, 30, 2)
    y = x.clone()
    y[:, 17:] = torch.randn(1, 13, 2) * 100
    torch.testing.assert_close(enc(x)[:, :17], enc(y)[:, :17])
    assert not torch.allclose(enc(x)[:, 17:], enc(y)[:, 17:])
    strided = StridedConvEncoder(1, hidden=4, out_dim=4)
    x = torch.randn(1, 1000, 1)
    n = int(strided.output_lengths(torch.tensor([800])))
    y = x.clone()
    y[:, 800:] = 1e3
    torch.testing.assert_close(strided(x)[:, :n], strided(y)[:, :n])


# ----------------------------------------------------------------------------- masking
def _small_cpc(channels=2, negatives="both"):
    torch.manual_seed(0)
    enc = DilatedConvEncoder(channels, hidden=8, out_dim=8, depth=2)
    return CPC(enc, 8, context_dim=8, steps=3, negatives=negatives, num_negatives=6, max_queries=50)


@pytest.mark.parametrize("negatives", ["batch", "time", "both", "position"])
def test_cpc_padding_never_enters_the_loss(negatives):
    model = _small_cpc(negatives=negatives)
    lengths = torch.tensor([12, 7, 9, 5])
    x = torch.randn(4, 12, 2)
    pad = torch.arange(12)[None, :] >= lengths[:, None]
    x1 = x.masked_fill(pad[:, :, None], float("nan"))
    x2 = x.masked_fill(pad[:, :, None], 0.0) + pad[:, :, None] * torch.randn(4, 12, 2) * 1e4

    def loss_and_grads(xx):
        model.zero_grad()
        out = model.loss(xx, lengths, torch.Generator().manual_seed(3))
        out.loss.backward()
        return out.loss.detach(), [p.grad.clone() for p in model.parameters()]

    l1, g1 = loss_and_grads(x1)
    l2, g2 = loss_and_grads(x2)
    assert torch.isfinite(l1)
    torch.testing.assert_close(l1, l2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("objective", ["triplet", "contrastive"])
def test_window_objectives_ignore_padding(objective):
    torch.manual_seed(0)
    model = WindowMetricLearning(DilatedConvEncoder(1, 8, 8, 2), objective, min_window=3)
    lengths = torch.tensor([10, 6, 8])
    x = torch.randn(3, 10, 1)
    pad = (torch.arange(10)[None, :] >= lengths[:, None])[:, :, None]
    a = model.loss(x.masked_fill(pad, float("nan")), lengths, torch.Generator().manual_seed(1))
    b = model.loss(x.masked_fill(pad, 5e3), lengths, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.loss, b.loss)


def test_cpc_series_shorter_than_k():
    model = _small_cpc()
    # Some series shorter than K: they simply contribute fewer (t, t+k) pairs.
    out = model.loss(torch.randn(3, 10, 2), torch.tensor([10, 2, 3]))
    assert torch.isfinite(out.loss)
    assert "acc_k3" in out.metrics
    out = model.loss(torch.randn(2, 3, 2), torch.tensor([3, 2]))  # all shorter than K + 1
    assert "acc_k1" in out.metrics and "acc_k3" not in out.metrics  # K reduced to what fits
    with pytest.raises(ValueError, match="a larger crop window"):
        model.loss(torch.randn(2, 3, 2), torch.tensor([1, 1]))


# ----------------------------------------------------------------------------- learning
def hmm_series(n: int, length: int, seed: int) -> SeriesDataset:
    """A sticky 4-state Markov chain emitting noisy state means: the future is predictable."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(4, 3)) * 2
    trans = np.full((4, 4), 0.02)
    np.fill_diagonal(trans, 0.0)
    for i in range(4):
        trans[i, (i + 1) % 4] = 0.1
        trans[i, i] = 1 - trans[i].sum()
    x = np.zeros((n, length, 3), dtype=np.float32)
    for i in range(n):
        s = rng.integers(4)
        for t in range(length):
            x[i, t] = means[s] + rng.normal(scale=0.5, size=3)
            s = rng.choice(4, p=trans[s])
    return SeriesDataset(x, np.full(n, length), np.zeros(n, dtype=np.int64), ["0"], "hmm")


def test_cpc_learns_predictable_structure_and_bound_stays_below_log_n(tmp_path):
    from seqrep.loops.runs import Prepared, RunDir

    data = hmm_series(32, 64, 0)
    cfg = PretrainConfig(
        method="cpc",
        hidden=16,
        depth=2,
        z_dim=16,
        context_dim=16,
        horizon=4,
        num_negatives=15,
        negatives="time",
        bidirectional=False,  # one CPC: its per-k metrics
        iterations=120,
        batch_size=16,
        window=64,
        log_every=10,
        lr=3e-3,
    )
    run = RunDir.open(tmp_path / "run", Prepared("pretrain", cfg))
    _, summary = pretrain(cfg, data, run, quiet=True)
    final = summary["final"]
    chance = 1 / 16
    assert final["acc_k1"] > 5 * chance, final
    for record in run.read_metrics():
        for k in range(1, 5):
            if f"mi_bound_k{k}" in record:
                assert record[f"mi_bound_k{k}"] <= math.log(16) + 1e-9


def test_pretrain_resume_continues_the_same_curve(tmp_path):
    from seqrep.loops.runs import Prepared, RunDir

    data = hmm_series(16, 32, 1)
    cfg = PretrainConfig(
        method="cpc",
        hidden=8,
        depth=2,
        z_dim=8,
        context_dim=8,
        horizon=2,
        num_negatives=7,
        iterations=20,
        batch_size=8,
        window=32,
        log_every=5,
        checkpoint_every=10,
    )
    full_run = RunDir.open(tmp_path / "full", Prepared("pretrain", cfg))
    pretrain(cfg, data, full_run, quiet=True)
    # Stop after the step-10 checkpoint, then resume in the same folder.
    cut_run = RunDir.open(tmp_path / "cut", Prepared("pretrain", cfg))
    pretrain(replace(cfg, iterations=10), data, cut_run, quiet=True)
    pretrain(cfg, data, cut_run, quiet=True)
    a, b = full_run.read_metrics(), cut_run.read_metrics()
    assert [r["step"] for r in a] == [r["step"] for r in b] == [5, 10, 15, 20]
    for ra, rb in zip(a, b, strict=True):
        assert math.isclose(ra["loss"], rb["loss"], rel_tol=1e-5)


# ----------------------------------------------------------------------------- SVM protocol
def test_svm_c_rule():
    assert uses_fixed_c(np.arange(49) % 2)  # fewer than 50 series
    assert not uses_fixed_c(np.arange(50) % 10)  # 50 series, 5 per class
    assert uses_fixed_c(np.arange(60) % 20)  # 3 per class
    x = np.array([[0.0], [0.1], [1.0], [1.1]])
    y = np.array([0, 0, 1, 1])
    res = svm_probe(x, y, np.array([[0.05], [1.05]]), np.array([0, 1]))
    assert res.accuracy == 1.0 and "C=inf" in res.detail
    rng = np.random.default_rng(0)
    xb = np.concatenate([rng.normal(0, 1, (30, 2)), rng.normal(4, 1, (30, 2))])
    yb = np.repeat([0, 1], 30)
    res = svm_probe(xb, yb, xb, yb)
    assert "5-fold grid" in res.detail and res.accuracy > 0.95


# ----------------------------------------------------------------------------- loaders
def test_shipped_loaders_equal_unequal_uni_multi():
    gp = load_series("GunPoint", "train")
    assert gp.values.shape == (50, 150, 1) and gp.equal_length and gp.num_classes == 2
    jv = load_series("JapaneseVowels", "train")
    assert jv.num_channels == 12 and not jv.equal_length and jv.num_classes == 9
    for i in range(len(jv)):
        n = jv.lengths[i]
        assert not np.isnan(jv.values[i, :n]).any() and np.isnan(jv.values[i, n:]).all()
    bm = load_series("BasicMotions", "test")
    assert bm.num_channels == 6 and bm.equal_length
    pk_train, pk_test = load_train_test("PickupGestureWiimoteZ")
    assert pk_train.num_channels == 1 and not pk_train.equal_length
    assert pk_test.classes == pk_train.classes


TS_FILE = """@problemName tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
7,8:9,10:b
"""


def test_ts_file_roundtrip_and_malformed(tmp_path):
    (tmp_path / "tiny_TRAIN.ts").write_text(TS_FILE)
    (tmp_path / "tiny_TEST.ts").write_text(TS_FILE)
    train, test = load_train_test(str(tmp_path / "tiny_TRAIN.ts"))
    assert test.labels.tolist() == [0, 1]
    assert train.values.shape == (2, 3, 2)
    assert train.lengths.tolist() == [3, 2]
    np.testing.assert_array_equal(train.values[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(train.values[1, :2], [[7, 9], [8, 10]])
    assert np.isnan(train.values[1, 2]).all()
    assert train.classes == ["a", "b"] and train.labels.tolist() == [0, 1]

    bad = tmp_path / "bad_TRAIN.ts"
    bad.write_text("@problemName x\n@data\nthis is not a series\n")
    with pytest.raises(ValueError, match=r"bad_TRAIN\.ts"):
        load_series(bad)
    empty = tmp_path / "empty.ts"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_series(empty)
    with pytest.raises(FileNotFoundError):
        load_series(tmp_path / "missing.ts")
    with pytest.raises(ValueError, match="unknown data set 'GunPont'"):
        load_series("GunPont")
    (tmp_path / "solo_TRAIN.ts").write_text(TS_FILE)  # no solo_TEST.ts beside it
    with pytest.raises(ValueError, match="no test split"):
        load_train_test(str(tmp_path / "solo_TRAIN.ts"))


def test_standardizer_uses_training_statistics_only():
    tr = SeriesDataset(
        np.array([[[1.0], [3.0]], [[5.0], [np.nan]]], dtype=np.float32),
        np.array([2, 1]),
        np.array([0, 1]),
        ["a", "b"],
    )
    te = SeriesDataset(
        np.array([[[3.0], [100.0]]], dtype=np.float32), np.array([2]), np.array([0]), ["a", "b"]
    )
    s = Standardizer().fit(tr)
    mean, std = 3.0, np.std([1.0, 3.0, 5.0])
    np.testing.assert_allclose(
        s.transform(te).values[0, :, 0], [(3 - mean) / std, (100 - mean) / std], rtol=1e-6
    )


# ----------------------------------------------------------------------------- CLI
def test_cli_pretrain_then_probe(tmp_path, capsys):
    out = tmp_path / "run"
    main(
        [
            "pretrain",
            "--data",
            "ItalyPowerDemand",
            "--method",
            "cpc",
            "--iterations",
            "6",
            "--hidden",
            "8",
            "--depth",
            "2",
            "--z-dim",
            "8",
            "--context-dim",
            "8",
            "--horizon",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert "| cpc |" in printed and "| raw |" in printed and "TS2Vec (published) | 0.925" in printed
    for name in (
        "config.json",
        "metrics.jsonl",
        "report.md",
        "training.png",
        "probe.json",
        "checkpoints/last.pt",
    ):
        assert (out / name).exists(), name
    main(["probe", str(out)])
    printed = capsys.readouterr().out
    assert "SVM test accuracy" in printed and "step 6/6" in printed


def test_cli_pretrain_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--data", "NoSuchSet", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    assert "unknown data set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--method", "simclr", "--out", str(tmp_path / "r")])
    assert "unknown --method" in capsys.readouterr().err


def test_cpc_scoring_paths_agree(monkeypatch):
    import seqrep.methods.cpc as cpc_module

    model = _small_cpc()
    x, lengths = torch.randn(4, 12, 2), torch.tensor([12, 7, 9, 5])
    full = model.loss(x, lengths, torch.Generator().manual_seed(0))
    monkeypatch.setattr(cpc_module, "FULL_SCORE_LIMIT", 0)  # force the gather path
    gathered = model.loss(x, lengths, torch.Generator().manual_seed(0))
    torch.testing.assert_close(full.loss, gathered.loss)
    assert full.metrics == pytest.approx(gathered.metrics)


def test_cpc_loss_matches_a_loop_over_queries():
    """Each query's loss is -log softmax over [W_k c_t . z_{t+k}, W_k c_t . z_neg...]."""
    model = _small_cpc(negatives="time")
    x, lengths = torch.randn(2, 9, 2), torch.tensor([9, 6])
    out = model.loss(x, lengths, torch.Generator().manual_seed(5))
    # Replay the sampling with the same generator state to recover the queries.
    gen = torch.Generator().manual_seed(5)
    z, c, out_len = model.encode(x, lengths)
    t_range, k_range = torch.arange(z.shape[1]), torch.arange(1, model.steps + 1)
    valid = t_range[None, :, None] + k_range[None, None, :] < out_len[:, None, None]
    bi, ti, ki = valid.nonzero(as_tuple=True)
    assert bi.numel() <= model.max_queries  # no subsampling in this small case
    pos = bi * z.shape[1] + ti + ki + 1
    neg = sample_negatives(pos, bi, out_len, z.shape[1], model.num_negatives, "time", gen)
    zf = z.reshape(-1, z.shape[-1]).detach()
    w = model.predictors.proj.weight.detach().view(model.steps, -1, c.shape[-1])
    total = 0.0
    for q in range(bi.numel()):
        pred = w[ki[q]] @ c[bi[q], ti[q]].detach()
        scores = [float(pred @ zf[pos[q]])] + [float(pred @ zf[n]) for n in neg[q]]
        m = max(scores)
        total += m + math.log(sum(math.exp(s - m) for s in scores)) - scores[0]
    assert math.isclose(out.loss.item(), total / bi.numel(), rel_tol=1e-4)


_MINIROCKET_BOTH_WAYS = """
import json
from aeon.classification.convolution_based import MiniRocketClassifier
from aeon.datasets import load_classification
from seqrep.loops.pretrain import pretrain_and_probe
from seqrep.data.series import load_normalised
from seqrep.loops.pretrain import PretrainConfig

train, test = load_normalised("GunPoint", "")
row = pretrain_and_probe(PretrainConfig(method="minirocket", seed=3), train, test)
x_train, y_train = load_classification("GunPoint", split="train")
x_test, y_test = load_classification("GunPoint", split="test")
clf = MiniRocketClassifier(random_state=3, n_jobs=1).fit(x_train, y_train)
direct = float((clf.predict(x_test) == y_test).mean())
print(json.dumps({"row": row["accuracy"], "svm": row["svm"], "direct": direct}))
"""


@pytest.mark.long
def test_minirocket_row_equals_aeon_on_aeons_own_arrays():
    """The benchmark's MiniRocket row (seqrep's loader, normalisation, padding and layout) equals
    aeon's MiniRocketClassifier fitted on aeon's own GunPoint arrays with the same seed.

    In a child process: after MiniRocket's numba code has run, torch's backward in the same
    process crawled (the transformer's pipeline test took over 3 minutes instead of 22 s)."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _MINIROCKET_BOTH_WAYS],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["row"] == pytest.approx(got["direct"], abs=0.014)  # at most 2 of 150 test series
    assert got["row"] > 0.95 and "MiniRocket" in got["svm"]


def test_reverse_valid_reverses_only_the_valid_steps():
    from seqrep.methods.cpc import reverse_valid

    x = torch.arange(10.0).view(2, 5, 1)
    x[1, 3:] = float("nan")
    out = reverse_valid(x, torch.tensor([5, 3]))
    assert out[0, :, 0].tolist() == [4.0, 3.0, 2.0, 1.0, 0.0]
    assert out[1, :3, 0].tolist() == [7.0, 6.0, 5.0] and torch.isnan(out[1, 3:]).all()


def test_crop_in_context_reads_real_history_so_crop_steps_see_what_the_full_series_sees():
    """The crop keeps its draw (crop_batch is the context-0 case); around it lie up to
    ``context`` real steps each side; and the causal encoder's output on the crop's steps
    equals its output on the whole series at the same steps whenever the context covers the
    receptive field (or reaches the series' start): no crop position sees padding that the full
    series does not."""
    torch.manual_seed(0)
    enc = DilatedConvEncoder(1, hidden=8, out_dim=4, depth=3)  # receptive field 29
    rf = enc.receptive_field
    lengths = torch.tensor([80, 40, 12, 60])
    x = torch.randn(4, 80, 1)
    x[torch.arange(80)[None, :] >= lengths[:, None]] = float("nan")
    for seed in range(10):
        crop, crop_len = crop_batch(x, lengths, 16, torch.Generator().manual_seed(seed))
        ctx, total, margins = crop_in_context(
            x, lengths, 16, rf - 1, torch.Generator().manual_seed(seed)
        )
        before, after = margins.unbind(1)
        assert torch.equal(total - before - after, crop_len)
        assert (before <= rf - 1).all() and (after <= rf - 1).all()
        with torch.no_grad():
            full = enc(torch.nan_to_num(x))
            part = enc(torch.nan_to_num(ctx))
        for b in range(4):
            n, k = int(crop_len[b]), int(before[b])
            steps = ctx[b, k : k + n, 0]
            assert torch.equal(steps, crop[b, :n, 0])  # the same crop as crop_batch's
            start = int(torch.nonzero(x[b, :, 0] == steps[0])[0])
            assert k == min(start, rf - 1)
            assert int(after[b]) == min(int(lengths[b]) - start - n, rf - 1)
            assert torch.equal(ctx[b, : int(total[b])], x[b, start - k : start + n + int(after[b])])
            assert torch.isnan(ctx[b, int(total[b]) :]).all()
            torch.testing.assert_close(part[b, k : k + n], full[b, start : start + n])


class _NaNOver(torch.nn.Module):
    """An encoder whose output is NaN over ``mask`` [B, T]; the other steps as before (they
    still read the masked steps' inputs)."""

    def __init__(self, encoder: torch.nn.Module, mask: torch.Tensor) -> None:
        super().__init__()
        self.inner, self.mask = encoder, mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        return z.masked_fill(self.mask[:, : z.shape[1], None], float("nan"))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths


def test_cpc_never_scores_context_steps():
    """With context, no context z_t enters the loss (as a candidate or the GRU's input): NaN in
    the encoder's output and in the keys over the context steps leave the loss finite; the
    crop's z do read the context; and zero-width context gives the loss without it."""
    from seqrep.methods import build_series_method

    torch.manual_seed(0)
    method = build_series_method(
        "cpc", 1, hidden=8, depth=2, z_dim=8, context_dim=8, steps=3, bidirectional=True
    )
    lengths = torch.tensor([30, 24, 30, 20])
    x = torch.randn(4, 30, 1)
    x[torch.arange(30)[None, :] >= lengths[:, None]] = float("nan")
    margins = torch.tensor([[5, 3], [0, 4], [7, 0], [2, 2]])
    steps = torch.arange(30)[None, :]
    outside = (steps < margins[:, :1]) | (steps >= (lengths - margins[:, 1])[:, None])
    for cpc, mask in (
        (method.forward_cpc, outside),
        (method.backward_cpc, reverse_valid(outside[:, :, None].float(), lengths)[..., 0] > 0),
    ):
        cpc.encoder = _NaNOver(cpc.encoder, mask)  # type: ignore[assignment]
    out = method.loss(x, lengths, torch.Generator().manual_seed(1), margins)
    assert math.isfinite(out.loss.item())
    keys = torch.randn(4, 30, 8).masked_fill(outside[:, :, None], float("nan"))
    fwd = method.forward_cpc.loss(x, lengths, torch.Generator().manual_seed(1), margins, keys)
    assert math.isfinite(fwd.loss.item())
    zero = torch.zeros(4, 2, dtype=torch.long)
    for cpc in (method.forward_cpc, method.backward_cpc):
        cpc.encoder = cpc.encoder.inner
    read = torch.nan_to_num(x).requires_grad_(True)
    method.forward_cpc.loss(
        read, lengths, torch.Generator().manual_seed(1), margins
    ).loss.backward()
    assert read.grad is not None and read.grad[0, :5].abs().sum() > 0  # the context is read
    a = method.loss(x, lengths, torch.Generator().manual_seed(2), zero)
    b = method.loss(x, lengths, torch.Generator().manual_seed(2))
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-6)


def test_bidirectional_cpc_is_two_cpcs_on_the_series_and_its_reverse():
    """Its loss is the forward model's loss on x plus the backward model's on x reversed (each
    computed alone with the same generator draws), and its vector is both vectors."""
    from seqrep.methods import build_series_method

    torch.manual_seed(0)
    method = build_series_method(
        "cpc", 2, hidden=8, depth=2, z_dim=8, context_dim=8, steps=3, bidirectional=True
    )
    x = torch.randn(4, 20, 2)
    lengths = torch.tensor([20, 18, 20, 16])
    x[torch.arange(20)[None, :] >= lengths[:, None]] = float("nan")
    gen = torch.Generator().manual_seed(1)
    out = method.loss(x, lengths, gen)
    gen = torch.Generator().manual_seed(1)
    ahead = method.forward_cpc.loss(x, lengths, gen)
    behind = method.backward_cpc.loss(reverse_valid(x, lengths), lengths, gen)
    assert out.loss.item() == pytest.approx(ahead.loss.item() + behind.loss.item(), rel=1e-6)
    assert out.metrics["backward_loss"] == pytest.approx(behind.metrics["loss"])
    with torch.no_grad():
        vec = method.represent(x, lengths)
        want = torch.cat(
            [
                method.forward_cpc.represent(x, lengths),
                method.backward_cpc.represent(reverse_valid(x, lengths), lengths),
            ],
            dim=-1,
        )
    assert torch.equal(vec, want) and vec.shape == (4, 32)
    with pytest.raises(ValueError, match="CPC option"):
        build_series_method("triplet", 2, bidirectional=True)


def test_max_mean_vectors_are_the_max_and_mean_of_each_series_valid_steps():
    """pool="max-mean": CPC's vector is [max, mean] over the valid steps of [z_t, c_t], and the
    window objectives' is [max, mean] of the encoder output; the max half is the max vector."""
    from seqrep.methods import build_series_method

    torch.manual_seed(0)
    x = torch.randn(3, 15, 2)
    lengths = torch.tensor([15, 9, 12])
    x[torch.arange(15)[None, :] >= lengths[:, None]] = float("nan")
    for name in ("cpc", "triplet"):
        kw = {"hidden": 8, "depth": 2, "z_dim": 6, "context_dim": 5}
        method = build_series_method(name, 2, pool="max-mean", **kw)
        with torch.no_grad():
            vec = method.represent(x, lengths)
            if name == "cpc":
                z, c, out_len = method.encode(x, lengths)
                h = torch.cat([z, c], dim=-1)
            else:
                h = method.encoder(torch.nan_to_num(x))
                out_len = method.encoder.output_lengths(lengths)
            method.pool = "max"
            assert torch.equal(vec[:, : h.shape[-1]], method.represent(x, lengths))
        for b in range(3):
            steps = h[b, : int(out_len[b])]
            want = torch.cat([steps.max(0).values, steps.mean(0)])
            torch.testing.assert_close(vec[b], want)
    with pytest.raises(ValueError, match="unknown pool 'sum'; choose max, max-mean"):
        build_series_method("cpc", 2, pool="sum")


def test_series_table_compares_cpc_with_ts2vec_measured_per_set_and_on_average():
    """The "TS2Vec measured" column reads the seeded measurement where it exists (else the
    one-seed reference); the gap column is CPC's mean minus it, per set and on average."""
    from seqrep.data.series import reference_table
    from seqrep.loops.series_bench import summarise

    seeded = reference_table("ts2vec_measured_seeds.csv")
    one_seed = reference_table("ts2vec_cpu_measured.csv")
    sets = ["GunPoint", "ArrowHead"]
    rows = [
        {"dataset": d, "method": "cpc", "seed": s, "accuracy": a, "seconds": 1.0}
        for d, accs in zip(sets, ([0.9, 1.0], [0.7, 0.8]), strict=True)
        for s, a in enumerate(accs)
    ]
    table = summarise(rows)
    want = []
    for d, cpc in zip(sets, (0.95, 0.75), strict=True):
        ref = seeded.get(d) or one_seed[d]
        want.append(float(ref["accuracy"]))
        line = next(x for x in table.splitlines() if x.startswith(f"| {d} |"))
        assert f"| {float(ref['accuracy']):.3f} " in line
        assert f"| {cpc - float(ref['accuracy']):+.3f} |" in line
    mean = next(x for x in table.splitlines() if x.startswith("| **mean**"))
    assert f"| {0.85 - np.mean(want):+.3f} |" in mean


@pytest.mark.parametrize(("negatives", "chance"), [("position", 1 / 4), ("both", 1 / 33)])
def test_cpc_chance_counts_the_distinct_candidates(negatives, chance):
    """Same-position negatives draw from the batch's other series: with 4 series a query has 4
    distinct candidates, whatever the number of draws; other sources draw 32 distinct steps."""
    torch.manual_seed(0)
    cpc = CPC(DilatedConvEncoder(1, 8, 8, depth=2), 8, 8, 2, negatives, 32)
    x = torch.randn(4, 40, 1)
    out = cpc.loss(x, torch.full((4,), 40), torch.Generator().manual_seed(0))
    assert out.metrics["chance"] == pytest.approx(chance)
