"""Run folders and checkpoints: what every long job writes.

A run folder holds::

    config.json        the full typed config (reproduces the run)
    metrics.jsonl      one JSON object per logged step
    checkpoints/       last.pt, written atomically (tmp file + rename)
    report.md          the human summary, with the plots beside it
    *.png              plots

Re-running into an existing folder resumes when its config matches and refuses (with the fix
in the message) when it does not, so nothing written before is lost by accident.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as _dt
import errno
import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

from seqrep.distributed import broadcast_object, gather_objects, rank, world_size
from seqrep.loops.progress import console
from seqrep.loops.tensorboard_log import TensorBoardLog, record_step
from seqrep.options import require_extra

__all__ = [
    "Prepared",
    "RunDir",
    "RunDirError",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_run_folder",
    "has_progress",
    "hold_lock",
    "is_run_folder",
    "load_run",
    "load_shared_checkpoint",
    "load_training_state",
    "rank_states",
    "release_lock",
    "restore_rank_state",
    "restore_shared_checkpoint",
    "save_shared_checkpoint",
    "training_state",
]

T = TypeVar("T")


class RunDirError(RuntimeError):
    """A run folder cannot be used as asked (config mismatch, unreadable checkpoint)."""


@dataclasses.dataclass
class Prepared:
    """A verb's work, built and checked before anything is written: the config validated, the
    data loaded and checked against the method, encoder files opened, environments made and
    renderers probed. Each verb's ``prepare_*`` function returns one (a subclass holding what it
    built), and :meth:`RunDir.open` takes nothing else, so no verb can open, and so no
    ``--overwrite`` can clear, a run folder before its preparation has returned.

    Attributes:
        kind: the verb, e.g. ``"sac"`` (config.json's ``kind``).
        config: the verb's validated config dataclass (or dict).
    """

    kind: str
    config: Any


def _jsonable(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, default=str))


MARKER = ".seqrep-run"  # written into every run folder: what --overwrite may delete
LOCK = ".lock"  # held (flock) by the process writing the folder; holds its pid

# Locks this process holds, by resolved folder: re-opening a folder in the same process (a
# resumed run in a test, the study's cells) is allowed; a second process is refused.
_HELD_LOCKS: dict[Path, Any] = {}


def is_run_folder(path: Path) -> bool:
    """True when ``path`` holds a seqrep run: a config.json naming its kind, and the marker
    (or, for folders written before the marker existed, a checkpoints/ folder)."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        return False
    try:
        kind = json.loads(cfg_file.read_text()).get("kind")
    except (json.JSONDecodeError, AttributeError, OSError):
        return False
    return isinstance(kind, str) and ((path / MARKER).exists() or (path / "checkpoints").is_dir())


def has_progress(path: Path) -> bool:
    """True when a run folder holds work worth protecting: a checkpoint, or finished study
    cells. A folder whose run never reached its first checkpoint holds nothing to resume."""
    ckpt = path / "checkpoints"
    if ckpt.is_dir() and any(f.is_file() and f.suffix != ".tmp" for f in ckpt.iterdir()):
        return True
    cells = path / "cells.jsonl"
    return cells.is_file() and cells.stat().st_size > 0


# Field metadata of options that never change a run's numbers (how often it checkpoints): a
# resume may pass another value, which config.json then records.
_MAY_CHANGE = "may_change_on_resume"
MAY_CHANGE_ON_RESUME = {_MAY_CHANGE: True}


def _config_differences(old: dict[str, Any], new: dict[str, Any], config: Any) -> list[str]:
    """The options whose values differ between a saved and a new config, leaving out those a
    resume may change (:data:`MAY_CHANGE_ON_RESUME`)."""
    free: set[str] = set()
    if dataclasses.is_dataclass(config):
        free = {f.name for f in dataclasses.fields(config) if f.metadata.get(_MAY_CHANGE)}
    return sorted(k for k in set(old) | set(new) if k not in free and old.get(k) != new.get(k))


def _saved_config_differences(path: Path, kind: str, config: Any) -> list[str]:
    """What differs between the run folder's config.json (read as :func:`with_options_added_since`
    completes it) and ``kind`` + ``config``, leaving out what a resume may change."""
    saved = with_options_added_since(json.loads((path / "config.json").read_text()), type(config))
    return _config_differences(saved, {"kind": kind, **_jsonable(config)}, config)


def with_options_added_since(saved: dict[str, Any], config_cls: Any) -> dict[str, Any]:
    """A saved config plus every option ``config_cls`` gained since it was written, at the value
    the run had then: the class's ``absent_in_old_runs`` entry where the option's default
    changed what the run does, else the option's default. So an old run resumes and reloads as
    it ran, rather than being refused as a different config or rebuilt under new defaults."""
    if not dataclasses.is_dataclass(config_cls):
        return saved
    absent = getattr(config_cls, "absent_in_old_runs", {})
    added = {
        f.name: absent.get(f.name, f.default)
        for f in dataclasses.fields(config_cls)
        if f.name not in saved and (f.name in absent or f.default is not dataclasses.MISSING)
    }
    return {**saved, **_jsonable(added)} if added else saved


def _protected(path: Path) -> str | None:
    """Why ``path`` must never be deleted wholesale, or None."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        return "it is the current directory or one of its parents"
    if resolved == Path.home().resolve():
        return "it is your home directory"
    if resolved.parent == resolved:
        return "it is the filesystem root"
    if (resolved / ".git").exists():
        return "it is the root of a git repository"
    return None


def default_run_folder(kind: str, runs_root: str | os.PathLike[str] = "runs") -> Path:
    """Where a run goes when no --out is given: ``runs/<kind>-<YYYYmmdd-HHMMSS>``."""
    return Path(runs_root) / f"{kind}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _folder_to_use(
    out: str | os.PathLike[str] | None,
    kind: str,
    runs_root: str | os.PathLike[str],
    overwrite: bool,
) -> Path:
    """The run folder ``out`` names (``runs_root/<kind>-<date>`` for None), once it is clear
    that seqrep may write there: absent, empty, or a seqrep run that --overwrite may clear.

    Raises:
        RunDirError: an empty name, a file, a folder of something else, or a protected folder
            (cwd, home, a repository root) to --overwrite.
    """
    if out is None:
        out = default_run_folder(kind, runs_root)
    if str(out).strip() == "":
        raise RunDirError("--out is empty; give a folder name, e.g. --out runs/my-run")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a folder; choose another --out")
    existing = path.is_dir() and any(e.name != LOCK for e in path.iterdir())
    if existing and not is_run_folder(path):
        why = _protected(path)
        raise RunDirError(
            f"{path} is not empty and holds no seqrep run"
            + (f" ({why})" if why else "")
            + ": it is not a seqrep run folder, so seqrep will neither write into it nor "
            "delete it (not even with --overwrite). Choose another --out."
        )
    if existing and overwrite and (why := _protected(path)):
        raise RunDirError(f"refusing to --overwrite {path}: {why}")
    return path


def _clear_unless_resumable(path: Path, kind: str, config: Any, overwrite: bool) -> None:
    """Keep a run folder of the same config (to resume), clear it for --overwrite or when
    it holds another config that never reached a checkpoint (a failed start).

    Raises:
        RunDirError: another config with progress, and no --overwrite.
    """
    changed = _saved_config_differences(path, kind, config)
    if overwrite:
        _clear_run_folder(path)
    elif changed:
        if has_progress(path):
            raise RunDirError(
                f"{path} holds a run with a different config (differs in: "
                f"{', '.join(changed)}). Choose another --out, or pass --overwrite to "
                "replace it."
            )
        # A start that failed before its first checkpoint: nothing to resume or lose.
        console.print(
            f"[yellow]note:[/] {path} held a run with another config that never reached "
            "its first checkpoint; starting afresh there"
        )
        _clear_run_folder(path)


def _clear_run_folder(path: Path) -> None:
    """Delete a run folder's contents, keeping the lock file this process holds."""
    for entry in path.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _acquire_lock(path: Path) -> None:
    """Take the run folder's exclusive lock for this process's lifetime, or say who holds it."""
    hold_lock(path / LOCK, path, "two runs must not write one folder", "choose another --out")


def hold_lock(lock_file: Path, what: Path, why: str, fix: str) -> None:
    """Hold an exclusive lock (flock) on ``lock_file`` for this process's lifetime, recording
    this process in it, so that a second process writing ``what`` fails at once instead of
    both writing it. Taking a lock this process holds is a no-op.

    Raises:
        RunDirError: another process holds it: its pid, ``why`` it matters and the ``fix``.
    """
    key = what.resolve()
    if key in _HELD_LOCKS:
        return
    import fcntl

    handle = open(lock_file, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirError(
            f"{what} is in use by {holder}: {why}. Wait for it to finish (or stop it), or {fix}."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _HELD_LOCKS[key] = handle


@atexit.register
def _release_all_locks() -> None:
    for key in list(_HELD_LOCKS):
        release_lock(key)


def release_lock(path: str | os.PathLike[str]) -> None:
    """Give up this process's lock on a run folder or file (the lock also ends with the
    process)."""
    handle = _HELD_LOCKS.pop(Path(path).resolve(), None)
    if handle is not None:
        handle.close()  # closing the file releases the flock


class RunDir:
    """A folder for one run. Create with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoints = path / "checkpoints"
        self._tensorboard = False  # see enable_tensorboard
        self._board: TensorBoardLog | None = None
        self._purge_step: int | None = None

    @classmethod
    def open(
        cls,
        out: str | os.PathLike[str] | None,
        prepared: Prepared,
        *,
        overwrite: bool = False,
        runs_root: str | os.PathLike[str] = "runs",
    ) -> RunDir:
        """Create (or reopen for resuming) a run folder, and lock it for this process.

        It is the first thing a verb writes to disk, and it takes the verb's :class:`Prepared`
        work: everything that can fail on the user's input has been checked by then.

        Args:
            out: the folder; ``None`` makes ``runs/<kind>-<YYYYmmdd-HHMMSS>``.
            prepared: what the verb's ``prepare_*`` function returned; its ``kind`` (e.g.
                ``"mi-bench"``) and ``config`` (a dataclass or dict) go to config.json.
            overwrite: replace an existing run instead of resuming it. Only a folder that
                holds a seqrep run (config.json and marker) is ever cleared, and never the
                current directory, a parent of it, home or a repository root.

        Raises:
            RunDirError: the folder is not a run folder, holds another config (with a
                checkpoint), is locked by another process, or cannot be written.
            TypeError: ``prepared`` is not a :class:`Prepared`.
        """
        if not isinstance(prepared, Prepared):
            raise TypeError(
                "RunDir.open takes a verb's Prepared work (its prepare_* function's result), "
                f"got {type(prepared).__name__}: check everything before opening a run folder"
            )
        kind, config = prepared.kind, prepared.config
        path = _folder_to_use(out, kind, runs_root, overwrite)
        existing = any(e.name != LOCK for e in path.iterdir()) if path.is_dir() else False
        try:
            path.mkdir(parents=True, exist_ok=True)
            _acquire_lock(path)
        except OSError as e:
            raise RunDirError(
                f"cannot create the run folder {path}: {e.strerror or e}. Choose an --out "
                "where you can write."
            ) from e
        if existing:
            _clear_unless_resumable(path, kind, config, overwrite)
        run = cls(path)
        try:
            run.checkpoints.mkdir(exist_ok=True)
            run.remove_partial_files()
            (path / MARKER).write_text(
                "This folder is a seqrep run (see config.json); `--overwrite` may replace it.\n"
            )
            cfg = {"kind": kind, **_jsonable(config)}
            atomic_write_text(path / "config.json", json.dumps(cfg, indent=2) + "\n")
        except OSError as e:
            raise RunDirError(f"cannot write into the run folder {path}: {e.strerror or e}") from e
        return run

    @classmethod
    def attach(cls, out: str | os.PathLike[str], kind: str, config: Any) -> RunDir:
        """An existing run folder opened to report on it, perhaps while its own process still
        writes it (``study --report-only``): the config must match, no lock is taken and
        nothing is written on opening. Reports go through atomic writes.

        Raises:
            RunDirError: the folder holds no seqrep run, or a run of another config.
        """
        path = Path(out)
        if not is_run_folder(path):
            raise RunDirError(f"{path} holds no seqrep run to report on; pass the --out of one")
        if changed := _saved_config_differences(path, kind, config):
            raise RunDirError(
                f"{path} holds a run with a different config (differs in: {', '.join(changed)}); "
                "pass the options it ran with"
            )
        return cls(path)

    def remove_partial_files(self) -> None:
        """Delete the ``*.tmp`` files a killed or failed write left behind. Only the process
        holding the folder's lock writes there, so none of them is being written now."""
        for folder in (self.path, self.checkpoints):
            if folder.is_dir():
                for tmp in folder.glob("*.tmp"):
                    tmp.unlink(missing_ok=True)

    # ----------------------------------------------------------------------- metrics
    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl.

        Raises:
            RunDirError: the line cannot be written (no space left, no permission).
        """
        target = self.path / "metrics.jsonl"
        try:
            with open(target, "a") as f:
                f.write(json.dumps(record, default=float) + "\n")
        except OSError as e:
            why = "no space left" if _no_space(e, self.path) else e.strerror or str(e)
            raise RunDirError(f"cannot append to {target}: {why}") from e
        if self._tensorboard:
            if self._board is None:  # made here: a resume's truncation has set the purge step
                index = len(self.read_metrics()) - 1
                self._board = TensorBoardLog(self.path / "tensorboard", self._purge_step, index)
            self._board.add_record(record)

    def enable_tensorboard(self) -> None:
        """Also write every logged record to TensorBoard event files in ``tensorboard/``, and
        the report's figures at :meth:`close_tensorboard`.

        Raises:
            ImportError: tensorboard is not installed (``pip install 'seqrep[tensorboard]'``).
        """
        require_extra("tensorboard", "--tensorboard")
        self._tensorboard = True

    def close_tensorboard(self) -> None:
        """Add the report's figures (the folder's PNGs) as images and close the event files."""
        if self._tensorboard:
            if self._board is None:
                self._board = TensorBoardLog(self.path / "tensorboard", self._purge_step)
            self._board.add_figures(self.path)
            self._board.close()
            self._board, self._tensorboard = None, False

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records of metrics.jsonl (a torn last line from a crash is skipped)."""
        file = self.path / "metrics.jsonl"
        if not file.exists():
            return []
        out = []
        for line in file.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_metrics(self, keep: int) -> None:
        """Keep the first ``keep`` records: used on resume to drop steps logged after the
        checkpoint that the resumed run will log again."""
        records = self.read_metrics()[:keep]
        atomic_write_text(
            self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records)
        )
        # TensorBoard's events at or past the next step to log are dropped the same way.
        self._purge_step = record_step(records[-1], keep - 1) + 1 if records else 0

    # ----------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, state: dict[str, Any], name: str = "last.pt") -> Path:
        """torch.save to a temporary file, then rename: a kill never leaves half a file, and a
        failed write (a full disk) removes its partial file and keeps the previous checkpoint.

        Raises:
            RunDirError: the checkpoint cannot be written (no space left, no permission).
        """
        target = self.checkpoints / name
        with _partial_file_removed_on_failure(target) as tmp:
            torch.save(state, tmp)
        return target

    def load_checkpoint(self, name: str = "last.pt") -> dict[str, Any] | None:
        """The saved state, or ``None`` when there is none yet."""
        target = self.checkpoints / name
        if not target.exists():
            return None
        try:
            return torch.load(target, map_location="cpu", weights_only=False)
        except Exception as e:  # a corrupt file must say so, not crash obscurely
            raise RunDirError(
                f"checkpoint {target} cannot be read ({e}); delete it to restart the run"
            ) from e

    # ----------------------------------------------------------------------- report
    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        atomic_write_text(target, text)
        return target

    def write_json(self, name: str, data: Any) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, default=float) + "\n")


