"""Build (or rebuild) the behaviour zoo shipped in seqrep/data/zoo from seqrep's SAC runs.

    seqrep sac --env Hopper-v5 --total-steps 300000 --eval-every 5000 --eval-episodes 10 \\
        --out runs/zoo/sac-hopper          # rerun the same command to resume
    python bench/zoo.py runs/zoo/sac-*     # select, store (float16), measure, update zoo.json

Writes bench/results/zoo.md: every zoo policy's measured return (20 episodes, stochastic
policy as in the data sets, and deterministic) and the v5 references.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seqrep.loops.zoo import build_zoo_entry
from seqrep.rl.zoo import zoo_index

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("runs", nargs="+")
    p.add_argument("--episodes", type=int, default=20)
    args = p.parse_args()
    for run in args.runs:
        entry = build_zoo_entry(run, episodes=args.episodes)
        print(run, {k: round(v["return_mean"], 1) for k, v in entry["policies"].items()})
    lines = [
        "| env | SAC steps trained | policy | from step | return (stochastic) | return (deterministic) |",
        "|---|---|---|---|---|---|",
    ]
    refs = []
    for env_id, e in sorted(zoo_index().items()):
        refs.append(
            f"- {env_id}: random {e['references']['random']:.1f} ± {e['random_return_std']:.1f}, "
            f"expert {e['references']['expert']:.1f}"
        )
        for name, pol in e["policies"].items():
            lines.append(
                f"| {env_id} | {e['trained_steps']} | {name} | {pol['step']} | "
                f"{pol['return_mean']:.1f} ± {pol['return_std']:.1f} | "
                f"{pol['deterministic_return_mean']:.1f} ± {pol['deterministic_return_std']:.1f} |"
            )
    (RESULTS / "zoo.md").write_text(
        "# The behaviour zoo\n\nReturns over 20 episodes of the stored float16 weights.\n"
        "seqrep's v5 references (random = uniform actions; expert = the zoo expert):\n"
        + "\n".join(refs)
        + "\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
