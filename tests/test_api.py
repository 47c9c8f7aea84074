"""seqrep.load and the Python API, one run kind at a time: train a tiny run, load it back in one
call, and compare what the loaded object computes with what the run itself computed (the
features `seqrep encode` wrote, the encoder the run saved, the run's own last evaluation).
Also: per-time-step encodings (causal, sliding windows against a brute-force loop), series
files without labels or a test split, and every array format against the array written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import seqrep
from seqrep.cli import main

TINY = {"iterations": 3, "batch_size": 8, "hidden": 8, "depth": 2, "z_dim": 8, "horizon": 2}


def _last_eval(run: Path) -> float:
    """The run's last evaluation (mean return over its episodes), from its metrics."""
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval_return_mean" in r][-1]["eval_return_mean"]


# ------------------------------------------------------------------------------- series
@pytest.fixture(scope="module")
def gunpoint_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, seqrep.CPCTransformer]:
    out = tmp_path_factory.mktemp("pretrain") / "gp"
    fitted = seqrep.pretrain(data="GunPoint", **TINY, context_dim=8, seed=1, out=out)
    return out, fitted


@pytest.fixture(scope="module")
def gunpoint_test() -> np.ndarray:
    from aeon.datasets import load_classification

    X, _ = load_classification("GunPoint", split="test")
    return X[:12]


def test_pretrain_run_loads_to_the_transformer_it_trained_and_encode_agrees(
    gunpoint_run, gunpoint_test, tmp_path
):
    out, fitted = gunpoint_run
    loaded = seqrep.load(out)
    assert isinstance(loaded, seqrep.CPCTransformer)
    assert loaded.trained_iterations_ == TINY["iterations"]
    assert np.array_equal(loaded.transform(gunpoint_test), fitted.transform(gunpoint_test))
    # `seqrep encode` (the command line) writes what the loaded transformer computes.
    main(["encode", str(out), "--split", "test", "--out", str(tmp_path / "f.npy")])
    written = np.load(tmp_path / "f.npy")
    from aeon.datasets import load_classification

    X, _ = load_classification("GunPoint", split="test")
    assert written.shape == (150, loaded.transform(gunpoint_test).shape[1])
    np.testing.assert_allclose(written, loaded.transform(X), atol=1e-6)
    main(
        ["encode", str(out), "--split", "test", "--per-timestep", "--out", str(tmp_path / "s.npy")]
    )
    steps = np.load(tmp_path / "s.npy")
    np.testing.assert_allclose(
        steps, loaded.encode(X, per_timestep=True), atol=1e-6, equal_nan=True
    )
    assert steps.shape[:2] == (150, 150)  # GunPoint: 150 steps; the dilated encoder keeps T


def test_per_timestep_vectors_are_causal(gunpoint_run, gunpoint_test):
    """Changing the series from step 90 on leaves every vector before step 90 bit-identical
    (the bidirectional default's backward half is left out) and changes those after."""
    loaded = seqrep.load(gunpoint_run[0])
    changed = gunpoint_test.copy()
    changed[:, :, 90:] += np.random.default_rng(0).normal(size=changed[:, :, 90:].shape)
    before = loaded.encode(gunpoint_test, per_timestep=True)
    after = loaded.encode(changed, per_timestep=True)
    assert np.array_equal(before[:, :90], after[:, :90])
    assert not np.allclose(before[:, 90:], after[:, 90:])
    # Non-causal: the backward half reads later steps, so early vectors change too.
    both = loaded.encode(gunpoint_test, per_timestep=True, causal=False)
    both_changed = loaded.encode(changed, per_timestep=True, causal=False)
    assert both.shape[2] > before.shape[2]
    assert not np.allclose(both[:, :90], both_changed[:, :90])


