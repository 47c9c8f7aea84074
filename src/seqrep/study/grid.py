"""The study's grid: its cells, their keys, filters over them (``--only``), which worker owns
which cell, and the rows file (cells.jsonl) finished cells are appended to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seqrep.study.config import StudyConfig

__all__ = [
    "CELL_FIELDS",
    "CellFilter",
    "append_row",
    "cell_key",
    "check_cell_filter",
    "grid_cells",
    "is_selected",
    "owners",
    "parse_cell_filter",
    "read_rows",
    "unfinished_cells",
]


def grid_cells(cfg: StudyConfig) -> list[dict[str, Any]]:
    cells = []
    grid = {
        "imitation": (cfg.envs, cfg.objectives, cfg.modes),
        "offline": (cfg.envs, cfg.offline_objectives, cfg.offline_modes),
        "online": (cfg.online_envs, cfg.online_objectives, cfg.online_modes),
    }
    # Setting-major, cheapest first: a partly finished study already holds the imitation
    # comparison on every environment.
    for setting in cfg.settings:
        envs, objectives, setting_modes = grid[setting]
        for env_id in cfg.envs:
            if env_id not in envs:
                continue
            for objective in objectives:
                # With no pretraining there is nothing to freeze: the encoder trains end to end.
                modes = ("scratch",) if objective == "none" else setting_modes
                # The data-efficiency axis: one imitation cell per expert-set size (the key is
                # absent without the axis, so cells files of earlier studies still resume).
                sizes: tuple[int | None, ...] = (
                    cfg.bc_episodes if setting == "imitation" and cfg.bc_episodes else (None,)
                )
                for mode in modes:
                    for episodes in sizes:
                        for seed in cfg.seeds:
                            cell = {
                                "env": env_id,
                                "setting": setting,
                                "objective": objective,
                                "mode": mode,
                                "seed": seed,
                            }
                            cells.append(
                                cell if episodes is None else {**cell, "episodes": episodes}
                            )
    return cells


# The fields that name a cell, in the order of its key; what --only can select on. Every cell
# has the others; ``episodes`` only on the data-efficiency axis.


CELL_FIELDS = ("env", "setting", "objective", "mode", "seed", "episodes")


CellFilter = dict[str, frozenset[str]]


def cell_key(c: dict[str, Any]) -> tuple[Any, ...]:
    return (*(c[k] for k in CELL_FIELDS[:-1]), c.get("episodes"))


def parse_cell_filter(terms: tuple[str, ...] | list[str]) -> CellFilter:
    """``("env=Walker2d-v5,Hopper-v5", "setting=imitation")`` -> {field: accepted values}: a
    cell is selected when every named field holds one of its values (compared as text).

    Raises:
        ValueError: a term is not ``FIELD=VALUE[,VALUE...]`` or names no cell field.
    """
    selected: CellFilter = {}
    for term in terms:
        name, sep, values = term.partition("=")
        name = name.strip()
        accepted = frozenset(v.strip() for v in values.split(",") if v.strip())
        if not sep or not accepted:
            raise ValueError(f"--only {term!r}: write FIELD=VALUE[,VALUE...], e.g. env=Hopper-v5")
        if name not in CELL_FIELDS:
            raise ValueError(
                f"--only {term!r}: unknown field {name!r}; choose {', '.join(CELL_FIELDS)}"
            )
        selected[name] = selected.get(name, accepted) & accepted
    return selected


def is_selected(cell: dict[str, Any], only: CellFilter | None) -> bool:
    return not only or all(str(cell.get(k)) in values for k, values in only.items())


def check_cell_filter(cfg: StudyConfig, only: CellFilter) -> int:
    """The number of ``cfg``'s cells that ``only`` selects (all of them when it is empty).

    Raises:
        ValueError: it selects none (a misspelt value, say), with the values the grid holds.
    """
    cells = grid_cells(cfg)
    count = sum(is_selected(c, only) for c in cells)
    if count == 0:
        held = "; ".join(
            f"{k}: {', '.join(dict.fromkeys(str(c.get(k)) for c in cells))}" for k in only
        )
        raise ValueError(f"--only selects none of the study's {len(cells)} cells ({held})")
    return count


def owners(cfg: StudyConfig, jobs: int) -> dict[tuple[Any, ...], int]:
    """Which worker runs each cell: round-robin over pretrained encoders (env, objective, seed),
    so that every cell needing one encoder runs in the worker that trains it."""
    encoders = list(dict.fromkeys((c["env"], c["objective"], c["seed"]) for c in grid_cells(cfg)))
    worker = {e: i % jobs for i, e in enumerate(encoders)}
    return {cell_key(c): worker[(c["env"], c["objective"], c["seed"])] for c in grid_cells(cfg)}


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """The finished cells in ``folder``'s cells.jsonl, each cell once (its first row).

    A cell can be appended twice: a worker whose study process was killed finishes the cell it
    was running, while a resumed study runs that cell again. A cell's result depends only on its
    seed, so the first row stands and a repeat would only count one seed twice in the summary.
    """
    path = folder / "cells.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i < len(lines) - 1:  # only the line being appended (or torn by a kill) may be cut
                raise ValueError(f"{path}: line {i + 1} is not JSON; the file is damaged") from None
            continue
        rows.setdefault(cell_key(row), row)
    return list(rows.values())


def append_row(folder: Path, row: dict[str, Any]) -> None:
    # One write per finished cell, in append mode: workers never interleave lines.
    with (folder / "cells.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")


def unfinished_cells(
    cfg: StudyConfig, folder: Path, only: CellFilter | None
) -> list[dict[str, Any]]:
    """The selected cells of ``cfg`` that ``folder`` has not finished, in grid order."""
    done = {cell_key(r) for r in read_rows(folder)}
    return [c for c in grid_cells(cfg) if cell_key(c) not in done and is_selected(c, only)]
