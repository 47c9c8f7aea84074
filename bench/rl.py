"""RL benchmarks on the behaviour zoo's MuJoCo tasks (issue 4's targets).

    python bench/rl.py sac       # SAC return curves of the zoo runs vs CleanRL / the SAC paper
    python bench/rl.py offline   # BC on expert data; BC vs TD3+BC on medium-replay-like data
    python bench/rl.py offline --data sac-replay   # ... on the zoo run's own replay buffer

``sac`` reads the ``seqrep sac`` run folders that trained the zoo (runs/zoo/sac-*; pass
--runs) and writes bench/results/rl_sac.{json,md} and sac_curves.png. ``offline`` collects the
data sets with the shipped zoo (cached as D4RL-layout HDF5 under runs/bench-rl/), trains each
algorithm for --steps (BC: --bc-steps) gradient steps per seed, and writes
bench/results/rl_offline.{json,md}; it resumes, skipping finished (env, algorithm, data, seed)
rows. Scores use seqrep's own v5 references (zoo.json), printed beside CORL's published D4RL v2
scores: the data differ.

Data sets (--data): ``expert`` (20 zoo-expert episodes), ``medium-replay`` (200k steps of the
zoo's medium-replay-like mixture: one ladder policy per episode) and ``sac-replay`` (D4RL's own
recipe: the first transitions of the zoo's SAC run's replay buffer, up to the step of its medium
snapshot; needs that run folder under --runs).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from seqrep.data.trajectories import TrajectoryDataset
from seqrep.loops.offline import offline_agent, train_offline
from seqrep.loops.runs import Prepared, RunDir
from seqrep.loops.sac import replay_buffer_dataset
from seqrep.rl.collect import zoo_dataset
from seqrep.rl.scores import normalized_score
from seqrep.rl.zoo import recipe_is_current, zoo_index, zoo_recipe, zoo_reference

RESULTS = Path(__file__).resolve().parent / "results"
ENVS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")
DATA_NOTES = {
    "expert": "20 episodes of the zoo's expert",
    "medium-replay": "200k steps of the zoo's medium-replay-like mixture (one policy per "
    "episode from [random, ladder..., medium])",
    "sac-replay": "D4RL's recipe: the zoo SAC run's replay buffer up to the step of its "
    "medium snapshot",
}
DATA = tuple(DATA_NOTES)
PLAN = [
    ("BC", "expert"),
    ("BC", "medium-replay"),
    ("TD3+BC", "medium-replay"),
    ("BC", "sac-replay"),
    ("TD3+BC", "sac-replay"),
]


def published() -> list[dict[str, str]]:
    text = resources.files("seqrep.data").joinpath("reference", "rl_published.csv").read_text()
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


def sac_bench(runs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pub = published()
    rows, fig = [], plt.figure(figsize=(12, 3.5))
    for k, run in enumerate(runs):
        cfg = json.loads((run / "config.json").read_text())
        evals = [
            json.loads(x)
            for x in (run / "metrics.jsonl").read_text().splitlines()
            if "eval_return_mean" in x
        ]
        steps = np.array([e["step"] for e in evals])
        mean = np.array([e["eval_return_mean"] for e in evals])
        task = cfg["env"].split("-")[0]
        refs = {
            p["source"]: p for p in pub if p["task"].startswith(task) and p["algorithm"] == "SAC"
        }
        marks = {
            s: mean[steps <= s][-1] for s in (50_000, 100_000, 200_000, 300_000) if steps.max() >= s
        }
        rows.append(
            {
                "env": cfg["env"],
                "steps_trained": int(steps.max()),
                "hours": evals[-1]["seconds"] / 3600,
                "eval_at": {str(s): float(v) for s, v in marks.items()},
                "best_eval": float(mean.max()),
                "cleanrl_1m": float(refs["cleanrl"]["value"]),
                "sac_paper_1m": float(refs["sac_paper"]["value"]),
            }
        )
        ax = fig.add_subplot(1, len(runs), k + 1)
        ax.plot(steps, mean, "-", label="seqrep SAC (eval, 10 episodes)")
        ax.axhline(rows[-1]["cleanrl_1m"], color="C1", ls="--", label="CleanRL @1M (v2)")
        ax.axhline(rows[-1]["sac_paper_1m"], color="C2", ls=":", label="SAC paper @1M (v2)")
        ax.set(title=cfg["env"], xlabel="environment step", ylabel="return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "sac_curves.png", dpi=90)
    lines = [
        "| env | steps | wall hours | @50k | @100k | @200k | @300k | best | CleanRL @1M | SAC paper @1M |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        at = [
            f"{r['eval_at'][s]:.0f}" if s in r["eval_at"] else "-"
            for s in ("50000", "100000", "200000", "300000")
        ]
        lines.append(
            f"| {r['env']} | {r['steps_trained']} | {r['hours']:.1f} | {' | '.join(at)} | "
            f"{r['best_eval']:.0f} | {r['cleanrl_1m']:.0f} | {r['sac_paper_1m']:.0f} |"
        )
    (RESULTS / "rl_sac.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / "rl_sac.md").write_text(
        "# SAC on MuJoCo v5 (the zoo's training runs)\n\nDeterministic evaluation over 10 "
        "episodes every 5000 steps; published numbers are v2 tasks at 1M steps.\n\n"
        + "\n".join(lines)
        + "\n\n![curves](sac_curves.png)\n"
    )
    print("\n".join(lines))


def _offline_data(env_id: str, name: str, cache: Path, runs: Path) -> TrajectoryDataset:
    if name == "expert":
        return zoo_dataset(env_id, "expert", cache, episodes=20)
    if name == "medium-replay":
        return zoo_dataset(env_id, "medium-replay", cache, steps=200_000)
    # D4RL's medium-replay: the replay buffer of the training run up to its medium policy.
    # zoo.json records which run trained the zoo; --runs says where such folders live here.
    entry = zoo_index()[env_id]
    run = runs / Path(entry["sac_run"]).name
    return replay_buffer_dataset(run, int(entry["policies"]["medium"]["step"]))[0]


def _data_recipe(env_id: str, name: str) -> str:
    """What produced a data set: the zoo policies a collection rolls out (or the zoo run's
    replay buffer); rows measured on other data are not today's rows."""
    if name == "sac-replay":
        return f"replay buffer of {Path(zoo_index()[env_id]['sac_run']).name} up to medium"
    return zoo_recipe(env_id, name)


