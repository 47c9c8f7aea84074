"""``seqrep collect``: a behaviour policy rolled in a gymnasium task, written as a local Minari
data set (no network), atomically.

The policy is ``random``, a level of the behaviour zoo (``medium``, ``expert``,
``medium-replay``: seqrep's shipped SAC actors), or the run folder of any trained policy
(``seqrep sac``, ``bc``, ``offline-rl``; :func:`seqrep.load`), optionally with Gaussian
action noise. ``from_replay`` writes a ``seqrep sac`` run's stored replay instead (D4RL's
medium-replay recipe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqrep.data.trajectories import TrajectoryDataset, require_writable_minari_id, save_minari
from seqrep.devices import check_device
from seqrep.loops.api import load
from seqrep.loops.sac import replay_buffer_dataset
from seqrep.options import check_options, require_extra
from seqrep.rl.collect import collect_episodes
from seqrep.rl.envs import make_env
from seqrep.rl.zoo import ZOO_LEVELS, load_zoo_policy, uniform_random_policy

__all__ = ["CollectConfig", "Collection", "collect", "prepare_collection"]


@dataclass
class CollectConfig:
    """What ``seqrep collect`` rolls out and where it writes it."""

    dataset_id: str = field(
        default="", metadata={"help": "Minari id, e.g. seqrep/pendulum/expert-v0"}
    )
    env: str = field(default="Pendulum-v1", metadata={"help": "gymnasium id"})
    policy: str = field(
        default="random",
        metadata={
            "help": "'random', a zoo level ('medium', 'expert', 'medium-replay': seqrep's "
            "shipped SAC actors for --env), or the folder of a `seqrep sac`, `bc` or "
            "`offline-rl` run (its deterministic policy, in its own environment)"
        },
    )
    noise: float = field(default=0.0, metadata={"help": "Gaussian action noise (std)"})
    steps: int = field(default=10_000, metadata={"help": "environment steps"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    from_replay: bool = field(
        default=False,
        metadata={
            "help": "with --policy a `seqrep sac` run folder: write the first --steps "
            "transitions of its replay buffer instead of rolling its policy (D4RL's "
            "medium-replay recipe)"
        },
    )
    device: str = field(default="auto", metadata={"help": "where a run's policy acts"})

    def validate(self) -> None:
        check_options(self, positive=("steps",), non_negative=("noise",))
        if not self.dataset_id:
            raise ValueError(
                "--dataset-id is required: a Minari id, e.g. seqrep/pendulum/expert-v0"
            )
        if self.policy not in ZOO_LEVELS and not Path(self.policy).is_dir():
            raise ValueError(
                f"--policy {self.policy!r} is neither a zoo level ({', '.join(ZOO_LEVELS)}) nor "
                "a run folder"
            )
        if self.from_replay and self.policy in ZOO_LEVELS:
            raise ValueError("--from-replay needs --policy to be a `seqrep sac` run folder")


@dataclass
class Collection:
    """A collection, checked and ready: the environment, the behaviour policy (None for a
    replay export) and the description the data set records."""

    config: CollectConfig
    env_id: str
    behaviour: Callable[[np.ndarray], np.ndarray] | None
    source: str
    description: str


def prepare_collection(
    cfg: CollectConfig, overwrite: bool = False, given: tuple[str, ...] = ()
) -> Collection:
    """Everything checked before a step is taken: the options, the data set id (Minari's rule,
    free unless ``overwrite``), the policy (loadable, acting on this environment's states).
    ``given``: the options the user set explicitly (those a run's own policy or replay
    overrides are refused rather than ignored).

    Raises:
        ValueError: what is wrong, with the fix.
    """
    require_extra("rl", "seqrep collect", ("gymnasium", "minari"))
    cfg.validate()
    require_writable_minari_id(cfg.dataset_id, overwrite)
    check_device(cfg.device)
    if cfg.from_replay:
        # The buffer holds what the run stored: its own environment, actions and seeds.
        clash = [f"--{n.replace('_', '-')}" for n in ("env", "noise", "seed") if n in given]
        if clash:
            raise ValueError(
                f"{', '.join(clash)} cannot apply with --from-replay: the data are the "
                "transitions the run stored (its environment, actions and seeds); drop them"
            )
        description = f"replay buffer of {cfg.policy}"
        return Collection(cfg, "", None, f"{cfg.policy} --from-replay", description)
    act, env_id = _behaviour(cfg, given)
    rng = np.random.default_rng(cfg.seed)

    def behaviour(obs: np.ndarray) -> np.ndarray:
        a = np.asarray(act(obs))
        if cfg.noise > 0:
            a = a + rng.normal(0.0, cfg.noise, size=np.shape(a))
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    if hasattr(act, "start_episode"):  # the zoo's medium-replay mixture picks per episode
        behaviour.start_episode = act.start_episode  # type: ignore[attr-defined]
    description = f"{cfg.policy} policy, noise {cfg.noise}, seed {cfg.seed}"
    return Collection(cfg, env_id, behaviour, cfg.policy, description)


def _behaviour(cfg: CollectConfig, given: tuple[str, ...]) -> tuple[Any, str]:
    """The policy acting and the environment it acts in."""
    device = check_device(cfg.device)
    if cfg.policy in ZOO_LEVELS:
        if cfg.policy == "random":  # any Box-action environment, zoo or not
            env = make_env(cfg.env)
            act_dim = int(np.prod(env.action_space.shape))
            env.close()
            return uniform_random_policy(act_dim, cfg.seed), cfg.env
        return load_zoo_policy(cfg.env, cfg.policy, seed=cfg.seed, device=device), cfg.env
    policy = load(cfg.policy, device)
    if not hasattr(policy, "act") or getattr(policy, "pixels", False):
        raise ValueError(
            f"--policy {cfg.policy}: collect rolls policies that act on states (a `seqrep "
            "sac`, `bc` or `offline-rl` run); this run is not one"
        )
    if "env" in given and cfg.env != policy.env_id:
        raise ValueError(
            f"--env {cfg.env} differs from the environment {cfg.policy} was trained on "
            f"({policy.env_id}); drop --env"
        )
    return policy, policy.env_id


def collect(collection: Collection, overwrite: bool = False) -> TrajectoryDataset:
    """Roll the behaviour (or export the run's replay) and write the data set; returns it."""
    cfg = collection.config
    if collection.behaviour is None:
        data, env_id = replay_buffer_dataset(cfg.policy, cfg.steps)
    else:
        env_id = collection.env_id
        data = collect_episodes(env_id, collection.behaviour, cfg.steps, cfg.seed)
    save_minari(
        data,
        cfg.dataset_id,
        env=env_id,
        algorithm_name=f"seqrep collect --policy {collection.source}",
        author="seqrep",
        description=collection.description,
        overwrite=overwrite,
    )
    return data
