"""A tiny synthetic environment with known latent structure, for the representation tests."""

from __future__ import annotations

import numpy as np

from seqrep.data.trajectories import TrajectoryDataset


def latent_control_dataset(
    episodes: int = 60, length: int = 40, distractors: int = 8, seed: int = 0
) -> tuple[TrajectoryDataset, np.ndarray]:
    """Observations are a fixed random linear mix of a 2-d controllable state
    c_{t+1} = 0.9 c_t + 0.5 a_t + noise and ``distractors`` i.i.d. high-variance noise dims.

    Returns the data set and the controllable state of every transition's observation [N, 2].
    """
    dim = 2 + distractors
    # One environment: the mixing is fixed, the seed only changes the episodes.
    mix = np.linalg.qr(np.random.default_rng(1234).normal(size=(dim, dim)))[0].astype(np.float32)
    rng = np.random.default_rng(seed)
    eps, cs = [], []
    for _ in range(episodes):
        c = rng.normal(size=2)
        states, actions = [], []
        for _ in range(length + 1):
            states.append(c)
            a = rng.uniform(-1, 1, 2)
            actions.append(a)
            c = 0.9 * c + 0.5 * a + 0.05 * rng.normal(size=2)
        c_arr = np.asarray(states)
        d = 3.0 * rng.normal(size=(length + 1, distractors))
        obs = (np.concatenate([c_arr, d], 1) @ mix.T).astype(np.float32)
        term = np.zeros(length, bool)
        eps.append(
            {
                "observations": obs[:-1],
                "next_observations": obs[1:],
                "actions": np.asarray(actions[:-1], np.float32),
                "rewards": -np.linalg.norm(c_arr[1:], axis=1).astype(np.float32),
                "terminals": term,
                "timeouts": np.r_[term[:-1], True],
            }
        )
        cs.append(c_arr[:-1])
    return TrajectoryDataset.from_episodes(eps, name="latent-control"), np.concatenate(cs)
