"""Offline trajectory data: one :class:`TrajectoryDataset` from Minari data sets or D4RL HDF5 files.

Storage is flat per transition (``observations[i]``, ``actions[i]``, ``rewards[i]``,
``next_observations[i]``, ``terminals[i]``, ``timeouts[i]``) with ``episode_starts`` offsets, so
that sampling transitions, n-step windows and whole sub-sequences is plain indexing.

Episode boundaries follow D4RL: an episode ends after step i when ``terminals[i]`` (the MDP
ended: no bootstrapping) or ``timeouts[i]`` (truncated by a time limit: bootstrap from
next_observations) is set; trailing steps without either form a final truncated episode.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "TrajectoryDataset",
    "check_minari_id",
    "load_d4rl_hdf5",
    "load_minari",
    "load_trajectories",
    "minari_dataset_status",
    "require_writable_minari_id",
    "save_d4rl_hdf5",
    "save_minari",
]


@dataclass
class TrajectoryDataset:
    """Transitions of whole episodes, stored flat.

    Attributes:
        observations, next_observations: [N, obs_dim] float32.
        actions: [N, act_dim] float32.
        rewards: [N] float32.
        terminals: [N] bool, the episode's MDP ended at this step.
        timeouts: [N] bool, the episode was truncated after this step.
        episode_starts: [E + 1] int64 offsets; episode e is [starts[e], starts[e + 1]).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_starts: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        n = len(self.rewards)
        if n == 0:
            raise ValueError(f"{self.name or 'trajectory data set'} holds no transitions")
        for field_name in ("observations", "actions", "next_observations", "terminals", "timeouts"):
            if len(getattr(self, field_name)) != n:
                raise ValueError(
                    f"{field_name} has {len(getattr(self, field_name))} rows but rewards has {n}"
                )
        if self.observations.shape != self.next_observations.shape:
            raise ValueError("observations and next_observations must have the same shape")
        starts = self.episode_starts
        if starts[0] != 0 or starts[-1] != n or np.any(np.diff(starts) <= 0):
            raise ValueError("episode_starts must rise strictly from 0 to the number of steps")
        for field_name in ("observations", "actions", "rewards", "next_observations"):
            if not np.isfinite(getattr(self, field_name)).all():
                raise ValueError(f"{self.name}: {field_name} contains NaN or inf values")

    # ------------------------------------------------------------------------- shape
    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_starts) - 1

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_starts)

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    def episode(self, e: int) -> dict[str, np.ndarray]:
        """Arrays of episode ``e`` (each [T_e, ...])."""
        sl = slice(int(self.episode_starts[e]), int(self.episode_starts[e + 1]))
        return {k: getattr(self, k)[sl] for k in self._FIELDS}

    def first_episodes(self, n: int) -> TrajectoryDataset:
        """The first ``n`` episodes as a dataset of their own (1 <= n <= num_episodes)."""
        if not 1 <= n <= self.num_episodes:
            raise ValueError(
                f"{self.name or 'data set'} has {self.num_episodes} episodes; cannot take {n}"
            )
        return TrajectoryDataset.from_episodes(
            [self.episode(e) for e in range(n)], name=f"{self.name}[:{n} episodes]"
        )

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode: [E]."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts[:-1])

    _FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")

    @classmethod
    def from_episodes(
        cls, episodes: list[dict[str, np.ndarray]], name: str = ""
    ) -> TrajectoryDataset:
        """Concatenate per-episode dicts holding every field of :attr:`_FIELDS`."""
        if not episodes:
            raise ValueError("no episodes given")
        lengths = [len(ep["rewards"]) for ep in episodes]
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        cat = {k: np.concatenate([np.asarray(ep[k]) for ep in episodes]) for k in cls._FIELDS}
        return cls(**_typed(cat), episode_starts=starts, name=name)

    # ------------------------------------------------------------------------- sampling
    def sample_transitions(
        self, batch: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Uniform transitions: obs [B, O], action [B, A], reward [B], next_obs [B, O],
        terminal [B] (float: 1 where bootstrapping must stop)."""
        return self._gather(torch.randint(len(self), (batch,), generator=generator).numpy())

    def _gather(self, idx: np.ndarray) -> dict[str, Tensor]:
        """Rows ``idx`` (any shape) of every field, as tensors of shape idx.shape + field shape."""
        return {
            "obs": torch.from_numpy(self.observations[idx]),
            "action": torch.from_numpy(self.actions[idx]),
            "reward": torch.from_numpy(self.rewards[idx]),
            "next_obs": torch.from_numpy(self.next_observations[idx]),
            "terminal": torch.from_numpy(self.terminals[idx].astype(np.float32)),
        }

    def _window_starts(self, length: int) -> np.ndarray:
        """Every step from which ``length`` steps stay inside its episode."""
        lens = self.episode_lengths
        ok = lens >= length
        if not ok.any():
            raise ValueError(
                f"no episode has {length} steps (the longest has {int(lens.max())}); "
                "use a shorter window"
            )
        return np.concatenate(
            [
                np.arange(s, s + n - length + 1)
                for s, n in zip(self.episode_starts[:-1][ok], lens[ok], strict=True)
            ]
        )

    def sample_sequences(
        self, batch: int, length: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Sub-sequences of ``length`` steps inside one episode each: obs [B, L, O],
        action [B, L, A], reward [B, L], next_obs [B, L, O], terminal [B, L]."""
        starts = self._window_starts(length)
        pick = starts[torch.randint(len(starts), (batch,), generator=generator).numpy()]
        return self._gather(pick[:, None] + np.arange(length)[None, :])

    def sample_nstep(
        self, batch: int, n: int, gamma: float, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """n-step transitions: obs [B, O], action [B, A], the discounted reward sum up to n
        steps or the episode's end, the observation after those steps, whether the MDP ended
        within them, and the discount gamma^k to apply to the bootstrap ([B] each)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        idx = torch.randint(len(self), (batch,), generator=generator).numpy()
        ep = np.searchsorted(self.episode_starts, idx, side="right") - 1
        end = self.episode_starts[ep + 1]  # exclusive
        steps = np.minimum(n, end - idx)
        offs = np.arange(n)[None, :]
        inside = offs < steps[:, None]
        j = np.minimum(idx[:, None] + offs, len(self) - 1)
        disc = (gamma**offs) * inside
        ret = (self.rewards[j] * disc).sum(1)
        last = idx + steps - 1
        terminal = self.terminals[last]
        return {
            "obs": torch.from_numpy(self.observations[idx]),
            "action": torch.from_numpy(self.actions[idx]),
            "return": torch.from_numpy(ret.astype(np.float32)),
            "next_obs": torch.from_numpy(self.next_observations[last]),
            "terminal": torch.from_numpy(terminal.astype(np.float32)),
            "discount": torch.from_numpy((gamma**steps).astype(np.float32)),
        }


def _typed(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(d)
    for k in ("observations", "next_observations", "actions"):
        a = np.asarray(out[k], dtype=np.float32)
        out[k] = a.reshape(len(a), -1)
    out["rewards"] = np.asarray(out["rewards"], dtype=np.float32).reshape(-1)
    out["terminals"] = np.asarray(out["terminals"]).astype(bool).reshape(-1)
    out["timeouts"] = np.asarray(out["timeouts"]).astype(bool).reshape(-1)
    return out


# ----------------------------------------------------------------------------- D4RL HDF5
_D4RL_REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")


def load_d4rl_hdf5(path: str | Path) -> TrajectoryDataset:
    """Read a D4RL-layout HDF5 file (observations, actions, rewards, terminals, timeouts,
    optional next_observations) into episodes.

    Without ``next_observations``, a step's next observation is the following row within its
    episode; the last step of an episode that ends by timeout (or by the end of the file) has
    no known next observation and is dropped, as D4RL's ``qlearning_dataset`` does. A terminal
    step keeps its transition (its next observation is never bootstrapped from).
    """
    path = Path(path)
    data = _read_d4rl_arrays(path)
    n = len(data["rewards"])
    has_next = "next_observations" in data
    data = _typed(
        {**data, "next_observations": data.get("next_observations", data["observations"])}
    )
    ends = np.flatnonzero(data["terminals"] | data["timeouts"]) + 1
    if len(ends) == 0 or ends[-1] != n:
        ends = np.append(ends, n)  # trailing steps: a final, truncated episode
    starts = np.concatenate([[0], ends])
    episodes = []
    for first, stop in itertools.pairwise(starts):
        ep = {k: data[k][first:stop] for k in TrajectoryDataset._FIELDS}
        if stop == n and not (ep["terminals"][-1] or ep["timeouts"][-1]):
            ep["timeouts"] = ep["timeouts"].copy()
            ep["timeouts"][-1] = True
        if not has_next:
            nxt = np.empty_like(ep["observations"])
            nxt[:-1] = ep["observations"][1:]
            if ep["terminals"][-1]:
                nxt[-1] = ep["observations"][-1]  # never bootstrapped from
            else:  # truncated: the next observation is unknown, drop the step
                ep = {k: v[:-1] for k, v in ep.items()}
                nxt = nxt[:-1]
                if len(ep["rewards"]) == 0:
                    continue
                ep["timeouts"] = ep["timeouts"].copy()
                ep["timeouts"][-1] = True
            ep["next_observations"] = nxt
        episodes.append(ep)
    return TrajectoryDataset.from_episodes(episodes, name=path.stem)


def _read_d4rl_arrays(path: Path) -> dict[str, np.ndarray]:
    """The D4RL arrays of an HDF5 file, checked: present, of one length, not empty.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not HDF5, keys missing, arrays of different lengths, or no transitions.
    """
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in _D4RL_REQUIRED if k not in f]
            if missing:
                raise ValueError(
                    f"{path} lacks the D4RL keys {missing} (has {sorted(f.keys())}); it needs "
                    f"{', '.join(_D4RL_REQUIRED)} and optionally next_observations"
                )
            data = {k: np.asarray(f[k]) for k in (*_D4RL_REQUIRED, "next_observations") if k in f}
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file ({e})") from e
    n = len(data["rewards"])
    bad = {k: len(v) for k, v in data.items() if len(v) != n}
    if bad:
        raise ValueError(
            f"{path}: arrays differ in length from rewards ({n}): {bad}; the file is incomplete"
        )
    if n == 0:
        raise ValueError(f"{path} holds no transitions")
    return data


def save_d4rl_hdf5(data: TrajectoryDataset, path: str | Path, **attrs: str | float) -> Path:
    """Write ``data`` in D4RL's HDF5 layout (with next_observations), atomically; ``attrs``
    become file attributes (e.g. env id, behaviour policy). :func:`load_d4rl_hdf5` reads it back
    into the same episodes."""
    import os

    import h5py

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with h5py.File(tmp, "w") as f:
        for key in TrajectoryDataset._FIELDS:
            f.create_dataset(key, data=getattr(data, key), compression="gzip")
        for k, v in attrs.items():
            f.attrs[k] = v
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- Minari
def _require_minari():  # type: ignore[no-untyped-def]
    try:
        import minari
    except ImportError as e:
        raise ImportError(
            "reading or writing Minari data sets needs the minari package: pip install minari"
        ) from e
    return minari


def load_minari(dataset: str | object) -> TrajectoryDataset:
    """A local Minari data set (by id, via ``minari.load_dataset``, or a MinariDataset)."""
    minari = _require_minari()
    ds = minari.load_dataset(dataset) if isinstance(dataset, str) else dataset
    episodes = []
    for ep in ds.iterate_episodes():  # type: ignore[union-attr]
        obs = np.asarray(ep.observations)
        if obs.dtype == object or isinstance(ep.observations, dict):
            raise ValueError("only flat Box observations are supported (got a dict/tuple space)")
        episodes.append(
            {
                "observations": obs[:-1],
                "next_observations": obs[1:],
                "actions": np.asarray(ep.actions),
                "rewards": np.asarray(ep.rewards),
                "terminals": np.asarray(ep.terminations),
                "timeouts": np.asarray(ep.truncations),
            }
        )
    name = dataset if isinstance(dataset, str) else getattr(ds, "id", "minari")
    return TrajectoryDataset.from_episodes(episodes, name=str(name))


def check_minari_id(dataset_id: str) -> Path:
    """The folder of a well-formed Minari data set id, which always lies inside the data sets'
    root (``MINARI_DATASETS_PATH``, default ~/.minari/datasets).

    Minari's rule is ``(namespace/)name-vN``: letters, digits, ``-`` and ``_``, namespaces
    separated by ``/``, and a version. So ``..``, absolute paths and ids without a version are
    refused here, before anything is collected or written.

    Raises:
        ValueError: the id breaks the rule, or would point outside the root.
    """
    _require_minari()
    from minari.dataset.minari_dataset import DATASET_ID_RE
    from minari.storage.datasets_root_dir import get_dataset_path

    match = DATASET_ID_RE.fullmatch(dataset_id)
    if not match or match.group("version") is None or "//" in dataset_id:
        raise ValueError(
            f"--dataset-id {dataset_id!r} is not a Minari id: write (namespace/)name-vN with "
            "letters, digits, '-' and '_', e.g. seqrep/pendulum/expert-v0"
        )
    root = Path(get_dataset_path()).resolve()
    folder = Path(get_dataset_path(dataset_id))
    if root not in folder.resolve().parents:
        raise ValueError(f"--dataset-id {dataset_id!r} points outside the data sets' root {root}")
    return folder


def minari_dataset_status(dataset_id: str) -> str:
    """``"missing"``, ``"complete"`` or ``"incomplete"`` (a folder without readable data or
    with 0 episodes: what a write killed half-way leaves) for a local Minari data set id.

    Raises:
        ValueError: not a well-formed id (:func:`check_minari_id`).
    """
    import json

    folder = check_minari_id(dataset_id)
    if not folder.exists():
        return "missing"
    meta, main = folder / "data" / "metadata.json", folder / "data" / "main_data.hdf5"
    try:
        episodes = json.loads(meta.read_text()).get("total_episodes", 0)
    except (OSError, ValueError):
        return "incomplete"
    return "complete" if main.is_file() and episodes > 0 else "incomplete"


def require_writable_minari_id(dataset_id: str, overwrite: bool) -> None:
    """Raise unless ``dataset_id`` is free, or ``overwrite`` allows replacing what is there.

    Raises:
        ValueError: the id exists (complete or incomplete) and ``overwrite`` is False.
    """
    status = minari_dataset_status(dataset_id)
    if status != "missing" and not overwrite:
        raise ValueError(
            f"Minari data set {dataset_id!r} already exists"
            + (" but is incomplete (a write was interrupted)" if status == "incomplete" else "")
            + "; pass --overwrite to replace it, or choose another --dataset-id"
        )


_STAGING = ".seqrep-staging-"  # + the writer's pid + a random suffix


def _remove_abandoned_staging(root: Path) -> None:
    """Delete staging folders whose writer is gone (a killed ``collect``); a live writer's
    (another ``collect`` saving now) stays."""
    import shutil

    for folder in root.glob(f"{_STAGING}*"):
        pid = folder.name[len(_STAGING) :].split("-")[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def save_minari(
    data: TrajectoryDataset,
    dataset_id: str,
    env: object,
    *,
    overwrite: bool = False,
    **metadata: object,
) -> object:
    """Write ``data`` as a local Minari data set (no network; jax not needed), atomically.

    The set is written under a staging folder beside the data sets and moved into place only
    when complete, so a killed write never leaves a half-made set under ``dataset_id``.

    Args:
        dataset_id: e.g. ``"seqrep/halfcheetah/medium-v0"``.
        env: the gymnasium env id, env or EnvSpec it was collected in (spaces are taken from it).
        overwrite: replace an existing set of that id (only once the new one is complete).

    Returns:
        the written set, loaded from its final place.

    Raises:
        ValueError: the id exists (complete or not) and ``overwrite`` is False.
    """
    import os
    import shutil
    import tempfile

    minari = _require_minari()
    from minari.storage.datasets_root_dir import get_dataset_path

    require_writable_minari_id(dataset_id, overwrite)
    buffers = _episode_buffers(data)
    root = get_dataset_path()
    target = get_dataset_path(dataset_id)
    _remove_abandoned_staging(Path(root))
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=root))
    try:
        _create_in(staging, dataset_id, buffers, env, metadata)
        # Namespaces carry their own metadata files; bring any the target root lacks.
        for part in Path(dataset_id).parents:
            meta = staging / part / "namespace_metadata.json"
            if str(part) != "." and meta.exists() and not (root / part / meta.name).exists():
                (root / part).mkdir(parents=True, exist_ok=True)
                shutil.copy2(meta, root / part / meta.name)
        if target.exists():  # only now, with the new set complete, set the old one aside
            os.replace(target, staging / "replaced")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / dataset_id, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return minari.load_dataset(dataset_id)


def _episode_buffers(data: TrajectoryDataset) -> list[Any]:
    """Minari's EpisodeBuffer of each episode (observations with the final one appended)."""
    from minari.data_collector import EpisodeBuffer

    buffers = []
    for e in range(data.num_episodes):
        ep = data.episode(e)
        obs = np.concatenate([ep["observations"], ep["next_observations"][-1:]])
        buffers.append(
            EpisodeBuffer(
                id=e,
                observations=obs,
                actions=ep["actions"],
                rewards=list(ep["rewards"]),
                terminations=list(ep["terminals"]),
                truncations=list(ep["timeouts"]),
            )
        )
    return buffers


def _create_in(
    root: Path, dataset_id: str, buffers: list[Any], env: object, metadata: dict[str, object]
) -> None:
    """minari.create_dataset_from_buffers with ``root`` as the data sets' root (minari reads
    MINARI_DATASETS_PATH on every call), its metadata warnings silenced."""
    import os
    import warnings

    minari = _require_minari()
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        with warnings.catch_warnings():
            # minari asks for every optional metadata field on each write
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            minari.create_dataset_from_buffers(dataset_id, buffers, env=env, **metadata)  # type: ignore[arg-type]
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def load_trajectories(source: str) -> tuple[TrajectoryDataset, str | None]:
    """A D4RL-layout HDF5 file (by path) or a local Minari data set (by id), and its env id."""
    if not source:
        raise ValueError("--data is required: a Minari data set id or a .hdf5 path")
    if Path(source).suffix in (".hdf5", ".h5"):
        return load_d4rl_hdf5(source), None
    minari = _require_minari()
    if minari_dataset_status(source) == "incomplete":
        raise ValueError(
            f"Minari data set {source!r} is incomplete (its write was interrupted): collect it "
            "again with `seqrep collect ... --overwrite`"
        )
    try:
        ds = minari.load_dataset(source)
    except Exception as e:  # minari raises FileNotFoundError / ValueError for unknown ids
        raise ValueError(f"cannot load Minari data set {source!r}: {e}") from e
    env_spec = getattr(ds, "env_spec", None)
    return load_minari(ds), getattr(env_spec, "id", None)