def _is_current(row: dict) -> bool:
    today = _data_recipe(row["env"], row["data"])
    return recipe_is_current(row.get("recipe"), today, row["data"])


def offline_bench(
    envs: list[str],
    data_names: list[str],
    seeds: list[int],
    steps: dict[str, int],
    episodes: int,
    eval_every: int,
    cache: Path,
    runs: Path,
    results: Path,
) -> None:
    out = results / "rl_offline.json"
    rows = json.loads(out.read_text()) if out.exists() else []
    current = [_is_current(r) for r in rows]
    stale = [r for r, ok in zip(rows, current, strict=True) if not ok]
    if stale:
        # Kept, not deleted: a before/after note needs them; the table shows today's data only.
        old_path = results / "rl_offline.superseded.json"
        kept = json.loads(old_path.read_text()) if old_path.exists() else []
        old_path.write_text(json.dumps(kept + stale, indent=1))
        rows = [r for r, ok in zip(rows, current, strict=True) if ok]
        out.write_text(json.dumps(rows, indent=1))
        print(
            f"{len(stale)} rows were measured on data today's zoo would not collect; moved to "
            f"{old_path} and measured again"
        )
    done = {(r["env"], r["algorithm"], r["data"], r["seed"]) for r in rows}
    plan = [(algo, name) for algo, name in PLAN if name in data_names]
    for env_id in envs:
        sets: dict[str, TrajectoryDataset] = {}
        for algo, data_name in plan:
            for seed in seeds:
                if (env_id, algo, data_name, seed) in done:
                    continue
                if data_name not in sets:
                    sets[data_name] = _offline_data(env_id, data_name, cache, runs)
                data = sets[data_name]
                recipe = _data_recipe(env_id, data_name)
                torch.manual_seed(seed)
                agent = offline_agent("bc" if algo == "BC" else "td3bc", data)
                # One run folder per row: losses, the evaluation curve, and checkpoints, so a
                # long row that is killed resumes where it stopped.
                row_cfg = {
                    "env": env_id,
                    "algorithm": algo,
                    "data": data_name,
                    "seed": seed,
                    "steps": steps[algo],
                    "eval_every": eval_every,
                    "episodes": episodes,
                    "recipe": recipe,
                }
                name = f"{env_id}-{algo.replace('+', '')}-{data_name}-s{seed}-{steps[algo]}"
                if data_name == "medium-replay":
                    # Row folders of an earlier mixture stay as they are, beside today's.
                    name += f"-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"
                run = RunDir.open(cache / "runs" / name, Prepared("bench-offline", row_cfg))
                torch.manual_seed(seed)  # the updates' noise starts from the seed, as the weights
                evals = train_offline(
                    agent,
                    data,
                    steps[algo],
                    seed=seed,
                    run=run,
                    eval_env=env_id,
                    eval_every=eval_every,
                    eval_episodes=episodes,
                    log_every=1000,
                    checkpoint_every=10_000,
                    quiet=False,
                )
                ref = zoo_reference(env_id)
                curve = [
                    {
                        "step": e["step"],
                        "score": normalized_score(e["eval_return_mean"], reference=ref),
                    }
                    for e in evals
                ]
                rows.append(
                    {
                        "env": env_id,
                        "algorithm": algo,
                        "data": data_name,
                        "seed": seed,
                        "steps": steps[algo],
                        "recipe": recipe,
                        "transitions": len(data),
                        "data_score": normalized_score(
                            float(data.episode_returns().mean()), reference=ref
                        ),
                        "return": evals[-1]["eval_return_mean"],
                        "score": curve[-1]["score"],
                        "curve": curve,
                    }
                )
                out.write_text(json.dumps(rows, indent=1))
    corl = {
        (p["task"], p["algorithm"], p["data"]): p for p in published() if p["source"] == "corl_last"
    }
    lines = [
        "| env | algorithm | data | seeds | seqrep score (mean ± std) | mean of last 5 evaluations "
        "| data's own score | CORL (D4RL v2) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for env_id in envs:
        for algo, data_name in plan:
            rs = [
                r
                for r in rows
                if (r["env"], r["algorithm"], r["data"]) == (env_id, algo, data_name)
            ]
            if not rs:
                continue
            s = np.array([r["score"] for r in rs])
            # Rows evaluated only at the end have no curve: the column would repeat the final.
            late_cell = "-"
            if all(_has_curve(r) for r in rs):
                late = np.array([_late_score(r) for r in rs])
                late_cell = f"{late.mean():.1f} ± {late.std():.1f}"
            d4rl = "medium-replay" if data_name == "sac-replay" else data_name
            p = corl.get((env_id.split("-")[0].lower(), algo, f"{d4rl}-v2"))
            corl_ref = f"{float(p['value']):.1f} ± {float(p['std']):.1f}" if p else "-"
            lines.append(
                f"| {env_id} | {algo} | {data_name} | {len(rs)} | {s.mean():.1f} ± {s.std():.1f} | "
                f"{late_cell} | {rs[0]['data_score']:.1f} | {corl_ref} |"
            )
    refs = "\n".join(
        f"- {e}: random {zoo_reference(e)[0]:.1f}, expert {zoo_reference(e)[1]:.1f}" for e in envs
    )
    curves = _plot_offline_curves(rows, envs, results / "rl_offline_curves.png")
    (results / "rl_offline.md").write_text(
        f"# Offline benchmarks on the zoo's data\n\nGradient steps (batch 256): BC {steps['BC']}, "
        f"TD3+BC {steps['TD3+BC']}; "
        f"{episodes} evaluation episodes per seed. Scores use seqrep's own v5 references:\n"
        f"{refs}\n\nData sets:\n"
        + "\n".join(f"- {d}: {DATA_NOTES[d]}" for d in data_names)
        + "\n\nCORL's scores are on D4RL v2 data (other behaviour policies and simulator "
        "version): compare orderings, not decimals.\n\n"
        + "\n".join(lines)
        + (_curve_table(rows, envs) if curves else "")
        + _superseded_table(results, rows)
        + "\n"
    )
    print("\n".join(lines))


def _superseded_table(results: Path, rows: list[dict]) -> str:
    """Rows measured on data today's zoo would not collect, beside today's: what changed."""
    path = results / "rl_offline.superseded.json"
    if not path.exists():
        return ""
    old = json.loads(path.read_text())
    lines = [
        "\n\n## Before and after the data changed\n\nRows measured on data today's zoo would not "
        "collect (kept in `rl_offline.superseded.json`: the medium-replay mixture of the time "
        "lacked the medium policy), beside today's rows.\n",
        "| env | algorithm | data | before: score (data's own) | today: score (data's own) |",
        "|---|---|---|---|---|",
    ]

    def cell(rs: list[dict]) -> str:
        if not rs:
            return "-"
        s = np.array([r["score"] for r in rs])
        return f"{s.mean():.1f} ± {s.std():.1f} ({rs[0]['data_score']:.1f})"

    for key in dict.fromkeys((r["env"], r["algorithm"], r["data"]) for r in old):
        before = [r for r in old if (r["env"], r["algorithm"], r["data"]) == key]
        today = [r for r in rows if (r["env"], r["algorithm"], r["data"]) == key]
        lines.append(f"| {' | '.join(key)} | {cell(before)} | {cell(today)} |")
    return "\n".join(lines)


def _has_curve(row: dict) -> bool:
    """Whether a row was evaluated during training (``--eval-every``), not only at the end."""
    return len(row.get("curve", [])) > 1


def _late_score(row: dict, last: int = 5) -> float:
    """Mean normalised score of a row's last ``last`` evaluations: less hostage to where an
    oscillating run happened to stop than the final one."""
    return float(np.mean([p["score"] for p in row["curve"][-last:]]))


def _curve_table(rows: list[dict], envs: list[str], last: int = 5) -> str:
    """Per seed: the final score (what the main table averages) beside the mean, min and max
    of the last ``last`` evaluations: how much the final iterate depends on where it stopped."""
    with_curves = [r for r in rows if r["env"] in envs and _has_curve(r)]
    lines = [
        "\n\n## Learning curves\n",
        f"Evaluations every {with_curves[0]['curve'][0]['step']} gradient steps. A final score "
        f"far from the mean of the last {last} evaluations (all of them for shorter runs) means "
        "the policy oscillates; the last column averages every evaluation after half of "
        "training (their count in brackets).\n",
        f"| env | algorithm | data | seed | final | mean of last {last} | min | max "
        "| mean of the second half |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in with_curves:
        tail = np.array([p["score"] for p in r["curve"][-last:]])
        # Every evaluation after half of training: with an oscillating policy this many
        # evaluations say more about where the run settled than any last few.
        half = [p["score"] for p in r["curve"] if p["step"] > r["steps"] / 2]
        lines.append(
            f"| {r['env']} | {r['algorithm']} | {r['data']} | {r['seed']} | {r['score']:.1f} | "
            f"{tail.mean():.1f} | {tail.min():.1f} | {tail.max():.1f} | "
            f"{np.mean(half):.1f} ({len(half)}) |"
        )
    return "\n".join(lines) + "\n\n![learning curves per seed](rl_offline_curves.png)"


def _plot_offline_curves(rows: list[dict], envs: list[str], path: Path) -> bool:
    """Normalised score against gradient step: one panel per (env, data set), one colour per
    algorithm, one thin line per seed."""
    with_curves = [r for r in rows if r["env"] in envs and _has_curve(r)]
    if not with_curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted(
        {(r["env"], r["data"]) for r in with_curves},
        key=lambda p: (envs.index(p[0]), DATA.index(p[1])),
    )
    colours = {"BC": "tab:blue", "TD3+BC": "tab:red"}
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (env_id, data_name) in zip(axes[0], panels, strict=True):
        labelled: set[str] = set()
        for r in with_curves:
            if (r["env"], r["data"]) != (env_id, data_name):
                continue
            c = r["curve"]
            algo = r["algorithm"]
            ax.plot(
                [p["step"] / 1000 for p in c],
                [p["score"] for p in c],
                "o-",
                ms=2.5,
                lw=1,
                alpha=0.8,
                color=colours.get(algo),
                label=None if algo in labelled else algo,
            )
            labelled.add(algo)
        ax.set(title=f"{env_id} {data_name}", xlabel="gradient step (k)")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("normalised score (one line per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("what", choices=["sac", "offline"])
    p.add_argument("--runs", default="runs/zoo", help="folder of the zoo's SAC run folders")
    p.add_argument("--envs", default=",".join(ENVS))
    p.add_argument(
        "--data",
        default="expert,medium-replay",
        help=f"offline data sets, comma-separated from {', '.join(DATA)}",
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=100_000, help="TD3+BC gradient steps")
    p.add_argument(
        "--bc-steps", type=int, default=None, help="BC gradient steps (default: --steps)"
    )
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="also evaluate every N gradient steps (a learning curve per row; 0: at the end only)",
    )
    p.add_argument("--cache", default="runs/bench-rl", help="collected data sets")
    p.add_argument("--results", default=str(RESULTS), help="where the result files go")
    args = p.parse_args()
    Path(args.results).mkdir(parents=True, exist_ok=True)
    envs = [e for e in args.envs.split(",") if e]
    if args.what == "sac":
        sac_bench(sorted(Path(args.runs).glob("sac-*")))
    else:
        missing = [e for e in envs if e not in zoo_index()]
        if missing:
            raise SystemExit(f"the zoo has no entry for {missing}: build it first (bench/zoo.py)")
        data_names = [d for d in args.data.split(",") if d]
        unknown = sorted(set(data_names) - set(DATA))
        if unknown:
            raise SystemExit(f"unknown --data {unknown}: choose from {', '.join(DATA)}")
        offline_bench(
            envs,
            data_names,
            [int(s) for s in args.seeds.split(",")],
            {"BC": args.bc_steps or args.steps, "TD3+BC": args.steps},
            args.episodes,
            args.eval_every,
            Path(args.cache),
            Path(args.runs),
            Path(args.results),
        )


if __name__ == "__main__":
    main()
