"""The CPC encoder as an aeon collection transformer: aeon's estimator checks, the same features
as seqrep's own pretraining, unequal lengths, and a scikit-learn pipeline on a shipped set."""

from __future__ import annotations

import numpy as np
import pytest
from aeon.datasets import load_classification

from seqrep.loops.transform import CPCTransformer

TINY = {"iterations": 3, "batch_size": 4, "hidden": 8, "depth": 2, "z_dim": 8, "horizon": 2}


def test_aeon_estimator_checks():
    from aeon.testing.estimator_checking import check_estimator

    results = check_estimator(CPCTransformer(**TINY), raise_exceptions=False)
    failed = {
        k: v for k, v in results.items() if v not in ("PASSED", "SKIPPED") and "Skip" not in str(v)
    }
    assert not failed, failed
    assert len(results) > 20


def test_features_equal_seqreps_own_pretraining():
    from seqrep.data.series import load_normalised
    from seqrep.loops.pretrain import PretrainConfig, pretrain
    from seqrep.loops.probes import encode_dataset

    X, _ = load_classification("GunPoint", split="train")
    features = CPCTransformer(**TINY, random_state=3).fit_transform(X)
    train, _ = load_normalised("GunPoint")
    cfg = PretrainConfig(**{**TINY, "context_dim": TINY["z_dim"]}, seed=3)
    method, _ = pretrain(cfg, train, quiet=True)
    assert np.allclose(features, encode_dataset(method, train), atol=1e-6)


def test_unequal_lengths_and_channel_mismatch():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(2, n)) for n in (30, 45, 60, 41, 33, 50)]
    t = CPCTransformer(**TINY).fit(X)
    out = t.transform(X)
    # z and c, max- and mean-pooled, of the forward and the backward CPC
    assert out.shape == (6, 8 * TINY["z_dim"]) and np.isfinite(out).all()
    assert CPCTransformer(**TINY, pool="max").fit(X).transform(X).shape == (6, 4 * TINY["z_dim"])
    with pytest.raises(ValueError, match="channels"):
        t.transform([rng.normal(size=(3, 40))])


@pytest.mark.long
def test_pipeline_on_a_shipped_set_beats_chance():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_classification("GunPoint", split="train")
    Xt, yt = load_classification("GunPoint", split="test")
    probe = LogisticRegression(max_iter=2000)
    model = make_pipeline(CPCTransformer(random_state=0), StandardScaler(), probe)
    model.fit(X, y)
    # Two classes; the raw-series SVM scores 0.953 here and the 5-seed benchmark CPC ~0.99.
    assert model.score(Xt, yt) > 0.9


def test_encode_writes_the_frozen_features_of_any_data_set(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from seqrep.cli import main
    from seqrep.data.series import load_normalised
    from seqrep.loops.pretrain import PretrainConfig, build_from_config
    from seqrep.loops.probes import encode_dataset
    from seqrep.loops.runs import load_run

    monkeypatch.chdir(tmp_path)
    main(["pretrain", "--data", "GunPoint", "--iterations", "3", "--out", "gp", "--quiet"])
    main(["encode", "gp", "--out", "f.npy"])
    features = np.load("f.npy")
    cfg, state = load_run("gp", "pretrain", PretrainConfig)
    train, test = load_normalised("GunPoint")
    method = build_from_config(cfg, 1)
    method.load_state_dict(state["model"])
    expected = np.concatenate([encode_dataset(method, train), encode_dataset(method, test)])
    assert np.allclose(features, expected, atol=1e-6)
    main(["encode", "gp", "--data", "ArrowHead", "--split", "test", "--out", "a.csv"])
    frame = pd.read_csv("a.csv")
    assert len(frame) == 175 and set(frame["split"]) == {"test"}
    assert frame.columns[:3].tolist() == ["split", "label", "f0"]
    capsys.readouterr()
    for args, message in (
        (
            ["--data", "BasicMotions", "--out", "b.npy"],
            "X has 6 channels; the transformer was fitted on 1",
        ),
        (["--out", "f.txt"], "write .npy, .csv or .parquet"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["encode", "gp", *args])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp"))
