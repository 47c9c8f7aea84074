"""Run folders, checkpoints and progress bars: what every long job writes and shows.

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

import dataclasses
import datetime as _dt
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = [
    "RunDir",
    "RunDirError",
    "atomic_write_text",
    "console",
    "load_run",
    "progress_bar",
]

# Outside a terminal (CI, log files) rich assumes 80 columns and wraps the bar; give it room.
T = TypeVar("T")

console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


class RunDirError(RuntimeError):
    """A run folder cannot be used as asked (config mismatch, unreadable checkpoint)."""


def _jsonable(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, default=str))


class RunDir:
    """A folder for one run. Create with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoints = path / "checkpoints"

    @classmethod
    def open(
        cls,
        out: str | os.PathLike[str] | None,
        kind: str,
        config: Any,
        *,
        overwrite: bool = False,
        runs_root: str | os.PathLike[str] = "runs",
    ) -> RunDir:
        """Create (or reopen for resuming) a run folder.

        Args:
            out: the folder; ``None`` makes ``runs/<kind>-<YYYYmmdd-HHMMSS>``.
            kind: the job's name, e.g. ``"mi-bench"``.
            config: a dataclass (or dict) written to config.json.
            overwrite: delete an existing folder first instead of resuming it.
        """
        if out is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = Path(runs_root) / f"{kind}-{stamp}"
        path = Path(out)
        cfg = {"kind": kind, **_jsonable(config)}
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} exists and is not a folder; choose another --out")
        if path.exists() and overwrite:
            shutil.rmtree(path)
        cfg_file = path / "config.json"
        if cfg_file.exists():
            try:
                old = json.loads(cfg_file.read_text())
            except json.JSONDecodeError as e:
                raise RunDirError(
                    f"{cfg_file} is not valid JSON ({e}); move the folder away or pass --overwrite"
                ) from e
            if old != cfg:
                changed = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
                raise RunDirError(
                    f"{path} holds a run with a different config (differs in: "
                    f"{', '.join(changed)}). Choose another --out, or pass --overwrite to "
                    "replace it."
                )
        elif path.exists() and any(path.iterdir()):
            raise RunDirError(
                f"{path} is not empty and holds no config.json: it is not a seqrep run folder. "
                "Choose another --out."
            )
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.checkpoints.mkdir(exist_ok=True)
        atomic_write_text(cfg_file, json.dumps(cfg, indent=2) + "\n")
        return run

    # ----------------------------------------------------------------------- metrics
    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl."""
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record, default=float) + "\n")

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

    # ----------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, state: dict[str, Any], name: str = "last.pt") -> Path:
        """torch.save to a temporary file, then rename: a kill never leaves half a file."""
        target = self.checkpoints / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, target)
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
    config = config_cls(**{k: v for k, v in saved.items() if k in names})
    state = run.load_checkpoint()
    if state is None:
        raise RunDirError(
            f"{run.checkpoints / 'last.pt'} is missing: the run has not checkpointed yet"
        )
    return config, state


def atomic_write_text(target: Path, text: str) -> None:
    """Write to a temporary file beside ``target``, then rename: readers never see half a file."""
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} it/s" if speed else "- it/s", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, total: int, *, disable: bool = False) -> Iterator[Any]:
    """A rich progress bar with count, rate and ETA; yields ``advance(n=1, **info)``.

    ``info`` is shown after the bar (e.g. the current loss).
    """
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=console, disable=disable, transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, **info: float | str) -> None:
            text = "  ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
            )
            bar.update(task, advance=n, info=text)

        yield advance
