"""Run folders, checkpoint/resume of mi-bench, the CLI, and the layering rule."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from seqrep.cli import main
from seqrep.loops.mi_bench import MIBenchConfig, run_mi_bench
from seqrep.loops.runs import Prepared, RunDir, RunDirError

TINY = MIBenchConfig(
    mi_levels=(1.0, 3.0),
    steps_per_level=40,
    critics=("separable",),
    hidden=32,
    embed_dim=8,
    batch_size=16,
)


def test_run_dir_refuses_other_config_and_foreign_folder(tmp_path):
    run = RunDir.open(tmp_path / "r", Prepared("x", {"a": 1}))
    run.log({"step": 1})
    run.save_checkpoint({"step": 1})  # a run with progress: protected
    with pytest.raises(RunDirError, match="differs in: a"):
        RunDir.open(tmp_path / "r", Prepared("x", {"a": 2}))
    assert run.read_metrics() == [{"step": 1}]  # nothing lost
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a seqrep run folder"):
        RunDir.open(tmp_path / "foreign", Prepared("x", {}))
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"
    RunDir.open(tmp_path / "r", Prepared("x", {"a": 2}), overwrite=True)
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_checkpoint_roundtrip_and_corrupt_file(tmp_path):
    run = RunDir.open(tmp_path / "r", Prepared("x", {}))
    assert run.load_checkpoint() is None
    run.save_checkpoint({"step": 3})
    assert run.load_checkpoint() == {"step": 3}
    (run.checkpoints / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunDirError, match="cannot be read"):
        run.load_checkpoint()


def test_mi_bench_resume_gives_the_same_numbers(tmp_path, monkeypatch):
    full = run_mi_bench(
        TINY, RunDir.open(tmp_path / "full", Prepared("mi-bench", TINY)), quiet=True
    )

    # Interrupt right after the first checkpoint (end of MI level 1), as a kill would.
    real_save = RunDir.save_checkpoint
    calls = {"n": 0}

    def save_then_die(self, state, name="last.pt"):
        real_save(self, state, name)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_mi_bench(TINY, RunDir.open(tmp_path / "cut", Prepared("mi-bench", TINY)), quiet=True)
    monkeypatch.setattr(RunDir, "save_checkpoint", real_save)
    resumed = run_mi_bench(
        TINY, RunDir.open(tmp_path / "cut", Prepared("mi-bench", TINY)), quiet=True
    )
    assert resumed["rows"] == full["rows"]


def test_cli_mi_bench_writes_table_report_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    main(
        [
            "mi-bench",
            "--out",
            str(out),
            "--quiet",
            "--mi-levels",
            "1,6",
            "--steps-per-level",
            "30",
            "--critics",
            "separable",
            "--hidden",
            "32",
            "--batch-size",
            "16",
        ]
    )
    printed = capsys.readouterr().out
    assert "| true MI |" in printed and "separable/infonce" in printed
    for name in ("config.json", "report.md", "mi_estimates.png", "results.json", "metrics.jsonl"):
        assert (out / name).exists(), name
    results = json.loads((out / "results.json").read_text())
    assert [r["true_mi"] for r in results["rows"]] == [1.0, 6.0]
    for row in results["rows"]:
        assert row["separable/infonce/mean"] <= math.log(16) + 1e-6


# Every bad option value of every verb: one line naming the option, before any folder exists.
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mi-bench", "--critics", "mlp"], "unknown critic"),
        (["mi-bench", "--estimators", "mine"], "unknown estimator"),
        (["mi-bench", "--mi-levels", "a,b"], "comma-separated list"),
        (["mi-bench", "--mi-levels", "1000"], "--mi-levels 1000 nats is more than --dim 20"),
        (["mi-bench", "--hidden", "0"], "--hidden must be > 0, got 0"),
        (["sac", "--eval-every", "0"], "--eval-every must be > 0, got 0"),
        (["sac", "--total-steps", "-5"], "--total-steps must be > 0"),
        (["sac", "--gamma", "5"], "--gamma is a discount in [0, 1], got 5"),
        (["sac", "--hidden", "0"], "--hidden must be > 0, got 0"),
        (["sac", "--policy-frequency", "0"], "--policy-frequency must be > 0"),
        (["sac", "--checkpoint-every", "0"], "--checkpoint-every must be > 0"),
        (["sac", "--tau", "2"], "--tau must lie in (0, 1]"),
        (["sac", "--total-steps", "3000"], "is not above --learning-starts 5000"),
        (["sac", "--env", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
        (["bc", "--data", "x.hdf5", "--steps", "0"], "--steps must be > 0, got 0"),
        (["bc", "--data", "x.hdf5", "--log-every", "0"], "--log-every must be > 0"),
        (["offline-rl", "--data", "x.hdf5", "--checkpoint-every", "-1"], "must be > 0"),
        (["bc", "--data", "x.hdf5", "--bc-loss", "l1"], "unknown --bc-loss 'l1'"),
        (["pretrain", "--checkpoint-every", "0"], "--checkpoint-every must be > 0"),
        (["pretrain", "--log-every", "0"], "--log-every must be > 0"),
        (["pretrain", "--hidden", "0"], "--hidden must be > 0"),
        (["pretrain", "--depth", "0"], "--depth must be > 0"),
        (["pretrain", "--z-dim", "0"], "--z-dim must be > 0"),
        (["pretrain", "--max-queries", "0"], "--max-queries must be > 0"),
        (["pretrain", "--margin", "-1"], "--margin must be > 0"),
        (["pretrain", "--lr", "-1"], "--lr is a learning rate and must lie in (0, 1]"),
        (["pretrain", "--mining", "hardest"], "unknown --mining 'hardest'"),
        (["pretrain", "--method", "simclr"], "unknown --method 'simclr'"),
        (["curl", "--task", "cartpole"], "is not DOMAIN-TASK"),
        (["curl", "--aux", "curl", "--augment", "none"], "two different views"),
        (["curl", "--crop-size", "120"], "--crop-size 120 exceeds --image-size 100"),
        (["curl", "--device", "tpu"], "unknown --device 'tpu'"),
        (["study", "--envs", "NoSuch-v0"], "--envs NoSuch-v0"),
        (["study", "--bc-steps", "0"], "--bc-steps must be > 0"),
    ],
)
def test_cli_bad_input_is_one_clear_error(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    assert not (tmp_path / "r").exists(), "a refused run must not leave a run folder"
    captured = capsys.readouterr()
    assert message in captured.err + captured.out
    assert "Traceback" not in captured.err


# Layers of DESIGN.md, top (0) to bottom: a module may import only from its own layer or below.
_HELD_MEMORY_PROBE = """
import os, resource, sys
import torch
from seqrep.loops.memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # live 20 MiB and 64 MiB blocks, written, then freed: a step's activations
    blocks = [torch.ones(5 << 20) for _ in range(3)] + [torch.ones(16 << 20)]
    del blocks
before = rss_mib(); step(); held = rss_mib() - before
for _ in range(3): step()
f0 = faults()
for _ in range(10): step()
print(held, (faults() - f0) / 10)
"""


@pytest.mark.skipif(
    not Path("/proc/self/statm").exists() or platform.libc_ver()[0] != "glibc",
    reason="glibc on Linux only (elsewhere retain_freed_memory is a no-op)",
)
def test_retain_freed_memory_keeps_freed_blocks_for_reuse():
    def probe(mode: str) -> tuple[float, float]:
        out = subprocess.run(
            [sys.executable, "-c", _HELD_MEMORY_PROBE, mode],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return float(out[0]), float(out[1])

    held_default, _ = probe("default")
    held, faults_per_step = probe("retain")
    # glibc's defaults map a fresh block of 20 MiB or more and unmap it on free; retained, the
    # 124 MiB a step freed stay in the heap, blocks above glibc's largest mapping threshold
    # (32 MiB) too, and later steps reuse them without touching new pages (a step writes
    # 31,744 pages).
    assert held_default < 10
    assert held > 110
    assert faults_per_step < 31_744 / 8
