"""Run folders and data sets never lose data: safe --overwrite, validation before any write,
stale starts, locks, atomic Minari writes, bounded probes, and one-line errors (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from seqrep.cli import main
from seqrep.loops.runs import Prepared, RunDir, RunDirError

TINY_MI = ["mi-bench", "--mi-levels", "1", "--steps-per-level", "4", "--critics", "separable"]
TINY_MI += ["--estimators", "infonce", "--hidden", "8", "--embed-dim", "4", "--batch-size", "8"]
TINY_MI += ["--quiet"]


def _exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code)


def _a_run_with_a_checkpoint(folder: Path, kind: str = "x", config: dict | None = None) -> Path:
    run = RunDir.open(folder, Prepared(kind, config or {"a": 1}))
    run.save_checkpoint({"step": 7})
    return run.checkpoints / "last.pt"


# 1. --overwrite deletes only seqrep runs, never the cwd, home or a repository
def test_overwrite_refuses_the_current_directory_and_foreign_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert _exit_code([*TINY_MI, "--out", ".", "--overwrite"]) == 2
    assert "not a seqrep run folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert _exit_code([*TINY_MI, "--out", "", "--overwrite"]) == 2
    assert "--out is empty" in capsys.readouterr().err
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert _exit_code([*TINY_MI, "--out", str(precious), "--overwrite"]) == 2
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in precious.iterdir()) == ["thesis.tex"]


def test_overwrite_refuses_a_run_that_is_also_a_repository_home_or_cwd(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    _a_run_with_a_checkpoint(repo)
    (repo / ".git").mkdir()
    with pytest.raises(RunDirError, match="root of a git repository"):
        RunDir.open(repo, Prepared("x", {"a": 1}), overwrite=True)
    home = tmp_path / "home"
    _a_run_with_a_checkpoint(home)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(RunDirError, match="home directory"):
        RunDir.open(home, Prepared("x", {"a": 1}), overwrite=True)
    cwd = tmp_path / "cwd"
    ckpt = _a_run_with_a_checkpoint(cwd)
    monkeypatch.chdir(cwd)
    with pytest.raises(RunDirError, match="current directory"):
        RunDir.open(".", Prepared("x", {"a": 1}), overwrite=True)
    assert ckpt.exists()


def test_overwrite_replaces_a_run_and_keeps_the_lock(tmp_path):
    ckpt = _a_run_with_a_checkpoint(tmp_path / "r")
    run = RunDir.open(tmp_path / "r", Prepared("x", {"a": 2}), overwrite=True)
    assert not ckpt.exists() and (run.path / ".seqrep-run").exists()
    assert json.loads((run.path / "config.json").read_text()) == {"kind": "x", "a": 2}


# 2. everything is validated before the old run is touched
@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("sac", ["sac", "--env", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
        ("pretrain", ["pretrain", "--lr", "-1"], "--lr is a learning rate and must lie in (0, 1]"),
        ("bc", ["bc", "--data", "missing.hdf5"], "missing.hdf5"),
        ("bc", ["bc", "--data", "no/such/set-v0"], "cannot load Minari data set"),
    ],
)
def test_overwrite_checks_everything_before_deleting(kind, args, message, tmp_path, capsys):
    ckpt = _a_run_with_a_checkpoint(tmp_path / "keep", kind)
    assert _exit_code([*args, "--out", str(tmp_path / "keep"), "--overwrite"]) == 2
    assert message in capsys.readouterr().err
    assert ckpt.exists(), "the old run was deleted before the new one was checked"


# 3. a start that never reached its first checkpoint is not a run to protect
def test_a_folder_without_a_checkpoint_is_restarted_not_refused(tmp_path):
    run = RunDir.open(tmp_path / "r", Prepared("x", {"a": 1}))
    run.log({"step": 1})
    run = RunDir.open(
        tmp_path / "r", Prepared("x", {"a": 2})
    )  # corrected command: no --overwrite needed
    assert json.loads((run.path / "config.json").read_text())["a"] == 2
    assert run.read_metrics() == []
    run.save_checkpoint({"step": 3})
    with pytest.raises(RunDirError, match="differs in: a"):
        RunDir.open(tmp_path / "r", Prepared("x", {"a": 3}))


# 4. collect writes data sets atomically; incomplete ones are explained; --overwrite
def test_collect_is_atomic_and_incomplete_sets_are_explained(tmp_path, monkeypatch, capsys):
    minari = pytest.importorskip("minari")
    from seqrep.data.trajectories import minari_dataset_status

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    real = minari.create_dataset_from_buffers

    def dies_half_way(dataset_id, buffers, **kw):
        real(dataset_id, buffers[:1], **kw)  # something is on disk (in staging) ...
        raise KeyboardInterrupt  # ... when the user presses Ctrl-C

    monkeypatch.setattr(minari, "create_dataset_from_buffers", dies_half_way)
    collect = ["collect", "--env", "Pendulum-v1", "--steps", "400", "--dataset-id", "t/p/x-v0"]
    assert _exit_code(collect) == 130
    assert minari_dataset_status("t/p/x-v0") == "missing"
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == []  # no staging left behind
    monkeypatch.setattr(minari, "create_dataset_from_buffers", real)

    # A set left incomplete by an older writer: every verb says so and how to fix it.
    folder = tmp_path / "datasets" / "t" / "p" / "y-v0" / "data"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text('{"total_episodes": 0}')
    assert minari_dataset_status("t/p/y-v0") == "incomplete"
    assert _exit_code(["bc", "--data", "t/p/y-v0", "--out", str(tmp_path / "bc")]) == 2
    assert "is incomplete" in capsys.readouterr().err
    assert not (tmp_path / "bc").exists()
    redo = ["collect", "--env", "Pendulum-v1", "--steps", "400", "--dataset-id", "t/p/y-v0"]
    assert _exit_code(redo) == 2
    assert "incomplete" in capsys.readouterr().err
    with pytest.warns() as caught:  # minari's metadata warnings are not shown to the user
        main([*redo, "--overwrite"])
        import warnings

        warnings.warn("sentinel", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["sentinel"]
    assert minari_dataset_status("t/p/y-v0") == "complete"
    assert "2 episodes, 400 steps" in capsys.readouterr().out


# 5. one process per run folder
def test_a_second_process_on_the_same_folder_is_refused(tmp_path):
    folder = tmp_path / "r"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from seqrep.loops.runs import Prepared, RunDir; "
            f"RunDir.open({str(folder)!r}, Prepared('x', {{}})); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"in use by process {holder.pid}"):
            RunDir.open(folder, Prepared("x", {}))
        # A report reads the folder while its process runs (study --report-only), config
        # checked, no lock taken; a folder of another config or no run is refused.
        assert RunDir.attach(folder, "x", {}).path == folder
        with pytest.raises(RunDirError, match=r"different config \(differs in: kind\)"):
            RunDir.attach(folder, "y", {})
        with pytest.raises(RunDirError, match="holds no seqrep run"):
            RunDir.attach(tmp_path, "x", {})
    finally:
        holder.kill()
        holder.wait()
    RunDir.open(folder, Prepared("x", {}))  # the lock ends with its process


# 6. bench series: never mixes configurations, never writes into committed results by default
def test_bench_series_refuses_rows_of_another_configuration(tmp_path, capsys):
    out = tmp_path / "s.json"
    base = ["bench", "series", "--datasets", "GunPoint", "--methods", "raw", "--seeds", "0"]
    main([*base, "--out", str(out)])
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and (tmp_path / "s.config.json").exists()
    assert _exit_code([*base, "--out", str(out), "--iterations", "5"]) == 2
    assert "differs in: iterations" in capsys.readouterr().err
    assert json.loads(out.read_text()) == rows
    (tmp_path / "s.config.json").unlink()  # rows whose configuration was never recorded
    assert _exit_code([*base, "--out", str(out)]) == 2
    from seqrep.cli import bench_series_cmd

    default = next(p.default for p in bench_series_cmd.params if p.name == "out")
    assert str(default).startswith("runs/")
    shown = {p.name for p in bench_series_cmd.params}
    assert not shown & {"data", "test_data", "method", "seed"}  # options that would do nothing


# 7. the SVM probe never hangs on overlapping features
def test_svm_probe_is_bounded_when_classes_overlap():
    from seqrep.loops.probes import svm_probe

    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]] * 5)
    y = np.array([0, 1, 0, 1] * 5)  # every point carries both labels
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=svm_probe(x, y, x, y)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the probe hangs"
    assert "did not converge" in result["r"].detail and "fell back to C=10000" in result["r"].detail
    assert result["r"].accuracy == 0.5


# 10, 11. data errors: early, and saying what is wrong
TS = """@problemName tiny
@timeStamps false
@missing false
@univariate true
@equalLength true
@classLabel true a b
@data
1,2,3,4:{0}
5,6,7,8:{1}
"""


@pytest.mark.parametrize(
    ("files", "data", "message"),
    [
        (
            {"one_TRAIN.ts": ("a", "a"), "one_TEST.ts": ("a", "b")},
            "one_TRAIN.ts",
            "holds one class",
        ),
        ({}, "missing_TRAIN.ts", "missing_TRAIN.ts does not exist"),
        ({"series.xlsx": None}, "series.xlsx", "unknown file type"),
        ({"inf_TRAIN.ts": ("a", "b"), "inf_TEST.ts": ("a", "b")}, "inf_TRAIN.ts", "inf values"),
    ],
)
def test_pretrain_data_errors_are_early_and_specific(files, data, message, tmp_path, capsys):
    for name, labels in files.items():
        text = "1,2\n3,4\n" if labels is None else TS.format(*labels)
        if name.startswith("inf"):
            text = text.replace("1,2,3,4", "1,inf,3,4")
        (tmp_path / name).write_text(text)
    out = tmp_path / "r"
    assert _exit_code(["pretrain", "--data", str(tmp_path / data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


# 12. probe finds the data from any directory
def test_probe_works_from_another_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i},{i},{i},{i}:{'ab'[i % 2]}\n" for i in range(8))
    multi = TS.split("@data\n")[0] + "@data\n" + rows
    Path("tiny_TRAIN.ts").write_text(multi)
    Path("tiny_TEST.ts").write_text(multi)
    main(["pretrain", "--data", "tiny_TRAIN.ts", "--iterations", "2", "--out", "run", "--quiet"])
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    main(["probe", str(tmp_path / "run")])
    assert "SVM test accuracy" in capsys.readouterr().out
    (tmp_path / "tiny_TRAIN.ts").rename(tmp_path / "moved_TRAIN.ts")
    assert _exit_code(["probe", str(tmp_path / "run")]) == 2
    assert "pass --data PATH" in capsys.readouterr().err
    moved = [
        "--data",
        str(tmp_path / "moved_TRAIN.ts"),
        "--test-data",
        str(tmp_path / "tiny_TEST.ts"),
    ]
    main(["probe", str(tmp_path / "run"), *moved])
    assert "SVM test accuracy" in capsys.readouterr().out


def test_probe_says_when_the_data_no_longer_fits_the_encoder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rows = [(f"{i},{i},{i},{i}", "ab"[i % 2]) for i in range(8)]
    one = TS.split("@data\n")[0] + "@data\n" + "".join(f"{v}:{c}\n" for v, c in rows)
    Path("uni_TRAIN.ts").write_text(one)
    Path("uni_TEST.ts").write_text(one)
    main(["pretrain", "--data", "uni_TRAIN.ts", "--iterations", "2", "--out", "run", "--quiet"])
    two = one.replace("@univariate true", "@univariate false\n@dimensions 2")
    two = two.split("@data\n")[0] + "@data\n" + "".join(f"{v}:{v}:{c}\n" for v, c in rows)
    Path("uni_TRAIN.ts").write_text(two)  # the data file changed under the run
    Path("uni_TEST.ts").write_text(two)
    capsys.readouterr()
    assert _exit_code(["probe", "run"]) == 2
    assert "X has 2 channels; the transformer was fitted on 1" in capsys.readouterr().err


# Smaller items users notice
def test_help_texts_and_report_only_on_nothing(tmp_path, capsys):
    for verb in ("bc", "offline-rl"):
        main([verb, "--help"])
        assert "data set (Minari id or .hdf5)" in capsys.readouterr().out
    assert _exit_code(["study", "--report-only", "--out", str(tmp_path / "empty")]) == 2
    assert "holds no finished study cells" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


def test_study_cells_being_appended_are_skipped_damaged_ones_refused(tmp_path):
    from seqrep.study import finished_cells, profile_config

    cfg = profile_config("quick", seeds=(0, 1))
    cells = [
        {"env": "Hopper-v5", "setting": "imitation", "objective": "none", "mode": "scratch",
         "seed": s, "score": 50.0 + s}
        for s in (1, 0)
    ]  # fmt: skip
    whole = "".join(json.dumps(c) + "\n" for c in cells)
    (tmp_path / "cells.jsonl").write_text(whole + '{"env": "Hop')  # a line being written
    rows = finished_cells(cfg, RunDir(tmp_path))
    assert [r["seed"] for r in rows] == [0, 1]  # grid order
    (tmp_path / "cells.jsonl").write_text('{"env": "Hop\n' + whole)
    with pytest.raises(ValueError, match="line 1 is not JSON; the file is damaged"):
        finished_cells(cfg, RunDir(tmp_path))


def test_ctrl_c_says_where_it_stopped_and_how_to_resume(tmp_path, monkeypatch, capsys):
    import seqrep.loops.api as api_module

    def interrupted(cfg, run, *, quiet=False):
        from seqrep.loops.progress import progress_bar

        with progress_bar("mi-bench", 100, disable=True) as advance:
            advance(37)
            raise KeyboardInterrupt

    monkeypatch.setattr(api_module, "run_mi_bench", interrupted)
    assert _exit_code([*TINY_MI, "--out", str(tmp_path / "r")]) == 130
    err = capsys.readouterr().err
    assert "interrupted at mi-bench step 37 of 100" in err
    assert "rerun the same command to resume" in err


def test_study_envs_outside_the_zoo_are_named(capsys):
    assert _exit_code(["study", "--envs", "NoSuch-v0"]) == 2
    err = capsys.readouterr().err
    assert "--envs NoSuch-v0" in err and "online_envs" not in err


def test_collect_option_errors(capsys):
    base = ["collect", "--dataset-id", "x/y/z-v0"]
    assert _exit_code([*base, "--noise", "-1"]) == 2
    assert "--noise must be >= 0" in capsys.readouterr().err
    assert _exit_code([*base, "--policy", "expret"]) == 2
    assert "zoo level (random, medium, expert, medium-replay)" in capsys.readouterr().err
    assert _exit_code([*base, "--steps", "0"]) == 2


def test_read_only_out_is_one_line(tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere: make the file system say no, as it would
        real_mkdir = Path.mkdir

        def refuse(self, *args, **kwargs):
            if ro in self.parents:
                raise PermissionError(13, "Permission denied", str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refuse)
    assert _exit_code([*TINY_MI, "--out", str(ro / "r")]) == 2
    err = capsys.readouterr().err
    assert "cannot create the run folder" in err and "Permission denied" in err


def test_offline_data_from_another_environment_is_refused_before_training(tmp_path, capsys):
    from seqrep.data.trajectories import save_d4rl_hdf5
    from seqrep.rl.collect import collect_episodes
    from seqrep.rl.zoo import uniform_random_policy

    data = tmp_path / "pendulum.hdf5"  # 3-d observations, 1-d actions
    save_d4rl_hdf5(collect_episodes("Pendulum-v1", uniform_random_policy(1, 0), 200, 0), data)
    args = ["bc", "--data", str(data), "--env", "MountainCarContinuous-v0"]
    assert _exit_code([*args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "observations of size 3" in err and "MountainCarContinuous-v0 has 2" in err
    assert not (tmp_path / "r").exists()


def test_out_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert _exit_code([*TINY_MI, "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "cannot create the run folder" in capsys.readouterr().err


def test_a_run_resumes_after_its_config_class_gained_an_option(tmp_path):
    """A run started before an option existed ran with its default: it resumes, and only a
    non-default value of the new option counts as a different config."""
    from dataclasses import dataclass

    @dataclass
    class Before:
        a: int = 1

    @dataclass
    class After:
        a: int = 1
        b: str = "new"

    run = RunDir.open(tmp_path / "r", Prepared("x", Before()))
    run.save_checkpoint({"step": 5})
    again = RunDir.open(tmp_path / "r", Prepared("x", After()))
    assert again.load_checkpoint() == {"step": 5}
    other = RunDir.open(tmp_path / "other", Prepared("x", Before()))
    other.save_checkpoint({"step": 1})
    with pytest.raises(RunDirError, match="differs in: b"):
        RunDir.open(tmp_path / "other", Prepared("x", After(b="changed")))


def test_an_option_whose_default_changed_reloads_as_the_old_run_ran(tmp_path):
    """An option listed in ``absent_in_old_runs`` (its default changes what a run does) takes
    the value the old run had: resuming an old run keeps it, today's default is a different
    config, and load_run rebuilds the old behaviour (here: PretrainConfig's pool was max)."""
    import json
    from dataclasses import dataclass, field

    import torch

    from seqrep.loops.pretrain import PretrainConfig
    from seqrep.loops.runs import load_run, with_options_added_since

    @dataclass
    class Before:
        a: int = 1

    @dataclass
    class After:
        absent_in_old_runs: ClassVar[dict] = {"b": "old"}
        a: int = 1
        b: str = field(default="new")

    run = RunDir.open(tmp_path / "r", Prepared("x", Before()))
    run.save_checkpoint({"step": 5})
    assert RunDir.open(tmp_path / "r", Prepared("x", After(b="old"))).load_checkpoint() == {
        "step": 5
    }
    with pytest.raises(RunDirError, match="differs in: b"):
        RunDir.open(tmp_path / "r", Prepared("x", After()))

    saved = {"kind": "pretrain", "data": "GunPoint", "method": "cpc", "iterations": 3}
    assert with_options_added_since(saved, PretrainConfig)["pool"] == "max"
    assert with_options_added_since({**saved, "pool": "max-mean"}, PretrainConfig)["pool"] == (
        "max-mean"
    )
    folder = tmp_path / "old-pretrain"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(saved))
    (folder / "checkpoints").mkdir()
    torch.save({"step": 3}, folder / "checkpoints" / "last.pt")
    cfg, _ = load_run(folder, "pretrain", PretrainConfig)
    assert (cfg.pool, cfg.bidirectional, cfg.crop_context) == ("max", False, False)
    assert (cfg.iterations, PretrainConfig().pool) == (3, "max-mean")


