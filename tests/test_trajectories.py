"""TrajectoryDataset: D4RL HDF5 episode boundaries, Minari round trip, samplers vs loops."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from seqrep.data.trajectories import TrajectoryDataset, load_d4rl_hdf5, load_minari, save_minari


def write_h5(path, n=10, terminals=(2,), timeouts=(6,), next_obs=True, drop=None, extra=None):
    obs = np.arange(n, dtype=np.float32)[:, None].repeat(3, 1)  # row i is [i, i, i]
    data = {
        "observations": obs,
        "actions": np.arange(n, dtype=np.float32)[:, None] * 10,
        "rewards": np.arange(n, dtype=np.float32),
        "terminals": np.isin(np.arange(n), terminals),
        "timeouts": np.isin(np.arange(n), timeouts),
    }
    if next_obs:
        data["next_observations"] = obs + 0.5
    data.update(extra or {})
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if k != drop:
                f[k] = v
    return path


def test_d4rl_boundaries_with_next_observations(tmp_path):
    ds = load_d4rl_hdf5(write_h5(tmp_path / "a.hdf5"))
    assert ds.episode_starts.tolist() == [0, 3, 7, 10]  # terminal at 2, timeout at 6, EOF
    assert ds.terminals.tolist() == [i == 2 for i in range(10)]
    assert ds.timeouts.tolist() == [i in (6, 9) for i in range(10)]  # EOF marked truncated
    np.testing.assert_array_equal(ds.next_observations[:, 0], np.arange(10) + 0.5)


def test_d4rl_boundaries_without_next_observations(tmp_path):
    ds = load_d4rl_hdf5(write_h5(tmp_path / "b.hdf5", next_obs=False))
    # Episode 1 (terminal) keeps all 3 steps; episodes ending by timeout / EOF lose their last
    # step, whose next observation is unknown.
    assert ds.episode_starts.tolist() == [0, 3, 6, 8]
    np.testing.assert_array_equal(ds.observations[:, 0], [0, 1, 2, 3, 4, 5, 7, 8])
    np.testing.assert_array_equal(ds.next_observations[:, 0], [1, 2, 2, 4, 5, 6, 8, 9])
    np.testing.assert_array_equal(ds.rewards, [0, 1, 2, 3, 4, 5, 7, 8])
    assert ds.terminals.tolist() == [False, False, True, False, False, False, False, False]
    assert ds.timeouts.tolist() == [False, False, False, False, False, True, False, True]
    np.testing.assert_allclose(ds.episode_returns(), [3, 12, 15])


def test_d4rl_bad_files(tmp_path):
    with pytest.raises(ValueError, match="lacks the D4RL keys"):
        load_d4rl_hdf5(write_h5(tmp_path / "c.hdf5", drop="timeouts"))
    with pytest.raises(ValueError, match="incomplete"):
        load_d4rl_hdf5(write_h5(tmp_path / "d.hdf5", extra={"actions": np.zeros((7, 1))}))
    with pytest.raises(ValueError, match="NaN"):
        load_d4rl_hdf5(write_h5(tmp_path / "e.hdf5", extra={"rewards": np.full(10, np.nan)}))
    (tmp_path / "f.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        load_d4rl_hdf5(tmp_path / "f.hdf5")
    with pytest.raises(FileNotFoundError):
        load_d4rl_hdf5(tmp_path / "missing.hdf5")


def random_dataset(seed=0, lengths=(5, 1, 8, 3)):
    rng = np.random.default_rng(seed)
    eps = []
    for e, n in enumerate(lengths):
        obs = rng.normal(size=(n + 1, 3)).astype(np.float32)
        obs[:, 0] = e  # the episode id, to check that windows never straddle episodes
        eps.append(
            {
                "observations": obs[:-1],
                "next_observations": obs[1:],
                "actions": rng.uniform(-1, 1, size=(n, 1)).astype(np.float32),
                "rewards": rng.normal(size=n).astype(np.float32),
                "terminals": np.eye(n, dtype=bool)[-1] if e % 2 == 0 else np.zeros(n, bool),
                "timeouts": np.zeros(n, bool) if e % 2 == 0 else np.eye(n, dtype=bool)[-1],
            }
        )
    return TrajectoryDataset.from_episodes(eps, name="random")


def test_sequences_stay_inside_episodes():
    ds = random_dataset()
    batch = ds.sample_sequences(200, 3, torch.Generator().manual_seed(0))
    assert batch["obs"].shape == (200, 3, 3)
    ep_ids = batch["obs"][:, :, 0]
    assert torch.all(ep_ids == ep_ids[:, :1])  # one episode per window
    assert set(ep_ids[:, 0].tolist()) == {0.0, 2.0, 3.0}  # episode 1 (1 step) is too short
    assert torch.equal(batch["next_obs"][:, :-1], batch["obs"][:, 1:])  # contiguous
    with pytest.raises(ValueError, match="no episode has 9 steps"):
        ds.sample_sequences(4, 9)


def test_nstep_matches_a_loop():
    ds = random_dataset(1)
    gen = torch.Generator().manual_seed(3)
    n, gamma = 3, 0.9
    batch = ds.sample_nstep(64, n, gamma, gen)
    idx = torch.randint(len(ds), (64,), generator=torch.Generator().manual_seed(3)).numpy()
    for b, i in enumerate(idx):
        e = np.searchsorted(ds.episode_starts, i, side="right") - 1
        end = ds.episode_starts[e + 1]
        ret, k = 0.0, 0
        while k < n and i + k < end:
            ret += gamma**k * ds.rewards[i + k]
            k += 1
        assert np.isclose(batch["return"][b].item(), ret, atol=1e-5)
        assert np.isclose(batch["discount"][b].item(), gamma**k)
        np.testing.assert_array_equal(batch["next_obs"][b].numpy(), ds.next_observations[i + k - 1])
        assert batch["terminal"][b].item() == float(ds.terminals[i + k - 1])


def test_minari_round_trip(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    ds = random_dataset(2)
    save_minari(ds, "seqrep/test/roundtrip-v0", env="Pendulum-v1", algorithm_name="synthetic")
    back = load_minari("seqrep/test/roundtrip-v0")
    for field in TrajectoryDataset._FIELDS:
        np.testing.assert_array_equal(getattr(back, field), getattr(ds, field), err_msg=field)
    np.testing.assert_array_equal(back.episode_starts, ds.episode_starts)


def test_missing_minari_names_the_package(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "minari", None)  # import minari now raises ImportError
    with pytest.raises(ImportError, match="pip install minari"):
        load_minari("anything-v0")
