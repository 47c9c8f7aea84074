"""What long work shows: rich progress bars with count, rate and ETA, the console they draw on
(stderr), and where the newest bar stood when Ctrl-C came."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

__all__ = ["console", "interrupted_at", "progress_bar"]

# Outside a terminal (CI, log files) rich assumes 80 columns and wraps the bar; give it room.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


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
        _LAST_PROGRESS.update(description=description, done=0, total=total)

        def advance(n: int = 1, **info: float | str) -> None:
            text = "  ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
            )
            bar.update(task, advance=n, info=text)
            _LAST_PROGRESS["done"] += n

        yield advance


# Where the newest progress bar stood, for the one-line message after Ctrl-C.
_LAST_PROGRESS: dict[str, Any] = {}


def interrupted_at() -> str:
    """'<bar> step N of M' of the newest progress bar, or '' when none ran."""
    if not _LAST_PROGRESS:
        return ""
    p = _LAST_PROGRESS
    return f"{p['description']} step {p['done']:,} of {p['total']:,}"