def test_sliding_window_pools_the_last_steps_as_a_loop_does(gunpoint_run):
    loaded = seqrep.load(gunpoint_run[0])
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(1, n)) for n in (40, 25, 33)]  # unequal lengths
    window = 5
    steps = loaded.encode(X, per_timestep=True)
    pooled = loaded.encode(X, encoding_window=window)
    d = steps.shape[2]
    assert pooled.shape == (3, 40, 2 * d)  # the default pool is max-mean
    for i, series in enumerate(X):
        n = series.shape[1]
        for t in range(40):
            if t >= n:
                assert np.isnan(pooled[i, t]).all()
                continue
            past = steps[i, max(0, t - window + 1) : t + 1]
            expected = np.concatenate([past.max(0), past.mean(0)])
            np.testing.assert_allclose(pooled[i, t], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".parquet"])
def test_every_array_format_reads_back_the_array_written(suffix, tmp_path):
    import pandas as pd

    from seqrep.data.series import load_series

    rng = np.random.default_rng(2)
    X = rng.normal(size=(7, 1, 20))
    X[2, 0, 15:] = np.nan  # a shorter series
    y = np.array(["a", "b", "a", "c", "b", "a", "c"])
    path = tmp_path / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, X)
    elif suffix == ".npz":
        np.savez(path, X=X, y=y)
    else:
        frame = pd.DataFrame(X[:, 0], columns=[f"t{i}" for i in range(20)])
        frame.insert(0, "label", y)
        frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    data = load_series(path)
    assert data.lengths.tolist() == [20, 20, 15, 20, 20, 20, 20]
    valid = data.mask  # [N, T]
    np.testing.assert_allclose(data.values[..., 0][valid], X[:, 0][valid], rtol=1e-6)
    if suffix == ".npy":
        assert not data.labelled and data.labels.tolist() == [-1] * 7
    else:
        assert data.labelled and data.classes == ["a", "b", "c"]
        assert [data.classes[i] for i in data.labels] == y.tolist()


def test_unlabelled_data_without_a_test_split_pretrains_and_reports_no_probe(tmp_path):
    from aeon.datasets import load_classification

    X, _ = load_classification("GunPoint", split="train")
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "run"
    fitted = seqrep.pretrain(data=str(tmp_path / "x.npy"), **TINY, context_dim=8, out=out)
    report = (out / "report.md").read_text()
    assert "no probe" in report.lower()
    assert fitted.transform(X[:3]).shape[0] == 3
    np.testing.assert_array_equal(seqrep.load(out).transform(X[:3]), fitted.transform(X[:3]))


def test_load_refuses_what_holds_nothing_to_load(tmp_path):
    from seqrep.loops.runs import RunDirError

    with pytest.raises(RunDirError, match=r"no readable config\.json"):
        seqrep.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "study"}))
    with pytest.raises(RunDirError, match="trains nothing to load"):
        seqrep.load(tmp_path)


# ------------------------------------------------------------------------------- policies
def test_sac_run_loads_to_a_policy_that_repeats_its_last_evaluation(pendulum_expert):
    from seqrep.rl.envs import evaluate_policy

    _, final_mean, _, run = pendulum_expert
    policy = seqrep.load(run)
    assert isinstance(policy, seqrep.Policy) and policy.obs_shape == (3,)
    returns = evaluate_policy("Pendulum-v1", policy, 5, seed=10_000)
    assert returns.mean() == pytest.approx(final_mean, rel=1e-6)
    # one observation or a batch, numpy or torch: the same actions
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    batch = policy.act(obs)
    assert batch.shape == (4, 1) and isinstance(batch, np.ndarray)
    np.testing.assert_allclose(policy.act(obs[1]), batch[1], rtol=1e-6)
    assert torch.allclose(policy.act(torch.from_numpy(obs)), torch.from_numpy(batch))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        policy.act(np.zeros(4))
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    assert env.action_space.low.tolist() == [-1.0] and policy.act(obs).shape == (1,)


