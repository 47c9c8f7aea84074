"""Nothing is checked after --overwrite has deleted anything, and bad input is one line
(issue 35: the second pass over run folders and user errors).

Each test names the issue's item it covers. The tests import seqrep's newer names inside the
test, so that the file also runs against older code (to show which items it fixed).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqrep.cli import main

SRC = Path(__file__).resolve().parents[1] / "src" / "seqrep"
GUNPOINT_LENGTH = 150


def _exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code)


def _finished_run(folder: Path, kind: str) -> Path:
    """A run folder as a verb leaves it (config with its kind, marker, checkpoint) plus a file
    of the user's; written by hand so that the test does not depend on the API under test."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kind": kind, "seed": 0}))
    (folder / ".seqrep-run").write_text("a seqrep run\n")
    torch.save({"step": 7}, folder / "checkpoints" / "last.pt")
    (folder / "notes.txt").write_text("mine")
    return folder / "checkpoints" / "last.pt"


def _trajectories(path: Path, episodes: int = 4, length: int = 20) -> Path:
    """A D4RL-layout HDF5 file of random episodes (3-d observations, 1-d actions)."""
    from seqrep.data.trajectories import TrajectoryDataset, save_d4rl_hdf5

    rng = np.random.default_rng(0)
    eps = []
    for _ in range(episodes):
        obs = rng.normal(size=(length + 1, 3)).astype(np.float32)
        eps.append(
            {
                "observations": obs[:-1],
                "next_observations": obs[1:],
                "actions": rng.uniform(-1, 1, (length, 1)).astype(np.float32),
                "rewards": rng.normal(size=length).astype(np.float32),
                "terminals": np.zeros(length, bool),
                "timeouts": np.eye(1, length, length - 1, dtype=bool)[0],
            }
        )
    return save_d4rl_hdf5(TrajectoryDataset.from_episodes(eps), path)


