"""Running a study: preparation, worker processes or Ray tasks over the unfinished cells, and
joining the folders of a study run in shares (``--merge``)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.devices import resolve_device
from seqrep.loops.progress import progress_bar
from seqrep.loops.runs import Prepared, RunDir, RunDirError, atomic_write_text
from seqrep.loops.sweep import connect, stream
from seqrep.options import require_extra
from seqrep.study.cells import encoder_checkpoint, pretrained_encoder_state, run_cell, study_data
from seqrep.study.config import StudyConfig
from seqrep.study.grid import (
    CellFilter,
    append_row,
    cell_key,
    check_cell_filter,
    grid_cells,
    owners,
    read_rows,
    unfinished_cells,
)

__all__ = ["PreparedStudy", "finished_cells", "merge_studies", "prepare_study", "run_study"]


def _run_worker(
    cfg: StudyConfig,
    folder: Path,
    worker: int,
    jobs: int,
    quiet: bool,
    only: CellFilter | None = None,
    parent: int | None = None,
) -> None:
    """Run this worker's unfinished cells, appending each finished row to cells.jsonl.

    ``parent``: the pid of the study process that started this worker. Once that process is
    gone (killed; its lock on the folder went with it, so a resumed study may be running), the
    worker starts no further cell.
    """
    if jobs > 1:
        torch.set_num_threads(1)  # one core per worker
    owner = owners(cfg, jobs)
    todo = [c for c in unfinished_cells(cfg, folder, only) if owner[cell_key(c)] == worker]
    data_cache: dict[str, dict[str, TrajectoryDataset]] = {}
    label = "study cells" if jobs == 1 else f"study cells (worker {worker + 1}/{jobs})"
    with progress_bar(label, len(todo), disable=quiet) as advance:
        for cell in todo:
            if parent is not None and os.getppid() != parent:
                return  # orphaned: the study that owned the folder was killed
            env_id = cell["env"]
            if env_id not in data_cache:
                data_cache[env_id] = study_data(cfg, env_id, folder)
            append_row(folder, run_cell(cfg, cell, data_cache[env_id], folder))
            advance(1)


@dataclass
class PreparedStudy(Prepared):
    """``seqrep study``'s work, checked: the config, the workers (``jobs``) or Ray cluster
    (``ray_address``, connected), the cell filter and the folders to merge (each of the same
    study)."""

    jobs: int = 1
    ray_address: str | None = None
    only: CellFilter | None = None
    merge: tuple[Path, ...] = ()


def prepare_study(
    cfg: StudyConfig,
    *,
    jobs: int = 1,
    ray_address: str | None = None,
    only: CellFilter | None = None,
    merge: tuple[str, ...] = (),
) -> PreparedStudy:
    """Validate ``cfg`` and how the study will run (``jobs`` >= 1, the filter selects cells,
    each folder to merge holds this study, Ray reachable); nothing is written.

    Raises:
        ValueError, RunDirError, ImportError: what is wrong, in one line.
    """
    require_extra("rl", "seqrep study")
    cfg.validate()
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1 (worker processes, one core each), got {jobs}")
    if only:
        check_cell_filter(cfg, only)
    for source in merge:  # a folder of another study must fail before --out is written
        try:
            RunDir.attach(source, "study", cfg)
        except RunDirError as e:
            raise RunDirError(f"--merge {source}: {e}") from None
    if ray_address is not None:
        connect(ray_address)  # Ray missing or unreachable: say so before the folder is touched
    return PreparedStudy("study", cfg, jobs, ray_address, only, tuple(Path(m) for m in merge))


def run_study(
    cfg: StudyConfig,
    run: RunDir,
    *,
    quiet: bool = False,
    jobs: int = 1,
    ray_address: str | None = None,
    only: CellFilter | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) every cell of ``cfg`` into ``run``; returns all finished cell rows.

    ``jobs`` > 1 runs that many worker processes (one core each) after collecting the data sets
    once; ``ray_address`` runs every pretraining and every cell as a Ray task instead (see
    :mod:`seqrep.loops.sweep`). Each cell's result depends only on its seed, not on who ran it.
    ``only`` (:func:`parse_cell_filter`) runs just the selected cells, e.g. one machine's share
    of a study whose folders :func:`merge_studies` joins afterwards.
    """
    cfg.validate()
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1 (worker processes, one core each), got {jobs}")
    if ray_address is not None:
        _run_on_ray(cfg, run, ray_address, quiet, only)
    elif jobs == 1:
        _run_worker(cfg, run.path, 0, 1, quiet, only)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        for env_id in dict.fromkeys(c["env"] for c in unfinished_cells(cfg, run.path, only)):
            study_data(cfg, env_id, run.path)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = [
                pool.submit(_run_worker, cfg, run.path, i, jobs, quiet or i > 0, only, os.getpid())
                for i in range(jobs)
            ]
            for future in futures:
                future.result()  # re-raises a worker's error
    return finished_cells(cfg, run)


