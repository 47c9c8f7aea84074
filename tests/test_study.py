"""The study runner: frozen means frozen, resume after SIGKILL gives the same table, reports."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from seqrep.loops.probes import bootstrap_ci, interquartile_mean
from seqrep.loops.runs import Prepared, RunDirError
from seqrep.study import profile_config

TINY = [
    "--profile", "quick",
    "--envs", "Pendulum-v1",
    "--objectives", "none,temporal",
    "--settings", "imitation,offline,online",
    "--online-envs", "Pendulum-v1",
    "--online-objectives", "temporal",
    "--online-modes", "frozen,finetune",
    "--offline-objectives", "none,temporal",
    "--offline-modes", "frozen,finetune",
    "--online-steps", "400",
    "--modes", "frozen,finetune",
    "--seeds", "0,1",
    "--pretrain-transitions", "1000",
    "--expert-episodes", "2",
    "--pretrain-steps", "30",
    "--batch-size", "16",
    "--window", "4",
    "--feature-dim", "8",
    "--hidden", "32",
    "--bc-steps", "30",
    "--offline-steps", "30",
    "--eval-episodes", "2",
    # the paper's options: 10% expert windows in pretraining, tanh-Gaussian BC with its entropy
    # bonus, and one hidden state dimension online
    "--pretrain-expert-fraction", "0.1",
    "--bc-loss", "tanh_gaussian",
    "--online-hide-dims", "1",
    "--quiet",
]  # fmt: skip
CELLS = (2 * (1 + 2) + 2) * 2  # (offline settings + online) x modes x seeds


def _study(out):
    return [
        sys.executable,
        "-c",
        "from seqrep.cli import main; main()",
        "study",
        *TINY,
        "--out",
        str(out),
    ]


def _table(path):
    with open(path / "cells.csv") as f:
        rows = list(csv.DictReader(f))
    keys = ("env", "setting", "objective", "mode", "seed", "return_mean", "score")
    return [{k: r[k] for k in keys} for r in rows], rows


@pytest.mark.long
def test_killed_or_parallel_study_gives_the_same_table(pendulum_zoo, tmp_path, kill_mid_run):
    env = {**os.environ, "SEQREP_ZOO": str(pendulum_zoo), "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(_study(whole), env=env, check=True, capture_output=True)
    table, rows = _table(whole)
    assert len(table) == CELLS
    # Frozen means frozen (the runner also refuses a changed frozen encoder); others change.
    for r in rows:
        assert r["encoder_changed"] == ("False" if r["mode"] == "frozen" else "True"), r
    report = (whole / "report.md").read_text()
    assert (
        "the zoo's own (random, expert) references" in report
        and "scores-Pendulum-v1-imitation.png" in report
    )
    assert (whole / "scores-Pendulum-v1-offline.png").stat().st_size > 1000
    assert "online-curves.png" in report and "pretraining-Pendulum-v1.png" in report
    assert "representation diagnostics" in report
    assert not list(whole.glob("*.hdf5"))  # the diagnostics read the cells' data, not a copy
    # The paper's options in force are stated where a reader looks for the setup.
    assert "10% of each batch from the expert set" in report
    assert "`tanh_gaussian` loss" in report
    assert "with 1 random state dimension(s) zeroed at every step, also in" in report
    with open(whole / "diagnostics.csv") as f:
        diagnostics = list(csv.DictReader(f))
    assert {r["objective"] for r in diagnostics} == {"none", "temporal"}
    assert all(0 < float(r["effective_rank"]) <= 8 for r in diagnostics)  # feature_dim 8
    online = [r for r in rows if r["setting"] == "online"]
    assert {r["objective"] for r in online} == {"temporal"} and len(online) == 4
    # What a study commits (cells, config, marker, diagnostics, the pretraining plot) reports
    # the same report.md again without the encoders and data it was measured with.
    committed = tmp_path / "committed"
    committed.mkdir()
    for name in ("cells.jsonl", "config.json", ".seqrep-run", "diagnostics.csv"):
        (committed / name).write_bytes((whole / name).read_bytes())
    (committed / "pretraining-Pendulum-v1.png").write_bytes(b"png")
    again = subprocess.run([*_study(committed), "--report-only"], env=env, capture_output=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (committed / "report.md").read_text() == report

    # The cheap cells (imitation and offline; an online cell's own resume has its test below)
    # killed part-way and resumed in two worker processes (split by encoder), and run as Ray
    # tasks: the same numbers, cell by cell, as the whole study's.
    cheap = ["--only", "setting=imitation,offline"]
    offline_table = [r for r in table if r["setting"] != "online"]
    killed = tmp_path / "killed"
    cells = killed / "cells.jsonl"
    kill_mid_run(
        [*_study(killed), *cheap],
        lambda: cells.exists() and len(cells.read_text().splitlines()) >= 3,
        env,
    )
    done_before = len(cells.read_text().splitlines())
    assert 3 <= done_before < len(offline_table)
    # --report-only reports the finished cells and runs none.
    subprocess.run([*_study(killed), "--report-only"], env=env, check=True, capture_output=True)
    assert len(cells.read_text().splitlines()) == done_before
    assert f"Cells finished: {done_before} of {CELLS}" in (killed / "report.md").read_text()
    resumed = subprocess.run(
        [*_study(killed), *cheap, "--jobs", "2"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _table(killed)[0] == offline_table
    # Two machines' shares (--only; the imitation cells, which are cheap), joined by --merge:
    # the same cells as one machine's, and the encoders.
    shares = [tmp_path / "seed0", tmp_path / "seed1"]
    for seed, share in enumerate(shares):
        only = ["--only", f"seed={seed}", "--only", "setting=imitation"]
        subprocess.run([*_study(share), *only], env=env, check=True, capture_output=True)
        assert {(r["seed"], r["setting"]) for r in _table(share)[0]} == {(str(seed), "imitation")}
    merged = tmp_path / "merged"
    joins = [a for share in shares for a in ("--merge", str(share))]
    done = subprocess.run([*_study(merged), *joins], env=env, capture_output=True, text=True)
    imitation = [r for r in table if r["setting"] == "imitation"]
    assert done.returncode == 0, done.stderr
    assert f"merged {len(imitation)} finished cells" in done.stderr
    assert _table(merged)[0] == imitation
    encoders = lambda d: sorted(p.name for p in (d / "checkpoints").glob("encoder-*"))  # noqa: E731
    assert encoders(merged) == encoders(whole) and encoders(merged)
    again = subprocess.run([*_study(merged), *joins], env=env, capture_output=True, text=True)
    assert "merged 0 finished cells" in again.stderr  # nothing twice
    # Every pretraining and cell as a task on a local 2-worker Ray instance: the same table.
    if importlib.util.find_spec("ray") is not None:
        on_ray = tmp_path / "ray"
        ray = [*_study(on_ray), *cheap, "--only", "seed=1", "--ray"]
        done = subprocess.run(ray, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        assert _table(on_ray)[0] == [r for r in offline_table if r["seed"] == "1"]


def test_cell_filter_and_merge_refusals(tmp_path):
    from seqrep.cli import main
    from seqrep.loops.runs import RunDir, release_lock
    from seqrep.study import check_cell_filter, grid_cells, merge_studies, parse_cell_filter

    only = parse_cell_filter(["env=A,B", "seed=0", "env=B,C"])
    assert only == {"env": frozenset({"B"}), "seed": frozenset({"0"})}  # repeated: both hold
    with pytest.raises(ValueError, match="unknown field 'colour'; choose env, setting"):
        parse_cell_filter(["colour=red"])
    with pytest.raises(ValueError, match="write FIELD=VALUE"):
        parse_cell_filter(["env"])
    quick = profile_config("quick")
    assert check_cell_filter(quick, {}) == len(grid_cells(quick))
    assert check_cell_filter(quick, parse_cell_filter(["seed=0"])) == len(grid_cells(quick)) // 3
    with pytest.raises(
        ValueError, match=r"selects none of the study.s \d+ cells \(env: Hopper-v5\)"
    ):
        check_cell_filter(quick, parse_cell_filter(["env=Hoper-v5"]))
    # A folder of another study is refused before --out is created.
    other = tmp_path / "other"
    RunDir.open(other, Prepared("study", profile_config("quick", seeds=(7,))))
    release_lock(other)
    (other / "cells.jsonl").write_text('{"env": "Hopper-v5"}\n')
    target = tmp_path / "target"
    args = ["study", "--profile", "quick", "--merge", str(other), "--out", str(target)]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and not target.exists()
    with pytest.raises(RunDirError, match=r"differs in: seeds"):
        merge_studies(profile_config("quick"), RunDir(target), [other])
    with pytest.raises(SystemExit):
        main([*args[:-2], "--only", "seed=0"])  # --merge runs nothing: no --only with it
    assert not target.exists()


def test_merge_appends_missing_cells_once_and_drops_a_torn_line(tmp_path):
    import json

    from seqrep.loops.runs import RunDir, release_lock
    from seqrep.study import finished_cells, grid_cells, merge_studies

    cfg = profile_config("quick")
    cells = grid_cells(cfg)[:3]
    rows = [{**c, "score": float(i)} for i, c in enumerate(cells)]
    source = RunDir.open(tmp_path / "source", Prepared("study", cfg))
    (source.path / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1:]))
    (source.checkpoints / "encoder-x.pt").write_bytes(b"weights")
    release_lock(source.path)
    target = RunDir.open(tmp_path / "target", Prepared("study", cfg))
    torn = json.dumps(rows[2])[:20]  # a kill mid-append
    (target.path / "cells.jsonl").write_text(json.dumps(rows[0]) + "\n" + torn)
    assert merge_studies(cfg, target, [source.path, source.path]) == 2  # each cell once
    assert [r["score"] for r in finished_cells(cfg, target)] == [0.0, 1.0, 2.0]
    assert (target.checkpoints / "encoder-x.pt").read_bytes() == b"weights"
    assert merge_studies(cfg, target, [source.path]) == 0


def test_a_cell_appended_twice_counts_once_and_an_orphaned_worker_starts_no_cell(tmp_path):
    import json

    from seqrep.loops.runs import RunDir
    from seqrep.study import finished_cells, grid_cells, summarise_study
    from seqrep.study.run import _run_worker

    cfg = profile_config("quick")
    cells = grid_cells(cfg)[:2]
    result = {"return_mean": 0.0, "pretrain_seconds": 0.0, "pretrain_final": {}}
    first, again = {**cells[0], **result, "score": 50.0}, {**cells[0], **result, "score": 50.0}
    other = {**cells[1], **result, "score": 80.0}
    run = RunDir.open(tmp_path / "run", Prepared("study", cfg))
    lines = [first, other, again]  # a killed study's worker finished cells[0] a second time
    (run.path / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rows = finished_cells(cfg, run)
    assert [r["score"] for r in rows] == [50.0, 80.0]
    assert cells[0]["seed"] != cells[1]["seed"]  # two seeds of one row: 2, not 3
    assert [s["seeds"] for s in summarise_study(rows)] == [2]
    # A worker whose study process is gone (its parent pid is not the one it was given) leaves
    # the folder as it was instead of starting a cell a resumed study may be running too.
    before = (run.path / "cells.jsonl").read_text()
    _run_worker(cfg, run.path, 0, 1, quiet=True, parent=os.getppid() + 1)
    assert (run.path / "cells.jsonl").read_text() == before


@pytest.mark.long
def test_killed_online_cell_resumes_from_its_checkpoint(pendulum_zoo, tmp_path, kill_mid_run):
    """An online cell checkpoints at every tenth of its steps; a killed study continues the
    cell from there (not from step 0) and ends with the uninterrupted study's numbers."""
    import json

    env = {**os.environ, "SEQREP_ZOO": str(pendulum_zoo), "OMP_NUM_THREADS": "1"}
    online = [
        "--settings", "online", "--objectives", "temporal",
        "--online-objectives", "temporal", "--online-modes", "finetune",
        "--online-steps", "400", "--seeds", "0",
    ]  # fmt: skip
    whole = tmp_path / "whole"
    subprocess.run([*_study(whole), *online], env=env, check=True, capture_output=True)
    table, _ = _table(whole)
    assert len(table) == 1

    killed = tmp_path / "killed"
    checkpoints = lambda: list((killed / "online").glob("*/checkpoints/last.pt"))  # noqa: E731
    kill_mid_run([*_study(killed), *online], lambda: bool(checkpoints()), env)
    (ckpt,) = checkpoints()
    assert not (killed / "cells.jsonl").exists() or not (killed / "cells.jsonl").read_text()
    # Mark the first logged episode (it precedes the checkpoint, so a resume keeps it; a
    # restart or an overwritten folder would lose the mark).
    metrics = ckpt.parent.parent / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    lines[0] = json.dumps({**json.loads(lines[0]), "mark": True})
    metrics.write_text("\n".join(lines) + "\n")
    subprocess.run([*_study(killed), *online], env=env, check=True, capture_output=True)
    assert json.loads(metrics.read_text().splitlines()[0]).get("mark") is True
    assert _table(killed)[0] == table