def training_state(module: torch.nn.Module) -> dict[str, Any]:
    """All a model needs to continue exactly where it stopped: its weights, every optimiser
    and random generator it holds (by attribute name, e.g. SAC's q_opt, CURL's critic_opt and
    generator), and its update counter."""
    state: dict[str, Any] = {"model": module.state_dict(), "updates": getattr(module, "updates", 0)}
    for name, value in vars(module).items():
        if isinstance(value, torch.optim.Optimizer):
            state[name] = value.state_dict()
        elif isinstance(value, torch.Generator):
            state[name] = value.get_state()
    return state


def load_training_state(module: torch.nn.Module, state: dict[str, Any]) -> None:
    """Restore what :func:`training_state` saved."""
    module.load_state_dict(state["model"])
    for name, value in vars(module).items():
        if isinstance(value, torch.optim.Optimizer):
            value.load_state_dict(state[name])
        elif isinstance(value, torch.Generator):
            value.set_state(state[name])
    if hasattr(module, "updates"):
        module.updates = state["updates"]


def load_shared_checkpoint(run: RunDir | None) -> dict[str, Any] | None:
    """The checkpoint rank 0 reads from its run folder, on every rank (torch.distributed; the
    other ranks pass ``None``). In one process: ``run.load_checkpoint()``."""
    return broadcast_object(run.load_checkpoint() if run is not None else None)