@pytest.fixture(scope="module")
def pendulum_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 600-step random-policy Minari data set of Pendulum (3 episodes)."""
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        main(["collect", "--steps", "600", "--dataset-id", "t/pendulum/random-v0"])
    return str(root)


def test_bc_and_offline_rl_runs_load_to_their_policies(pendulum_data, tmp_path, monkeypatch):
    from seqrep.rl.envs import evaluate_policy

    monkeypatch.setenv("MINARI_DATASETS_PATH", pendulum_data)
    for verb in ("bc", "offline_rl"):
        out = tmp_path / verb
        trained = getattr(seqrep, verb)(
            data="t/pendulum/random-v0", steps=60, batch_size=32, eval_episodes=2, out=out
        )
        loaded = seqrep.load(out)
        assert loaded.kind == verb.replace("_", "-") and loaded.env_id == "Pendulum-v1"
        obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
        np.testing.assert_array_equal(loaded.act(obs), trained.act(obs))
        returns = evaluate_policy("Pendulum-v1", loaded, 2, seed=10_000)
        assert returns.mean() == pytest.approx(_last_eval(out), rel=1e-6)
        assert trained.summary["return_mean"] == pytest.approx(returns.mean(), rel=1e-6)


def test_state_encoder_loads_as_saved_and_sac_on_it_loads_too(pendulum_data, tmp_path, monkeypatch):
    from seqrep.rl.envs import evaluate_policy

    monkeypatch.setenv("MINARI_DATASETS_PATH", pendulum_data)
    states = tmp_path / "states"
    encoder = seqrep.pretrain_states(
        data="t/pendulum/random-v0", objective="temporal", steps=40, hidden=32, feature_dim=8,
        out=states,
    )  # fmt: skip
    loaded = seqrep.load(states)
    assert loaded.objective == "temporal"
    saved = torch.load(states / "checkpoints" / "encoder.pt", weights_only=False)["encoder"]
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saved.items())
    obs = torch.randn(6, 3) * 3
    features = loaded(obs)
    assert features.shape == (6, 8)
    assert torch.equal(features, encoder(obs))
    # SAC on that encoder: loading rebuilds it from the agent's own weights.
    out = tmp_path / "sac"
    seqrep.sac(
        env="Pendulum-v1", encoder=str(states), total_steps=300, learning_starts=100,
        eval_every=300, eval_episodes=1, hidden=16, batch_size=32, out=out,
    )  # fmt: skip
    policy = seqrep.load(out)
    returns = evaluate_policy("Pendulum-v1", policy, 1, seed=10_000)
    assert returns.mean() == pytest.approx(_last_eval(out), rel=1e-6)


def test_curl_run_loads_to_a_pixel_policy_that_repeats_its_last_evaluation(tmp_path):
    from seqrep.rl.pixels import PixelEvaluation, make_pixel_env

    out = tmp_path / "toy"
    options = {"task": "seqrep-dot", "image_size": 40, "crop_size": 32, "batch_size": 16}
    options |= {"hidden": 32, "feature_dim": 8, "env_steps": 200, "init_steps": 100}
    trained = seqrep.curl(**options, eval_every=200, eval_episodes=3, out=out)
    policy = seqrep.load(out)
    assert policy.obs_shape == (9, 40, 40)
    env = policy.make_env()  # the run's task, image size, action repeat and frame stack
    obs, _ = env.reset(seed=10_000)
    reference, _ = make_pixel_env("seqrep-dot", 40, 1, 3).reset(seed=10_000)
    np.testing.assert_array_equal(obs, reference)
    assert obs.dtype == np.uint8 and obs.shape == policy.obs_shape
    np.testing.assert_array_equal(policy.act(obs), trained.act(obs))
    env.close()
    evaluation = PixelEvaluation(lambda: make_pixel_env("seqrep-dot", 40, 1, 3), 3)
    returns = evaluation.run(policy.act, seed=10_000, frames=None)
    evaluation.close()
    assert returns.mean() == pytest.approx(_last_eval(out), rel=1e-6)
