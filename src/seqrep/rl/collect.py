"""Collecting episodes: any policy rolled in a gymnasium task into a :class:`TrajectoryDataset`,
and the zoo's behaviour data sets, collected once and cached as D4RL-layout HDF5."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.rl.envs import make_env

__all__ = ["collect_episodes", "zoo_dataset"]


def collect_episodes(
    env_id: str,
    policy: Callable[[np.ndarray], np.ndarray],
    steps: int,
    seed: int,
    name: str = "",
    max_episodes: int | None = None,
) -> TrajectoryDataset:
    """Roll ``policy`` (obs -> action in [-1, 1]) for ``steps`` environment steps (whole episodes:
    the last one is cut as truncated), or until ``max_episodes`` whole episodes; episode e is
    reset with seed ``seed + e``.

    A policy with a ``start_episode(e)`` method (a per-episode mixture such as the zoo's
    medium-replay) is told of every new episode before its first step."""
    env = make_env(env_id)
    episodes: list[dict[str, np.ndarray]] = []
    total, e = 0, 0
    start_episode = getattr(policy, "start_episode", None)
    while total < steps and (max_episodes is None or e < max_episodes):
        obs, _ = env.reset(seed=seed + e)
        if start_episode is not None:
            start_episode(e)
        rows: dict[str, list] = {k: [] for k in TrajectoryDataset._FIELDS}
        done = False
        while not done and total < steps:
            action = np.asarray(policy(obs), dtype=np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            total += 1
            for k, v in zip(
                TrajectoryDataset._FIELDS,
                (
                    obs,
                    action,
                    reward,
                    next_obs,
                    terminated,
                    truncated or (total >= steps and not terminated),
                ),
                strict=True,
            ):
                rows[k].append(v)
            obs = next_obs
        episodes.append({k: np.asarray(v) for k, v in rows.items()})
        e += 1
    env.close()
    return TrajectoryDataset.from_episodes(episodes, name=name or env_id)


def zoo_dataset(
    env_id: str,
    level: str,
    folder: Path,
    *,
    steps: int = 0,
    episodes: int | None = None,
    seed: int = 0,
    collect: bool = True,
) -> TrajectoryDataset:
    """Data of the zoo's ``level`` policy in ``env_id``: ``steps`` steps, or (steps = 0) the first
    ``episodes`` whole episodes; collected once and cached in ``folder`` as D4RL-layout HDF5.
    With ``collect=False`` a set not cached yet raises FileNotFoundError instead."""
    from seqrep.data.trajectories import load_d4rl_hdf5, save_d4rl_hdf5
    from seqrep.rl.zoo import load_zoo_policy, recipe_is_current, zoo_recipe

    if not steps and not episodes:
        raise ValueError("give a number of steps or of episodes to collect")
    size = f"{steps}" if steps else f"{episodes}ep"
    path = folder / f"{env_id}-{level}-{size}-s{seed}.hdf5"
    recipe = zoo_recipe(env_id, level)
    if path.exists():
        recorded = _recorded_recipe(path)
        if not recipe_is_current(recorded, recipe, level):
            raise ValueError(
                f"cached data set {path} was collected by other behaviour policies than "
                f"today's zoo rolls out (recorded: {recorded or _BEFORE_RECIPES}; today: "
                f"{recipe}). Results computed on it used that data; to collect today's, move "
                "the file away or pass another data folder, and start new result folders "
                "rather than resuming old ones"
            )
    elif not collect:
        raise FileNotFoundError(f"{path} has not been collected yet")
    else:
        policy = load_zoo_policy(env_id, level, seed=seed)
        data = collect_episodes(
            env_id,
            policy,
            steps or 10**9,
            seed,
            name=path.stem,
            max_episodes=None if steps else episodes,
        )
        folder.mkdir(parents=True, exist_ok=True)
        save_d4rl_hdf5(data, path, env=env_id, policy=f"zoo:{level}", recipe=recipe, seed=seed)
    return load_d4rl_hdf5(path)


_BEFORE_RECIPES = "none, collected before the medium-replay mixture included the medium policy"


def _recorded_recipe(path: Path) -> str | None:
    """The recipe a cached collection recorded (None: made before recipes were recorded). The
    file is never deleted here: results computed on it may still need it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            recorded = f.attrs.get("recipe")
    except OSError as e:
        raise ValueError(
            f"cached data set {path} cannot be read ({e}); delete it to collect it again"
        ) from e
    return None if recorded is None else str(recorded)
