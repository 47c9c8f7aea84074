"""`seqrep pretrain-states` on a user's data set: exact resume after SIGKILL, an encoder.pt that
`bc --encoder` uses frozen (unchanged) or fine-tuned (changed), and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("minari")


def _seqrep(*args: str) -> list[str]:
    return [sys.executable, "-c", "from seqrep.cli import main; main()", *args]


def _losses(folder) -> list[float]:
    return [json.loads(x)["loss"] for x in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.long
def test_pretrain_states_resumes_exactly_and_its_encoder_serves_bc(
    tmp_path, kill_mid_run, monkeypatch, capsys
):
    from seqrep.cli import main

    minari = str(tmp_path / "minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", minari)
    env = {**os.environ, "MINARI_DATASETS_PATH": minari, "OMP_NUM_THREADS": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_seqrep(*args), env=env, capture_output=True, text=True)

    def refused(*args: str) -> str:
        """The one-line error of a command run in this process (what it printed to stderr)."""
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            main(list(args))
        assert stop.value.code == 2
        return capsys.readouterr().err

    for env_id, name in (("Pendulum-v1", "pend"), ("MountainCarContinuous-v0", "car")):
        main(["collect", "--env", env_id, "--steps", "1200", "--dataset-id", f"t/{name}/random-v0"])
    pretrain = ["pretrain-states", "--data", "t/pend/random-v0", "--objective", "temporal"]
    pretrain += ["--steps", "400", "--checkpoint-every", "50", "--log-every", "50", "--quiet"]
    pretrain += ["--hidden", "64", "--feature-dim", "16"]
    # The uninterrupted, killed and resumed runs each in their own process, as a user runs them.
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run(*pretrain, "--out", str(whole)).returncode == 0
    kill_mid_run(
        _seqrep(*pretrain, "--out", str(cut)),
        lambda: (cut / "checkpoints" / "last.pt").exists(),
        env,
    )
    assert not (cut / "checkpoints" / "encoder.pt").exists()  # it really stopped part-way
    assert run(*pretrain, "--out", str(cut)).returncode == 0
    assert _losses(cut) == pytest.approx(_losses(whole), rel=1e-6)
    assert len(_losses(whole)) == 8
    assert "encoder.pt" in (whole / "report.md").read_text()

    saved = torch.load(whole / "checkpoints" / "encoder.pt", weights_only=False)["encoder"]
    for freeze, changed in (("--freeze-encoder", False), ("--no-freeze-encoder", True)):
        out = tmp_path / f"bc{freeze}"
        bc = ["bc", "--data", "t/pend/random-v0", "--encoder", str(whole), freeze, "--steps", "200"]
        main([*bc, "--eval-every", "200", "--eval-episodes", "1", "--quiet", "--out", str(out)])
        agent = torch.load(out / "checkpoints" / "last.pt", weights_only=False)["agent"]["model"]
        after = {
            k.removeprefix("encoder."): v for k, v in agent.items() if k.startswith("encoder.")
        }
        same = all(torch.equal(after[k], v) for k, v in saved.items())
        assert same != changed, freeze

    wrong = refused(
        "bc", "--data", "t/car/random-v0", "--encoder", str(whole), "--out", str(tmp_path / "x")
    )
    assert "reads observations of size 3" in wrong and "size 2" in wrong
    assert not (tmp_path / "x").exists()  # refused before the run folder was made
    missing = refused(
        "bc", "--data", "t/pend/random-v0", "--encoder", str(tmp_path / "bcx"), "--out", "y"
    )
    assert "bcx" in missing