def _ts_file(path: Path, rows: list[tuple[list[float], str]], classes: str = "1 2") -> Path:
    """A univariate .ts classification file."""
    lines = ["@problemName t", "@univariate true", f"@classLabel true {classes}", "@data"]
    lines += [",".join(f"{v:g}" for v in values) + f":{label}" for values, label in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# 1. --overwrite: every check runs before the old run is touched --------------------------------
@pytest.fixture
def tiny_hdf5(tmp_path_factory):
    return _trajectories(tmp_path_factory.mktemp("data") / "tiny.hdf5")


TINY_PRETRAIN = ["--iterations", "2", "--hidden", "4", "--depth", "1", "--z-dim", "4"]


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        # window 1 is shorter than CPC's horizon: known only once the data and method meet
        ("pretrain", ["pretrain", *TINY_PRETRAIN, "--window", "1"], "--window 1"),
        ("pretrain", ["pretrain", *TINY_PRETRAIN, "--lr", "inf"], "--lr must be a finite"),
        ("sac", ["sac", "--encoder", "no-such-folder"], "no-such-folder"),
        ("sac", ["sac", "--q-lr", "inf"], "--q-lr must be a finite"),
        ("pretrain-states", ["pretrain-states", "--data", "{hdf5}", "--window", "1000"], "1000"),
        ("bc", ["bc", "--data", "{hdf5}", "--env", "Pendulum-v1", "--encoder", "nope"], "nope"),
        ("study", ["study", "--jobs", "0"], "--jobs must be >= 1"),
        ("mi-bench", ["mi-bench", "--lr", "nan"], "--lr must be a finite"),
        ("curl", ["curl", "--task", "seqrep-dot", "--env-steps", "50"], "--init-steps"),
    ],
)
def test_overwrite_deletes_nothing_when_a_check_fails_after_loading(
    kind, args, message, tiny_hdf5, tmp_path, capsys
):
    ckpt = _finished_run(tmp_path / "run", kind)
    args = [str(tiny_hdf5) if a == "{hdf5}" else a for a in args]
    code = _exit_code([*args, "--out", str(tmp_path / "run"), "--overwrite", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "Traceback" not in err
    assert ckpt.exists(), "the old run was deleted before the new one was checked"
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_the_window_hint_says_to_lengthen_the_crops(tmp_path, capsys):
    assert _exit_code(["pretrain", *TINY_PRETRAIN, "--window", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a larger crop window" in err and "Lower the number of steps" not in err


def test_a_run_folder_opens_only_with_a_verbs_prepared_work(tmp_path):
    from seqrep.loops.runs import Prepared, RunDir

    with pytest.raises(TypeError, match="Prepared"):
        RunDir.open(tmp_path / "r", {"kind": "x", "a": 1})  # type: ignore[arg-type]
    assert not (tmp_path / "r").exists()
    assert RunDir.open(tmp_path / "r", Prepared("x", {"a": 1})).path == tmp_path / "r"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and (getattr(n.func, "attr", None) == name or getattr(n.func, "id", None) == name)
    ]


def test_every_run_folder_is_opened_with_what_a_prepare_function_returned():
    """Structural: in src/, a Prepared is only built inside a ``prepare*`` function, and every
    ``RunDir.open`` gets a ``prepare*(...)`` call or a name bound to one (or passed in by a
    caller that does)."""
    from seqrep.loops.runs import Prepared

    kinds = {"Prepared"} | {c.__name__ for c in _subclasses(Prepared)}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            built = [c for k in kinds for c in _calls(fn, k)]
            if built and not fn.name.startswith("prepare"):
                raise AssertionError(f"{path.name}:{fn.name} builds a Prepared")
            prepared_names = {
                t.id
                for n in ast.walk(fn)
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                for t in n.targets
                if isinstance(t, ast.Name)
                and getattr(n.value.func, "id", getattr(n.value.func, "attr", "")).startswith(
                    "prepare"
                )
            }
            params = {a.arg for a in fn.args.args}
            for call in _calls(fn, "open"):
                if getattr(call.func, "value", None) is None or getattr(
                    call.func.value, "id", ""
                ) not in ("RunDir", "cls"):
                    continue
                arg = call.args[1]
                ok = (
                    isinstance(arg, ast.Call)
                    and getattr(arg.func, "id", getattr(arg.func, "attr", "")).startswith("prepare")
                ) or (isinstance(arg, ast.Name) and arg.id in prepared_names | params)
                assert ok, f"{path.name}:{fn.name} opens a run folder with unprepared work"


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


# 2. encode never replaces a file silently ------------------------------------------------------
def test_encode_refuses_an_existing_output_unless_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    main(["--threads", "1", "pretrain", *TINY_PRETRAIN, "--out", str(run), "--quiet"])
    target = tmp_path / "k.csv"
    target.write_text("keep me")
    assert _exit_code(["encode", str(run), "--out", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    main(["encode", str(run), "--out", str(target), "--overwrite"])
    assert target.read_text().startswith("split,label,f0")


# 3. collect checks the data-set id first and never writes outside the data sets' root ---------
@pytest.mark.parametrize("dataset_id", ["noversion", "../../esc-v0", "/tmp/abs-v0", ""])
def test_collect_refuses_a_bad_dataset_id_before_collecting(
    dataset_id, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("minari")
    root = tmp_path / "a" / "b" / "datasets"
    root.mkdir(parents=True)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    collected = []
    import seqrep.loops.collect as collect_module

    monkeypatch.setattr(collect_module, "collect_episodes", lambda *a, **k: collected.append(1))
    code = _exit_code(["collect", "--steps", "50", "--dataset-id", dataset_id])
    err = capsys.readouterr().err
    expected = "is required" if dataset_id == "" else "not a Minari id"
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert collected == [], "the id was checked only after collecting"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "datasets"]


def test_a_killed_saves_staging_folder_is_removed_by_the_next_save(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    root = tmp_path / "datasets"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    gone_pid = 2**22 + 12345  # above pid_max's default: no such process
    (root / f".seqrep-staging-{gone_pid}-abc").mkdir()
    (root / f".seqrep-staging-{gone_pid}-abc" / "half.hdf5").write_bytes(b"x" * 100)
    (root / ".seqrep-staging-old").mkdir()  # written before staging names held a pid
    alive = root / f".seqrep-staging-{os.getpid()}-live"
    alive.mkdir()  # a save in progress (here: this process) is left alone
    main(["collect", "--steps", "50", "--dataset-id", "t/p/x-v0"])
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".seqrep")) == [alive.name]


# 4. a full disk: one line, no partial file, the old checkpoint kept --------------------------
def test_a_full_disk_keeps_the_old_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import shutil

    from seqrep.loops.runs import Prepared, RunDir, RunDirError

    run = RunDir.open(tmp_path / "r", Prepared("x", {"a": 1}))
    run.save_checkpoint({"step": 1})
    real_save = torch.save

    def fills_the_disk(obj, f, *a, **k):  # what torch.save does when the disk fills up
        Path(f).write_bytes(b"\0" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(torch, "save", fills_the_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=0))
    with pytest.raises(RunDirError, match=r"no space left on .* the previous file is kept"):
        run.save_checkpoint({"step": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["last.pt"]
    assert run.load_checkpoint() == {"step": 1}


def test_stale_partial_files_are_removed_when_a_run_resumes(tmp_path):
    from seqrep.loops.runs import Prepared, RunDir

    run = RunDir.open(tmp_path / "r", Prepared("x", {"a": 1}))
    run.save_checkpoint({"step": 1})
    (run.checkpoints / "last.pt.tmp").write_bytes(b"half")  # a kill during a save
    (run.path / "report.md.tmp").write_text("half")
    RunDir.open(tmp_path / "r", Prepared("x", {"a": 1}))
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["last.pt"]
    assert not (run.path / "report.md.tmp").exists()


def test_a_full_disk_while_logging_is_one_line(tmp_path, monkeypatch):
    import builtins
    import errno

    from seqrep.loops.runs import Prepared, RunDir, RunDirError

    run = RunDir.open(tmp_path / "r", Prepared("x", {"a": 1}))
    real_open = builtins.open

    def full(file, mode="r", *a, **k):
        if str(file).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(RunDirError, match="no space left"):
        run.log({"step": 1})


# 5. --test-data is used with a shipped --data -----------------------------------------------
def test_test_data_is_used_with_a_shipped_training_set(tmp_path):
    from seqrep.data.series import load_train_test

    rows = [([float(i)] * GUNPOINT_LENGTH, str(1 + i % 2)) for i in range(6)]
    mine = _ts_file(tmp_path / "mine_TEST.ts", rows)
    train, test = load_train_test("GunPoint", str(mine))
    assert len(train) == 50 and len(test) == 6
    assert test.labels.tolist() == [0, 1, 0, 1, 0, 1]


# 6. rates, scales and standard deviations: finite and in range ------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sac", "--q-lr", "inf"], "--q-lr must be a finite number"),
        (["sac", "--policy-lr", "5"], "--policy-lr is a learning rate and must lie in (0, 1]"),
        (["sac", "--tau", "nan"], "--tau must be a finite number"),
        (["curl", "--noise-std", "inf"], "--noise-std must be a finite number"),
        (["curl", "--alpha-lr", "-1"], "--alpha-lr"),
        (["pretrain-states", "--data", "x.hdf5", "--lr", "inf"], "--lr must be a finite"),
    ],
)
def test_non_finite_or_absurd_rates_are_refused(args, message, tmp_path, capsys):
    assert _exit_code([*args, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# 7. values no float32 can hold: one line naming the file -------------------------------------
def test_values_beyond_float32_are_refused_naming_the_file(tmp_path):
    from seqrep.data.series import load_series

    path = _ts_file(tmp_path / "huge_TRAIN.ts", [([1e300, 2e300, 3e300], "1"), ([1, 2, 3], "2")])
    with pytest.raises(ValueError, match=r"huge_TRAIN\.ts.*beyond float32's range"):
        load_series(path)


def test_large_but_representable_values_standardise_without_overflow(tmp_path):
    from seqrep.data.series import Standardizer, load_series

    path = _ts_file(
        tmp_path / "big_TRAIN.ts", [([1e30, 2e30, 3e30], "1"), ([4e30, 5e30, 6e30], "2")]
    )
    data = Standardizer().fit(load_series(path)).transform(load_series(path))
    expected = (np.arange(1, 7) - 3.5) / np.std(np.arange(1, 7))
    np.testing.assert_allclose(data.values.ravel(), expected, rtol=1e-5)


# 8-10. bench series and curl: bad values, bad --out, concurrent runs -------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datasets", ""], "--datasets is empty"),
        (["--methods", "cpc,simclr"], "unknown --methods simclr"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--out", ""], "must be a .json file path"),
    ],
)
def test_bench_series_refuses_bad_options_before_any_cell(args, message, tmp_path, capsys):
    out = ["--out", str(tmp_path / "s.json")] if "--out" not in args else []
    assert _exit_code(["bench", "series", *out, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s.json").exists()


def test_bench_series_refuses_a_folder_as_out(tmp_path, capsys):
    assert _exit_code(["bench", "series", "--out", str(tmp_path)]) == 2
    assert "must be a .json file path" in capsys.readouterr().err


def test_two_bench_series_on_one_results_file_the_second_is_refused(tmp_path, capsys):
    out = tmp_path / "s.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom seqrep.loops.runs import hold_lock\n"
            f"p = Path({str(out)!r})\n"
            "hold_lock(p.with_name(p.name + '.lock'), p, 'w', 'f'); print('held', flush=True)\n"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        args = ["bench", "series", "--datasets", "GunPoint", "--methods", "raw", "--seeds", "0"]
        assert _exit_code([*args, "--out", str(out), "--threads", "1"]) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    ("backend", "message"),
    [("foo", "is not a MuJoCo rendering backend"), ("glfw", "no display"), ("", "no display")],
)
def test_a_bad_mujoco_gl_is_one_line(backend, message, tmp_path):
    env = {**os.environ, "MUJOCO_GL": backend}
    env.pop("DISPLAY", None)
    cmd = ["curl", "--task", "cartpole-swingup", "--env-steps", "20000", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-c", "from seqrep.cli import main; main()", *cmd],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


# 11. the transformer and InfoNCE say what was wrong -----------------------------------------
TINY_TRANSFORMER = {"iterations": 2, "batch_size": 4, "hidden": 4, "depth": 1, "z_dim": 4}


def test_the_transformer_reports_bad_input_in_its_own_terms():
    from seqrep.loops.transform import CPCTransformer

    rng = np.random.default_rng(0)
    fitted = CPCTransformer(**TINY_TRANSFORMER, horizon=2).fit(rng.normal(size=(8, 2, 30)))
    with pytest.raises(ValueError, match=r"^X has 3 channels; the transformer was fitted on 2$"):
        fitted.transform(rng.normal(size=(2, 3, 30)))
    for empty in (np.zeros((0, 2, 30)), []):
        with pytest.raises(ValueError, match="X holds no series"):
            fitted.transform(empty)
        with pytest.raises(ValueError, match="X holds no series"):
            CPCTransformer(**TINY_TRANSFORMER).fit(empty)
    with pytest.raises(ValueError, match=r"^iterations must be > 0, got 0$"):
        CPCTransformer(iterations=0).fit(rng.normal(size=(8, 2, 30)))
    with pytest.raises(ValueError, match=r"^unknown method 'x'"):
        CPCTransformer(method="x").fit(rng.normal(size=(8, 2, 30)))


def test_info_nce_on_overflowing_inputs_says_what_they_were():
    from seqrep.losses import info_nce

    big = torch.full((4, 3), 1e30)
    with pytest.raises(FloatingPointError, match=r"query up to 1e\+30.*overflow") as err:
        info_nce(big, big)
    assert "please report" not in str(err.value)
