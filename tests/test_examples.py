"""Every script in examples/ runs as a user would run it, at the tiny budget of --quick, and
writes what it says it writes. (What the scripts measure at their full budget is recorded in
docs/examples.md; these runs only keep the scripts working as the library changes.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_example_is_tested():
    tested = {
        "contrastive_loss_in_your_loop.py",
        "cpc_features_to_sklearn.py",
        "anomaly_scores_per_timestep.py",
        "state_encoder_in_your_sac_loop.py",
        "roll_out_a_curl_run.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_contrastive_loss_in_your_loop(tmp_path):
    out = run_example("contrastive_loss_in_your_loop.py", cwd=tmp_path)
    assert "MI >=" in out and "1-NN shape accuracy" in out


def test_cpc_features_to_sklearn(tmp_path):
    out = run_example("cpc_features_to_sklearn.py", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "CPC features" in out and "raw series" in out
    assert (tmp_path / "run" / "report.md").exists()


def test_anomaly_scores_per_timestep(tmp_path):
    out = run_example("anomaly_scores_per_timestep.py", "--out", str(tmp_path), cwd=tmp_path)
    assert "ROC AUC" in out and (tmp_path / "anomaly.png").stat().st_size > 10_000


def test_state_encoder_in_your_sac_loop(tmp_path):
    pytest.importorskip("gymnasium")
    out = run_example("state_encoder_in_your_sac_loop.py", "--out", str(tmp_path), cwd=tmp_path)
    assert "SAC, pretrained encoder (frozen)" in out and "SAC, no encoder" in out
    assert (tmp_path / "encoder" / "checkpoints" / "encoder.pt").exists()


def test_roll_out_a_curl_run(tmp_path):
    pytest.importorskip("dm_control")
    out = run_example("roll_out_a_curl_run.py", "--out", str(tmp_path), cwd=tmp_path)
    assert "returns over 2 episodes" in out
    video = tmp_path / "episode-0.mp4"
    assert video.stat().st_size > 1000 and video.read_bytes()[4:8] == b"ftyp"
