"""--tensorboard: the records of metrics.jsonl as scalars at their own steps and the report's
figures as images, read back with TensorBoard's own reader; a resumed run's events agree with
its metrics (the steps logged after the checkpoint are purged, not shown twice)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from seqrep.loops.runs import Prepared, RunDir


def read_events(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], list[str]]:
    """What TensorBoard shows: each scalar tag's (step, value) pairs, and the image tags."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    return scalars, acc.Tags()["images"]


def metrics_as_scalars(run: Path, step_key: str) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as the scalars it should give: every number but the step, at its step, in
    float32 (TensorBoard's scalar type)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if key != step_key and isinstance(value, int | float) and not isinstance(value, bool):
                out.setdefault(key, []).append((record[step_key], float(np.float32(value))))
    return out


def test_a_resume_purges_the_steps_logged_after_its_checkpoint(tmp_path):
    """Steps 1-6 logged, the checkpoint at step 3, then a resume logs 4-6 again with other
    values: TensorBoard shows each step once, with the resumed values, as metrics.jsonl does."""
    prepared = Prepared("bc", {"steps": 6})
    run = RunDir.open(tmp_path / "run", prepared)
    run.enable_tensorboard()
    for step in range(1, 7):
        run.log({"step": step, "loss": float(step), "device": "cpu"})
    run._board.writer.flush()  # a kill: the process dies, the writer is never closed
    resumed = RunDir.open(tmp_path / "run", prepared)
    resumed.enable_tensorboard()
    resumed.truncate_metrics(3)  # what a resume from the step-3 checkpoint does
    for step in range(4, 7):
        resumed.log({"step": step, "loss": 10.0 * step, "device": "cpu"})
    resumed.close_tensorboard()

    scalars, _ = read_events(tmp_path / "run" / "tensorboard")
    expected = [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]
    assert scalars == {"loss": expected}
    assert metrics_as_scalars(tmp_path / "run", "step") == scalars
    # The resumed writer asked for the purge itself (TensorBoard's purge_step: a session
    # start at step 4), rather than relying on the reader's out-of-order heuristics.
    starts = [
        e.step
        for f in sorted((tmp_path / "run" / "tensorboard").iterdir())
        for e in EventFileLoader(str(f)).Load()
        if e.HasField("session_log") and e.session_log.status == e.session_log.START
    ]
    assert starts == [4]


def test_sac_with_tensorboard_logs_its_metrics_and_figures(tmp_path):
    from seqrep.cli import main

    out = tmp_path / "sac"
    args = ["sac", "--total-steps", "300", "--learning-starts", "100", "--eval-every", "150"]
    args += ["--eval-episodes", "1", "--hidden", "16", "--batch-size", "32", "--quiet"]
    main([*args, "--out", str(out), "--tensorboard"])
    scalars, images = read_events(out / "tensorboard")
    assert scalars == metrics_as_scalars(out, "step")
    assert [s for s, _ in scalars["eval_return_mean"]] == [150, 300]
    assert "figures/returns" in images


def test_tensorboard_without_a_run_folder_is_refused():
    import seqrep

    with pytest.raises(ValueError, match="pass out=FOLDER"):
        seqrep.sac(total_steps=10, learning_starts=5, tensorboard=True)