def test_a_resume_may_change_how_often_it_checkpoints_but_nothing_else(tmp_path):
    """checkpoint_every never changes a run's numbers: a resume may pass another value (and
    config.json records it); any other option still counts as a different config."""
    from seqrep.loops.curl import PixelRunConfig

    run = RunDir.open(tmp_path / "r", Prepared("curl", PixelRunConfig(task="seqrep-dot")))
    run.save_checkpoint({"step": 5})
    again = RunDir.open(
        tmp_path / "r", Prepared("curl", PixelRunConfig(task="seqrep-dot", checkpoint_every=2000))
    )
    assert again.load_checkpoint() == {"step": 5}
    assert json.loads((tmp_path / "r" / "config.json").read_text())["checkpoint_every"] == 2000
    with pytest.raises(RunDirError, match=r"differs in: eval_every\)"):
        RunDir.open(
            tmp_path / "r",
            Prepared(
                "curl", PixelRunConfig(task="seqrep-dot", checkpoint_every=500, eval_every=5000)
            ),
        )


def test_threads_option_sets_torch_threads_for_any_verb(capsys):
    import torch

    before = torch.get_num_threads()
    try:
        main(["--threads", "1", "mi-bench", "--help"])  # help returns without running
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert _exit_code(["--threads", "0", "mi-bench", "--help"]) == 2
    assert "--threads" in capsys.readouterr().err
