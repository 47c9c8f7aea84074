"""What the paper's own options change in the Representation Matters study (issue 18).

Yang & Nachum's code differs from seqrep's study defaults in three places: a 256-d
representation (seqrep: 64), about 10% of every pretraining batch drawn from the downstream
expert data (seqrep: none), and a tanh-Gaussian BC policy trained by likelihood with an entropy
bonus (seqrep: mean-squared error). This runs one small study per option, and one with all
three, in the low-data imitation regime where pretraining can matter (2 expert episodes: BC
from scratch is mediocre there), and tables each option's effect against the defaults:

    python bench/study_options.py                      # Hopper-v5, 5 seeds, about 2 CPU-hours
    python bench/study_options.py --envs Hopper-v5,Walker2d-v5 --jobs 2

Each study is a resumable ``seqrep study`` run folder under --runs (rerun to resume); the table
goes to bench/results/study_options.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    "256-d representation": ["--feature-dim", "256"],
    "10% expert windows": ["--pretrain-expert-fraction", "0.1"],
    "tanh-Gaussian BC": ["--bc-loss", "tanh_gaussian"],
    "all three (the paper's code)": [
        "--feature-dim",
        "256",
        "--pretrain-expert-fraction",
        "0.1",
        "--bc-loss",
        "tanh_gaussian",
    ],
}


def _folder(runs: Path, variant: str) -> Path:
    return runs / variant.split(" (")[0].replace(" ", "-").replace("%", "pct")


def run_variants(args: argparse.Namespace) -> None:
    for variant, extra in VARIANTS.items():
        cmd = [
            sys.executable,
            "-c",
            "from seqrep.cli import main; main()",
            "--threads",
            str(args.threads),
            "study",
            "--profile",
            "full",
            "--settings",
            "imitation",
            "--bc-episodes",
            "",
            "--envs",
            args.envs,
            "--objectives",
            args.objectives,
            "--seeds",
            args.seeds,
            "--expert-episodes",
            str(args.expert_episodes),
            "--jobs",
            str(args.jobs),
            *extra,
            "--out",
            str(_folder(Path(args.runs), variant)),
        ]
        print(f"== {variant}: {' '.join(cmd[3:])}", flush=True)
        subprocess.run(cmd, check=True)


def _summary(folder: Path) -> list[dict[str, str]]:
    path = folder / "summary.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def write_table(args: argparse.Namespace) -> str:
    rows = []
    for variant in VARIANTS:
        for s in _summary(_folder(Path(args.runs), variant)):
            if s["setting"] == "imitation":
                rows.append({"variant": variant, **s})
    # A summary row per (env, objective, mode, expert episodes); episodes is empty off the
    # data-efficiency axis (these studies).
    keys = list(dict.fromkeys((r["env"], r["objective"], r["mode"], r["episodes"]) for r in rows))
    score = {
        (r["variant"], r["env"], r["objective"], r["mode"], r["episodes"]): (
            float(r["score_mean"]),
            float(r["ci_low"]),
            float(r["ci_high"]),
            int(r["seeds"]),
        )
        for r in rows
    }
    header = "| env | objective | mode | " + " | ".join(VARIANTS) + " |"
    lines = [header, "|" + "---|" * (3 + len(VARIANTS))]
    for env_id, objective, mode, episodes in keys:
        cells = []
        for variant in VARIANTS:
            got = score.get((variant, env_id, objective, mode, episodes))
            cells.append("-" if got is None else f"{got[0]:.1f} [{got[1]:.1f}, {got[2]:.1f}]")
        label = mode if not episodes else f"{mode}, {episodes} episodes"
        lines.append(f"| {env_id} | {objective} | {label} | " + " | ".join(cells) + " |")
    # Each option's effect: its score minus the defaults', averaged over the pretrained rows
    # (objective x mode) both variants finished; scratch BC is affected only by the BC loss.
    effects = []
    for variant in list(VARIANTS)[1:]:
        change = {
            k: score[(variant, *k)][0] - score[("defaults", *k)][0]
            for k in keys
            if (variant, *k) in score and ("defaults", *k) in score
        }
        diffs = [d for k, d in change.items() if k[1] != "none"]
        scratch = [d for k, d in change.items() if k[1] == "none"]
        effects.append(
            {
                "variant": variant,
                "pretrained_rows": len(diffs),
                "mean_change": float(np.mean(diffs)) if diffs else None,
                "rows_up": int(sum(d > 0 for d in diffs)),
                "scratch_change": float(np.mean(scratch)) if scratch else None,
            }
        )
    effect_lines = [
        "| option | pretrained rows | mean change in score | rows up | scratch BC change |",
        "|---|---|---|---|---|",
    ]
    for e in effects:
        mean = "-" if e["mean_change"] is None else f"{e['mean_change']:+.1f}"
        scratch_text = "-" if e["scratch_change"] is None else f"{e['scratch_change']:+.1f}"
        effect_lines.append(
            f"| {e['variant']} | {e['pretrained_rows']} | {mean} | {e['rows_up']} | {scratch_text} |"
        )
    text = (
        "# The paper's options in the study\n\n"
        f"`python bench/study_options.py --envs {args.envs} --objectives {args.objectives} "
        f"--seeds {args.seeds} --expert-episodes {args.expert_episodes}`: imitation on "
        f"{args.expert_episodes} zoo-expert episodes, every other setting of the full profile; "
        "normalised score, mean over seeds [95% bootstrap CI].\n\n"
        + "\n".join(lines)
        + "\n\nEach option against the defaults (differences of means; a CI spans several "
        "points at 5 seeds, so a change of a point or two is within noise):\n\n"
        + "\n".join(effect_lines)
        + "\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "study_options.json").write_text(
        json.dumps({"rows": rows, "effects": effects}, indent=1)
    )
    (RESULTS / "study_options.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("what", nargs="?", choices=["run", "report"], default="run")
    p.add_argument("--runs", default="runs/study-options", help="where the study folders go")
    p.add_argument("--envs", default="Hopper-v5")
    p.add_argument("--objectives", default="none,cpc,temporal,acl")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--expert-episodes", type=int, default=2)
    p.add_argument("--jobs", type=int, default=1, help="worker processes per study")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = p.parse_args()
    if args.what == "run":
        run_variants(args)
    print(write_table(args))


if __name__ == "__main__":
    main()
