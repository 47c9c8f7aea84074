"""The behaviour-policy zoo: SAC actors trained by seqrep, shipped as small actor-only files.

Per environment the zoo holds an ``expert`` (the best policy of seqrep's SAC run), a ``medium``
(the training snapshot nearest one third of the expert's return, D4RL's definition) and a
``ladder`` of earlier snapshots up to ``medium``: rolling a policy drawn per episode from
[uniform random, ladder..., medium] imitates D4RL's medium-replay (the replay buffer of a run
stopped at the medium level). Weights are stored in half precision; every return in
``zoo.json`` was measured with the stored (rounded) weights.

``zoo.json`` (``seqrep/data/zoo/``) maps an environment id to its entries:
``{"obs_dim", "act_dim", "hidden", "trained_steps", "references": {"random": R, "expert": R},
"policies": {name: {"file", "step", "return_mean", "return_std", "episodes"}}, "ladder": [...]}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.rl.sac import SquashedGaussianActor

__all__ = [
    "ZOO_LEVELS",
    "ZooPolicy",
    "load_zoo_policy",
    "recipe_is_current",
    "uniform_random_policy",
    "zoo_dir",
    "zoo_index",
    "zoo_recipe",
    "zoo_reference",
]

ZOO_LEVELS = ("random", "medium", "expert", "medium-replay")


def zoo_dir() -> Path:
    """Where the zoo lives: ``$SEQREP_ZOO`` when set (a zoo of your own), else the shipped
    ``seqrep/data/zoo``."""
    if os.environ.get("SEQREP_ZOO"):
        return Path(os.environ["SEQREP_ZOO"])
    return Path(str(resources.files("seqrep") / "data" / "zoo"))


def zoo_index(root: Path | None = None) -> dict[str, Any]:
    """The parsed ``zoo.json`` (empty when no zoo has been built)."""
    path = (root or zoo_dir()) / "zoo.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def zoo_reference(env_id: str, root: Path | None = None) -> tuple[float, float]:
    """seqrep's own (random, expert) returns for a zoo environment, for normalised scores."""
    entry = _entry(env_id, root)
    ref = entry["references"]
    return float(ref["random"]), float(ref["expert"])


def _members(entry: dict[str, Any]) -> list[str]:
    """The medium-replay mixture's policies, in the order a collection numbers them."""
    # D4RL's medium-replay holds every policy of a run up to the medium one: random, the
    # ladder of earlier snapshots, and medium itself.
    return ["random", *entry["ladder"], "medium"]


def zoo_recipe(env_id: str, level: str, root: Path | None = None) -> str:
    """What a collection of ``level`` in ``env_id`` rolls out, as one line: the policies and the
    training step of each snapshot, e.g. ``"random; ladder_1@5000; ...; medium@95000"``.

    A cached data set records it, so data collected by another zoo (rebuilt, or a mixture that
    has since been fixed) is never reused as if it were today's."""
    if level not in ZOO_LEVELS:
        raise ValueError(f"unknown zoo level {level!r}; choose {', '.join(ZOO_LEVELS)}")
    entry = _entry(env_id, root)
    names = _members(entry) if level == "medium-replay" else [level]
    return "; ".join(
        name if name == "random" else f"{name}@{entry['policies'][name]['step']}" for name in names
    )


def recipe_is_current(recorded: str | None, today: str, level: str) -> bool:
    """Whether data recorded as made by ``recorded`` (None: made before seqrep recorded
    recipes) are what ``today``'s recipe for ``level`` makes."""
    if recorded is None:
        # A single policy's data are what they were; the medium-replay mixture of the time
        # lacked the medium policy (fixed since).
        return level != "medium-replay"
    return str(recorded) == today


def _entry(env_id: str, root: Path | None) -> dict[str, Any]:
    index = zoo_index(root)
    if env_id not in index:
        known = ", ".join(sorted(index)) or "none (build it with bench/zoo.py)"
        raise ValueError(f"the zoo has no policies for {env_id!r}; it has: {known}")
    return index[env_id]


class ZooPolicy:
    """A stored SAC actor: observations [O] -> actions [A] in [-1, 1].

    Args:
        state: an actor snapshot (``train_rl.actor_snapshot`` layout).
        deterministic: act with the mean action; otherwise sample (as the data sets do).
        seed: seeds the action noise, so a collection is reproducible.
        device: where the actor runs (its noise generator too).
    """

    def __init__(
        self,
        state: dict[str, Any],
        obs_dim: int,
        act_dim: int,
        *,
        deterministic: bool,
        seed: int,
        device: str = "cpu",
    ) -> None:
        self.actor = SquashedGaussianActor(obs_dim, act_dim, int(state["hidden"]))
        self.actor.load_state_dict({k: v.float() for k, v in state["actor"].items()})
        self.actor.eval().to(device)
        self.obs_mean = state["obs_mean"].float().to(device)
        self.obs_std = state["obs_std"].float().to(device)
        self.deterministic, self.device = deterministic, device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None]
        sample, _, mean = self.actor((x - self.obs_mean) / self.obs_std, self.generator)
        return (mean if self.deterministic else sample)[0].cpu().numpy()


def uniform_random_policy(act_dim: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Uniform actions in [-1, 1]^A, ignoring the observation."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)


class _Mixture:
    """medium-replay-like: each episode is rolled by one policy drawn uniformly from a list."""

    def __init__(self, policies: list[Callable[[np.ndarray], np.ndarray]], seed: int) -> None:
        self.policies = policies
        self.rng = np.random.default_rng(seed)
        self.current = policies[0]

    def start_episode(self, episode: int) -> None:
        self.current = self.policies[int(self.rng.integers(len(self.policies)))]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.current(obs)


def load_zoo_policy(
    env_id: str,
    level: str,
    *,
    seed: int = 0,
    deterministic: bool = False,
    root: Path | None = None,
    device: str = "cpu",
) -> Callable[[np.ndarray], np.ndarray]:
    """The zoo's behaviour policy ``level`` (random, medium, expert, medium-replay) for
    ``env_id``. A medium-replay policy has ``start_episode(e)``: call it at every reset."""
    if level not in ZOO_LEVELS:
        raise ValueError(f"unknown zoo level {level!r}; choose {', '.join(ZOO_LEVELS)}")
    entry = _entry(env_id, root)
    obs_dim, act_dim = int(entry["obs_dim"]), int(entry["act_dim"])
    if level == "random":
        return uniform_random_policy(act_dim, seed)
    base = root or zoo_dir()

    def load(name: str, offset: int) -> ZooPolicy:
        path = base / entry["policies"][name]["file"]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"zoo file {path} cannot be read ({e}); reinstall seqrep") from e
        return ZooPolicy(
            state, obs_dim, act_dim, deterministic=deterministic, seed=seed + offset, device=device
        )

    if level != "medium-replay":
        return load(level, 0)
    members: list[Callable[[np.ndarray], np.ndarray]] = [
        uniform_random_policy(act_dim, seed) if name == "random" else load(name, i)
        for i, name in enumerate(_members(entry))
    ]
    return _Mixture(members, seed)