def rank_states() -> dict[str, Any]:
    """What a checkpoint keeps of every rank: each one's torch RNG state, and how many there
    are. A collective: every rank calls it, rank 0 saves it."""
    return {"torch_rng": gather_objects(torch.get_rng_state()), "processes": world_size()}


def restore_rank_state(state: dict[str, Any], finished: bool) -> None:
    """Restore this rank's torch RNG from :func:`rank_states`'s part of a checkpoint.

    Raises:
        ValueError: an unfinished run resumed with another number of processes (the global
            batch would change).
    """
    ranks = state.get("processes", 1)
    if ranks != world_size() and not finished:
        raise ValueError(
            f"the checkpoint was written by {ranks} process(es) and this run has "
            f"{world_size()}: the global batch would change. Resume with --nproc-per-node "
            f"{ranks} (or --overwrite to start again)"
        )
    rngs = state["torch_rng"]
    if not isinstance(rngs, list):  # a checkpoint from before distributed runs
        rngs = [rngs]
    torch.set_rng_state(rngs[rank()] if len(rngs) == world_size() else rngs[0])


def _state_of(obj: Any) -> Any:
    return obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()


def _restore(obj: Any, state: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    else:
        obj.load_state_dict(state)


def save_shared_checkpoint(run: RunDir | None, parts: dict[str, Any], **extra: Any) -> None:
    """A checkpoint of ``parts`` (modules, optimisers, generators, by key) with every rank's
    torch RNG and ``extra`` fields. A collective under torch.distributed: every rank calls it,
    rank 0 (the one holding ``run``) writes it; None writes nothing."""
    ranks = rank_states()
    if run is not None:
        run.save_checkpoint({**{k: _state_of(v) for k, v in parts.items()}, **ranks, **extra})


def restore_shared_checkpoint(
    run: RunDir | None, parts: dict[str, Any], progress: str, total: int
) -> dict[str, Any] | None:
    """Restore ``parts`` and this rank's RNG from the checkpoint rank 0 reads (every rank
    gets it); ``progress`` is the checkpoint's step field, finished at ``total`` (a finished
    run loads in any number of processes). Returns the checkpoint, or None without one."""
    state = load_shared_checkpoint(run)
    if state is not None:
        restore_rank_state(state, finished=state[progress] >= total)
        for key, obj in parts.items():
            _restore(obj, state[key])
    return state


def load_run(
    path: str | os.PathLike[str], kind: str, config_cls: type[T]
) -> tuple[T, dict[str, Any]]:
    """The typed config and last checkpoint of a ``seqrep <kind>`` run folder.

    Raises:
        RunDirError: no config.json, another kind of run, or no (readable) checkpoint yet.
    """
    run = RunDir(Path(path))
    cfg_file = run.path / "config.json"
    if not cfg_file.exists():
        raise RunDirError(f"{path} has no config.json: not a `seqrep {kind}` run folder")
    try:
        saved = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise RunDirError(f"{cfg_file} is not valid JSON ({e})") from e
    if saved.get("kind") != kind:
        raise RunDirError(f"{path} holds a {saved.get('kind')!r} run, not a `seqrep {kind}` run")
    names = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    saved = with_options_added_since(saved, config_cls)
    config = config_cls(**{k: v for k, v in saved.items() if k in names})
    state = run.load_checkpoint()
    if state is None:
        raise RunDirError(
            f"{run.checkpoints / 'last.pt'} is missing: the run has not checkpointed yet"
        )
    return config, state


def _no_space(error: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of disk space: OSError ENOSPC from a plain write, or a
    full file system under ``folder`` (torch.save's zip writer reports it only as "unexpected
    pos"). Call it before the partial file is deleted, while it still fills the disk."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < _FULL_BELOW
    except OSError:
        return False


_FULL_BELOW = 1 << 20  # bytes free under which a file system counts as full


@contextmanager
def _partial_file_removed_on_failure(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``, on any
    failure delete it (``target`` keeps its old content) and say in one line what went wrong."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as e:
        full = not isinstance(e, KeyboardInterrupt | SystemExit) and _no_space(e, target.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise RunDirError(
                f"no space left on {_mount_point(target)} to write {target}: free some space "
                "(or choose an --out on another disk) and rerun; the previous file is kept"
            ) from e
        if isinstance(e, OSError):
            raise RunDirError(f"cannot write {target}: {e.strerror or e}") from e
        raise


def _mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (its nearest existing folder)."""
    p = path.resolve().parent
    while not p.exists():
        p = p.parent
    while not p.is_mount() and p.parent != p:
        p = p.parent
    return p


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write to a temporary file beside ``target``, then rename: readers never see half a file,
    and a failed write (a full disk) leaves no partial file and the old ``target`` in place.

    Raises:
        RunDirError: the file cannot be written (no space left, no permission).
    """
    with _partial_file_removed_on_failure(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` (UTF-8)."""
    atomic_write_bytes(target, text.encode())
