"""Does the pairwise-margin state objective still collapse phi? (issue 18's third defect)

The issue measured, on Hopper-v5, an effective rank of about 10 for the pairwise-margin
("contrastive") encoder against 16-30 for the others, and a frozen BC head that fitted the
expert worse on it than on a random frozen encoder (training loss 0.174 against 0.098). The
objective now scores phi through a projection head. This measures, with the full study's
data, encoder and budget, for the random encoder (the study's ``none``), the pairwise-margin
encoder and the triplet encoder:

- the effective rank of phi on the expert states, and held-out linear-probe R^2 from phi to
  the state and to the expert's action (the study's diagnostics);
- the frozen BC head's training loss on the 10 expert episodes (mean of the last 500 of the
  study's BC steps), the issue's measure;
- the frozen pairwise encoder's BC score at 1, 2 and 5 expert episodes (the study's cells).

    python bench/margin_collapse.py                     # Hopper-v5, seeds 0-2, ~15 CPU-minutes
    python bench/margin_collapse.py --env HalfCheetah-v5 --study runs/study-full

Encoders and data are cached in --study (a study run folder, the full profile's), so the study
reuses them; the table goes to bench/results/margin_collapse_<env>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
OBJECTIVES = ("none", "contrastive", "triplet")


def measure(env: str, seed: int, study: Path) -> list[dict[str, Any]]:
    from seqrep.devices import batch_to
    from seqrep.loops.probes import effective_rank, linear_probe_r2
    from seqrep.loops.runs import RunDir
    from seqrep.rl.offline import BehaviourCloning
    from seqrep.study import profile_config, run_cell, study_data
    from seqrep.study.cells import encoder_for

    cfg = profile_config("full")
    data = study_data(cfg, env, study, collect=True)
    expert = data["expert"]
    states, actions = expert.observations, expert.actions
    order = np.random.default_rng(seed).permutation(len(states))
    fit, held_out = order[: len(order) // 2], order[len(order) // 2 :]
    rows = []
    for objective in OBJECTIVES:
        encoder, _ = encoder_for(cfg, env, objective, seed, data, RunDir(study))
        with torch.no_grad():
            f = encoder(torch.from_numpy(states)).numpy()
        row: dict[str, Any] = {
            "env": env,
            "objective": objective,
            "seed": seed,
            "effective_rank": effective_rank(f[held_out]),
            "r2_state": linear_probe_r2(f[fit], states[fit], f[held_out], states[held_out]),
            "r2_action": linear_probe_r2(f[fit], actions[fit], f[held_out], actions[held_out]),
        }
        torch.manual_seed(seed)
        bc = BehaviourCloning(
            expert.obs_dim,
            expert.act_dim,
            loss=cfg.bc_loss,
            encoder=encoder,
            feature_dim=cfg.feature_dim,
            freeze_encoder=True,
        )
        gen = torch.Generator().manual_seed(seed)
        losses = [
            bc.update(batch_to(expert.sample_transitions(256, gen), "cpu"))["bc_loss"]
            for _ in range(cfg.bc_steps)
        ]
        row["frozen_bc_train_loss"] = float(np.mean(losses[-500:]))
        if objective == "contrastive":
            for n in (1, 2, 5):
                cell = {
                    "env": env,
                    "setting": "imitation",
                    "objective": objective,
                    "mode": "frozen",
                    "seed": seed,
                    "episodes": n,
                }
                row[f"frozen_bc_score_{n}ep"] = run_cell(cfg, cell, data, study)["score"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def cell(objective: str, key: str, fmt: str) -> str:
        vals = [r[key] for r in rows if r["objective"] == objective and key in r]
        return ", ".join(format(v, fmt) for v in vals) if vals else "-"

    lines = [
        "| encoder | effective rank (of 64) | R^2 to the state | R^2 to the expert action "
        "| frozen BC training loss | frozen BC score, 1 / 2 / 5 episodes |",
        "|---|---|---|---|---|---|",
    ]
    names = {"none": "random (none)", "contrastive": "pairwise margin", "triplet": "triplet"}
    for objective in OBJECTIVES:
        scores = " / ".join(cell(objective, f"frozen_bc_score_{n}ep", ".0f") for n in (1, 2, 5))
        lines.append(
            f"| {names[objective]} | {cell(objective, 'effective_rank', '.1f')} | "
            f"{cell(objective, 'r2_state', '.3f')} | {cell(objective, 'r2_action', '.3f')} | "
            f"{cell(objective, 'frozen_bc_train_loss', '.3f')} | "
            f"{scores if objective == 'contrastive' else '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--study", type=Path, default=Path("runs/study-full"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.study / "config.json").exists():
        raise SystemExit(
            f"{args.study} is not a study run folder: start the full study there first "
            f"(`seqrep study --profile full --out {args.study}`), or point --study at one"
        )
    rows = [r for s in args.seeds.split(",") for r in measure(args.env, int(s), args.study)]
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"margin_collapse_{args.env}"
    (args.results / f"{stem}.json").write_text(json.dumps(rows, indent=1) + "\n")
    text = (
        f"# Margin objectives' features on {args.env} (seeds {args.seeds}, per seed)\n\n"
        f"Reproduce: `python bench/margin_collapse.py --env {args.env} --seeds {args.seeds}`; "
        "the full study's data, encoder and budget.\n\n" + table(rows) + "\n"
    )
    (args.results / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
