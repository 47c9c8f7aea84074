"""Pieces of run reports shared by the verbs: evaluation curves and tables, video links."""

from __future__ import annotations

from typing import Any

import numpy as np

from seqrep.loops.runs import RunDir

__all__ = ["evaluation_table", "plot_evaluations", "videos_section"]


def plot_evaluations(ax: Any, evals: list[dict[str, Any]], label: str) -> None:
    """Evaluation returns (mean, with a ±std band) against the step, on a matplotlib axis."""
    if not evals:
        return
    steps = np.array([m["step"] for m in evals])
    mean = np.array([m["eval_return_mean"] for m in evals])
    std = np.array([m["eval_return_std"] for m in evals])
    ax.plot(steps, mean, "o-", label=label)
    ax.fill_between(steps, mean - std, mean + std, alpha=0.2)


def evaluation_table(evals: list[dict[str, Any]]) -> str:
    """The evaluations as a Markdown table: step, return mean ± std."""
    rows = "\n".join(
        f"| {m['step']} | {m['eval_return_mean']:.1f} ± {m['eval_return_std']:.1f} |" for m in evals
    )
    return f"| step | evaluation return (mean ± std) |\n|---|---|\n{rows}"


def videos_section(run: RunDir) -> str:
    """Links to the first and last evaluation videos (``--capture-video``), or ''."""
    videos = sorted(
        (run.path / "videos").glob("step-*.mp4"), key=lambda p: int(p.stem.split("-")[1])
    )
    if not videos:
        return ""
    shown = dict.fromkeys([videos[0], videos[-1]])
    links = ", ".join(f"[{p.stem.replace('-', ' ')}](videos/{p.name})" for p in shown)
    return f"\nEvaluation episodes on video (the first of each evaluation): {links}.\n"