def test_bootstrap_ci_and_iqm_against_closed_forms():
    assert interquartile_mean(np.array([0.0, 1, 2, 3, 100, -50, 4, 5])) == pytest.approx(2.5)
    low, high = bootstrap_ci(np.full(6, 3.0))
    assert low == high == 3.0
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=400)
    low, high = bootstrap_ci(x, resamples=4000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the normal-theory interval of the mean
    assert low == pytest.approx(x.mean() - half, abs=0.05)
    assert high == pytest.approx(x.mean() + half, abs=0.05)


def test_study_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        profile_config("huge")
    with pytest.raises(ValueError, match=r"unknown objectives \['simclr'\]"):
        profile_config("quick", objectives=("none", "simclr")).validate()


def _row(objective, mode, episodes, mean, low, high):
    """One row of a study summary (imitation, env "E")."""
    return {
        "env": "E",
        "setting": "imitation",
        "objective": objective,
        "mode": mode,
        "episodes": episodes,
        "score_mean": mean,
        "ci_low": low,
        "ci_high": high,
    }


def test_headline_compares_confidence_intervals():
    from seqrep.study import headline

    summary = [
        _row("none", "scratch", None, 40, 35, 45),
        _row("temporal", "frozen", None, 60, 50, 70),
        _row("acl", "frozen", None, 55, 44, 66),
        _row("cpc", "finetune", None, 90, 85, 95),  # fine-tuned: a clause of its own
        _row("acl", "finetune", None, 42, 30, 50),
        _row("autoencoder", "frozen", None, 65, 60, 70),
        _row("autoencoder", "finetune", None, 99, 97, 100),  # not contrastive: in neither clause
    ]
    (line,) = headline(summary)
    assert "`temporal` 60.0 [50.0, 70.0]" in line and "beats it outside the CIs" in line
    assert "`autoencoder` 65.0: **not below**" in line
    assert "fine-tuned contrastive encoder `cpc` 90.0 [85.0, 95.0]: beats scratch" in line
    summary[3] = _row("cpc", "finetune", None, 90, 44, 95)  # its CI reaches scratch's now
    assert "`cpc` 90.0 [44.0, 95.0]: does **not** beat scratch" in headline(summary)[0]
    summary[1] = _row("temporal", "frozen", None, 60, 44, 76)  # CIs overlap now
    assert "does **not** beat it" in headline(summary)[0]
    assert "no room" not in headline(summary)[0]
    summary[0] = _row("none", "scratch", None, 98, 96, 100)  # BC from scratch at the expert already
    assert "no room for a representation to help" in headline(summary)[0]


def test_headline_compares_the_best_pretrained_encoder_with_scratch_in_each_rl_setting():
    from seqrep.study import headline

    def rl(setting, objective, mode, mean, low, high):
        return {**_row(objective, mode, None, mean, low, high), "setting": setting}

    summary = [
        rl("offline", "none", "scratch", 30, 27, 33),
        rl("offline", "cpc", "finetune", 40, 34, 46),  # the best: CI wholly above scratch's
        rl("offline", "acl", "finetune", 35, 20, 50),
        rl("online", "none", "scratch", 20, 10, 30),
        rl("online", "temporal", "finetune", 25, 15, 35),  # overlaps scratch's CI
    ]
    lines = headline(summary)  # no imitation cells: RL lines only
    assert lines == [
        "- E, offline RL (TD3+BC): best pretrained encoder `cpc` (finetune) 40.0 [34.0, 46.0] "
        "vs from scratch 30.0 [27.0, 33.0]: beats it outside the CIs.",
        "- E, online RL (SAC): best pretrained encoder `temporal` (finetune) 25.0 [15.0, 35.0] "
        "vs from scratch 20.0 [10.0, 30.0]: does **not** beat it outside the CIs.",
    ]
    summary[1] = rl("offline", "cpc", "finetune", 20, 15, 25)  # every encoder below scratch's CI
    summary[2] = rl("offline", "acl", "finetune", 10, 5, 15)
    assert (
        "`cpc` (finetune) 20.0 [15.0, 25.0] vs from scratch 30.0 [27.0, 33.0]: lies **below**"
        in (headline(summary)[0])
    )
    assert headline(summary[3:4]) == []  # scratch alone: nothing to compare


def test_online_summary_averages_the_normalised_curve():
    from seqrep.rl.zoo import zoo_reference
    from seqrep.study import online_summary

    random_return, expert_return = zoo_reference("Hopper-v5")
    # A curve at the random return, then at the expert's: 0 then 100, averaged to 50.
    curve = [{"step": 1, "return": random_return}, {"step": 2, "return": expert_return}]
    row = {"env": "Hopper-v5", "setting": "online", "objective": "none", "mode": "scratch"}
    rows = [dict(row, curve=curve, seed=s) for s in range(3)]
    rows.append(dict(row, setting="imitation", curve=[], seed=0))  # not an online cell
    assert online_summary(rows) == ["- Hopper-v5 `none` scratch: 50.0 [50.0, 50.0] over 3 seeds"]


def test_effective_rank_and_linear_probe_against_closed_forms():
    from seqrep.loops.probes import effective_rank, linear_probe_r2

    rng = np.random.default_rng(0)
    centred = rng.normal(size=(400, 6))
    q, _ = np.linalg.qr(centred - centred.mean(0))  # orthonormal, zero-mean columns
    assert effective_rank(q[:, :4] * 5.0) == pytest.approx(4.0, abs=1e-9)  # 4 equal values
    p = np.array([0.75, 0.25])  # singular values 3 and 1: exp(H(p))
    expected = np.exp(-(p * np.log(p)).sum())
    assert effective_rank(q[:, :2] * np.array([3.0, 1.0])) == pytest.approx(expected, abs=1e-9)
    x = rng.normal(size=(1000, 5))
    y = x @ rng.normal(size=(5, 3))
    assert linear_probe_r2(x[:500], y[:500], x[500:], y[500:]) == pytest.approx(1.0, abs=1e-9)
    noise = rng.normal(size=(1000, 2))
    assert abs(linear_probe_r2(x[:500], noise[:500], x[500:], noise[500:])) < 0.05


def test_headline_on_the_data_efficiency_axis_uses_the_fewest_episodes_where_scratch_is_mediocre():
    from seqrep.study import headline

    summary = [
        _row("none", "scratch", 1, 85, 80, 90),  # not mediocre at 1 episode (here, by construction)
        _row("none", "scratch", 2, 70, 65, 75),
        _row("none", "scratch", 5, 90, 85, 95),
        _row("temporal", "frozen", 1, 50, 45, 55),
        _row("temporal", "frozen", 2, 88, 83, 93),
        _row("temporal", "frozen", 5, 91, 86, 96),
    ]
    (line,) = headline(summary)
    assert "E with 2 expert episodes" in line and "`temporal` 88.0" in line
    assert "scratch 70.0" in line and "beats it outside the CIs" in line
    summary[1] = _row("none", "scratch", 2, 95, 90, 100)  # never mediocre: the smallest size
    assert "E with 1 expert episode:" in headline(summary)[0]
    assert "not mediocre (below 80) at any expert-set size" in headline(summary)[0]
    summary[1] = _row("none", "scratch", 2, 70, 65, 75)
    assert "not mediocre" not in headline(summary)[0]


def test_efficiency_table_marks_cis_wholly_above_or_below_scratch():
    from seqrep.study import efficiency_tables

    summary = [
        _row("none", "scratch", 1, 40, 30, 50),
        _row("none", "scratch", 5, 90, 85, 95),
        _row("cpc", "frozen", 1, 20, 10, 29),  # wholly below scratch's CI
        _row("cpc", "frozen", 5, 92, 86, 98),  # overlaps: no mark
        _row("cpc", "finetune", 1, 60, 51, 70),  # wholly above
        _row("cpc", "finetune", 5, 97, 95, 99),  # touches 95: not wholly above
        _row("none", "scratch", None, 97, 96, 98),  # off the axis: not in the table
    ]
    text = efficiency_tables(summary)
    assert "| objective | mode | 1 ep | 5 ep |" in text
    assert "| none | scratch | 40.0 [30.0, 50.0] | 90.0 [85.0, 95.0] |" in text
    assert "| cpc | frozen | 20.0 [10.0, 29.0] ↓ | 92.0 [86.0, 98.0] |" in text
    assert "| cpc | finetune | 60.0 [51.0, 70.0] ↑ | 97.0 [95.0, 99.0] |" in text
    assert efficiency_tables([r for r in summary if r["episodes"] in (1, None)]) == ""


def test_study_cells_on_the_data_efficiency_axis(tmp_path):
    """--bc-episodes adds one imitation cell per size (offline and online cells have none); the
    first N episodes are exactly the expert set's first N; a mix of all expert episodes into
    pretraining is refused when a cell gets fewer."""
    from seqrep.data.trajectories import TrajectoryDataset
    from seqrep.study import StudyConfig, grid_cells
    from seqrep.study.grid import cell_key

    cfg = StudyConfig(
        envs=("Pendulum-v1",),
        objectives=("none", "temporal"),
        settings=("imitation", "offline"),
        offline_objectives=("none",),
        modes=("frozen",),
        seeds=(0, 1),
        expert_episodes=5,
        bc_episodes=(1, 2, 5),
    )
    cells = grid_cells(cfg)
    imitation = [c for c in cells if c["setting"] == "imitation"]
    assert len(imitation) == 2 * 3 * 2 and {c["episodes"] for c in imitation} == {1, 2, 5}
    assert all("episodes" not in c for c in cells if c["setting"] == "offline")
    assert len({cell_key(c) for c in cells}) == len(cells)
    assert cell_key({**imitation[0], "episodes": None}) == cell_key(
        {k: v for k, v in imitation[0].items() if k != "episodes"}
    )
    with pytest.raises(ValueError, match=r"each must lie in \[1, --expert-episodes 5\]"):
        StudyConfig(envs=("Hopper-v5",), expert_episodes=5, bc_episodes=(1, 6)).validate()
    with pytest.raises(ValueError, match="expert data its BC is not given"):
        StudyConfig(
            envs=("Hopper-v5",),
            expert_episodes=5,
            bc_episodes=(1, 5),
            pretrain_expert_fraction=0.1,
        ).validate()
    # Without the axis, or when every cell gets the whole expert set, the mix is fine.
    StudyConfig(envs=("Hopper-v5",), expert_episodes=5, pretrain_expert_fraction=0.1).validate()
    StudyConfig(
        envs=("Hopper-v5",), expert_episodes=5, bc_episodes=(5,), pretrain_expert_fraction=0.1
    ).validate()

    rng = np.random.default_rng(0)
    lengths = [3, 5, 4]
    episodes = [
        {
            "observations": rng.normal(size=(n, 2)),
            "actions": rng.normal(size=(n, 1)),
            "rewards": rng.normal(size=n),
            "next_observations": rng.normal(size=(n, 2)),
            "terminals": np.zeros(n, bool),
            "timeouts": np.eye(n, dtype=bool)[-1],
        }
        for n in lengths
    ]
    data = TrajectoryDataset.from_episodes(episodes, name="toy")
    two = data.first_episodes(2)
    assert two.num_episodes == 2 and len(two) == 8
    want = np.concatenate([e["observations"] for e in episodes[:2]]).astype(np.float32)
    np.testing.assert_array_equal(two.observations, want)
    np.testing.assert_array_equal(two.episode_starts, [0, 3, 8])
    with pytest.raises(ValueError, match="has 3 episodes; cannot take 4"):
        data.first_episodes(4)


def test_a_study_on_the_data_efficiency_axis_reports_score_against_expert_data(
    pendulum_zoo, tmp_path
):
    env = {**os.environ, "SEQREP_ZOO": str(pendulum_zoo), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "efficiency"
    args = [*TINY, "--settings", "imitation", "--objectives", "none,temporal"]
    args += ["--modes", "frozen", "--pretrain-expert-fraction", "0", "--bc-episodes", "1,2"]
    cmd = [sys.executable, "-c", "from seqrep.cli import main; main()", "study", *args]
    done = subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _, rows = _table(out)
    assert sorted((r["objective"], r["episodes"]) for r in rows) == sorted(
        (o, n) for o in ("none", "temporal") for n in ("1", "2") for _ in (0, 1)
    )
    report = (out / "report.md").read_text()
    assert "data-efficiency-Pendulum-v1.png" in report
    assert "## Imitation against expert data" in report and "| 1 ep | 2 ep |" in report
    assert "scores-Pendulum-v1-imitation.png" not in report  # the panels and table replace it
    assert (out / "data-efficiency-Pendulum-v1.png").stat().st_size > 1000
    assert "1, 2 (the first N of one expert set) zoo-expert episodes" in report
    assert "Pendulum-v1 with 1 expert episode" in report or "with 2 expert episodes" in report


def test_the_full_profile_holds_the_low_data_profile_and_its_cell_counts():
    """One full run serves both profiles (same cells, same encoders); the counts are those its
    cost estimate in PROFILES is computed from."""
    from seqrep.methods.states import STATE_OBJECTIVES
    from seqrep.study import PROFILES, grid_cells
    from seqrep.study.grid import cell_key

    full, low = grid_cells(PROFILES["full"]), grid_cells(PROFILES["low-data"])
    assert {cell_key(c) for c in low} <= {cell_key(c) for c in full}
    imitation = [c for c in full if c["setting"] == "imitation"]
    per_size = 1 + 2 * len(STATE_OBJECTIVES)  # scratch, then every objective frozen and tuned
    assert len(imitation) == len(low) == per_size * 3 * 5 * 4
    assert sorted({c["episodes"] for c in imitation}) == [1, 2, 5, 10]


def test_paper_sized_command_is_a_valid_study_config():
    """The report's command for the paper-sized run parses into a study config that validates
    (so that a renamed option cannot leave it stale)."""
    import dataclasses
    import shlex

    from seqrep.study import PAPER_SIZED_COMMAND, StudyConfig, profile_config

    words = shlex.split(PAPER_SIZED_COMMAND)
    assert words[:2] == ["seqrep", "study"]
    options = dict(zip(words[2::2], words[3::2], strict=True))
    profile = options.pop("--profile")
    kinds = {f.name: f.type for f in dataclasses.fields(StudyConfig)}
    kwargs = {}
    for option, value in options.items():
        name = option.removeprefix("--").replace("-", "_")
        if name in ("jobs", "out"):  # the command's, not the config's
            continue
        if name == "device":  # validate() checks that a GPU is visible: not on CI
            assert value == "cuda"
            continue
        assert name in kinds, option
        kwargs[name] = int(value) if kinds[name] == "int" else value
    cfg = profile_config(profile, **kwargs)
    cfg.validate()
    assert (cfg.pretrain_steps, cfg.feature_dim, cfg.online_steps) == (200_000, 256, 1_000_000)


def test_a_committed_study_folder_written_before_the_restructure_reports_the_same(tmp_path):
    """bench/results/study-online100k was written by the code before seqrep.study and
    seqrep.loops existed: its config.json still opens as this study (no module paths are
    stored), and its cells give byte for byte the summary and the report committed beside it."""
    import json
    import shutil
    from pathlib import Path

    from seqrep.loops.runs import RunDir, with_options_added_since
    from seqrep.study.config import StudyConfig
    from seqrep.study.report import write_study_report
    from seqrep.study.run import finished_cells

    committed = Path(__file__).resolve().parents[1] / "bench" / "results" / "study-online100k"
    folder = tmp_path / "study"
    shutil.copytree(committed, folder)
    saved = json.loads((folder / "config.json").read_text())
    saved.pop("kind")
    cfg = StudyConfig(**with_options_added_since(saved, StudyConfig))
    run = RunDir.attach(folder, "study", cfg)  # refused if the config no longer matched
    write_study_report(cfg, run, finished_cells(cfg, run))
    for name in ("summary.csv", "report.md"):
        assert (folder / name).read_text() == (committed / name).read_text(), name