def _ray_cell(
    cfg: StudyConfig,
    cell: dict[str, Any],
    data: dict[str, TrajectoryDataset],
    folder: str,
    encoder_state: dict[str, Any] | None,
) -> dict[str, Any]:
    torch.set_num_threads(1)  # one core per task, as Ray reserved
    return run_cell(cfg, cell, data, Path(folder), encoder_state)


def _ray_pretrain(
    cfg: StudyConfig, objective: str, seed: int, data: dict[str, TrajectoryDataset]
) -> dict[str, Any]:
    torch.set_num_threads(1)
    return pretrained_encoder_state(cfg, objective, seed, data)


def _run_on_ray(
    cfg: StudyConfig, run: RunDir, address: str, quiet: bool, only: CellFilter | None = None
) -> None:
    """Every unfinished cell as a Ray task, fed the data sets (collected once, here) and its
    encoder (from the cache, or from a pretraining task); the driver caches each encoder and
    appends each row as it arrives."""
    ray = connect(address)
    gpus = 1 if resolve_device(cfg.device) == "cuda" else 0
    pretrain_task = ray.remote(num_cpus=1, num_gpus=gpus)(_ray_pretrain)
    cell_task = ray.remote(num_cpus=1, num_gpus=gpus)(_ray_cell)
    todo = unfinished_cells(cfg, run.path, only)
    data = {
        env: ray.put(study_data(cfg, env, run.path))
        for env in dict.fromkeys(c["env"] for c in todo)
    }
    encoders: dict[tuple[Any, ...], Any] = {}
    tasks: dict[Any, tuple[str, Any]] = {}
    for cell in todo:
        key = (cell["env"], cell["objective"], cell["seed"])
        if cell["objective"] != "none" and key not in encoders:
            cached = run.load_checkpoint(encoder_checkpoint(*key))
            if cached is not None:
                encoders[key] = ray.put(cached)
            else:
                encoders[key] = pretrain_task.remote(cfg, key[1], key[2], data[key[0]])
                tasks[encoders[key]] = ("encoder", key)
        ref = cell_task.remote(cfg, cell, data[cell["env"]], str(run.path), encoders.get(key))
        tasks[ref] = ("cell", cell)
    with progress_bar("study cells (ray)", len(todo), disable=quiet) as advance:
        for (kind, what), result in stream(ray, tasks):
            if kind == "encoder":
                run.save_checkpoint(result, encoder_checkpoint(*what))
            else:
                append_row(run.path, result)
                advance(1)


def finished_cells(cfg: StudyConfig, run: RunDir) -> list[dict[str, Any]]:
    """The rows of ``cfg``'s cells that ``run`` has finished so far, in grid order."""
    order = {cell_key(c): i for i, c in enumerate(grid_cells(cfg))}
    rows = [r for r in read_rows(run.path) if cell_key(r) in order]
    return sorted(rows, key=lambda r: order[cell_key(r)])


def merge_studies(cfg: StudyConfig, run: RunDir, sources: list[Path]) -> int:
    """Join the cells that other folders of the same study finished (for example, shares run
    on other machines with ``--only``) into ``run``: each finished cell ``run`` lacks is
    appended to its cells.jsonl, each pretrained encoder it lacks is copied into its
    checkpoints. The sources are only read. Returns the number of cells added.

    Raises:
        RunDirError: a source holds no study, or a study of another configuration.
    """
    grid = {cell_key(c) for c in grid_cells(cfg)}
    done = {cell_key(r) for r in read_rows(run.path)}
    added: list[dict[str, Any]] = []
    for source in sources:
        other = RunDir.attach(source, "study", cfg)  # refuses another configuration
        for row in read_rows(other.path):
            if cell_key(row) in grid and cell_key(row) not in done:
                done.add(cell_key(row))
                added.append(row)
        for encoder in sorted(other.checkpoints.glob("encoder-*.pt")):
            target = run.checkpoints / encoder.name
            if not target.exists():
                tmp = target.with_suffix(".pt.tmp")
                shutil.copyfile(encoder, tmp)
                tmp.replace(target)  # a kill never leaves half a checkpoint under its name
    if added:  # one rewrite, so that a kill keeps either the old file or the merged one
        path = run.path / "cells.jsonl"
        kept = path.read_text() if path.exists() else ""
        kept = kept[: kept.rfind("\n") + 1]  # a line torn by a kill is no finished cell
        atomic_write_text(path, kept + "".join(json.dumps(r) + "\n" for r in added))
    return len(added)


# ----------------------------------------------------------------------------- report
