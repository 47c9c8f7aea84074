#!/usr/bin/env bash
# The first thing a GPU session runs: every verb's core path, briefly, on the GPU and on the CPU,
# with the numbers side by side and checked against each other. About 4 minutes on one GPU.
#
#   bash bench/gpu_check.sh              # writes bench/results/gpu_check.{md,json}
#   DEVICE=cpu bash bench/gpu_check.sh   # the same script against itself (checks the script)
#
# The GPU draws its own random streams (crops, queries, noise), so runs agree in distribution,
# not bit for bit: each row states its tolerance. Data sets and replay buffers sample indices
# with a CPU generator, so offline learners see the same batches on both devices.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-runs/gpu-check}
RESULTS=${RESULTS:-bench/results}
export MUJOCO_GL=${MUJOCO_GL:-egl} MINARI_DATASETS_PATH="$OUT/minari"
rm -rf "$OUT" && mkdir -p "$OUT" "$RESULTS"
seqrep() { "$PY" -m seqrep "$@" --quiet; }

# Two sides, each in its own folders: the CPU reference, then $DEVICE (cpu too in a self-check).
for side in reference device; do
  dev=cpu; [ "$side" = device ] && dev="$DEVICE"
  d="$OUT/$side"
  seqrep pretrain --data GunPoint --iterations 100 --device "$dev" --out "$d/pretrain" > "$OUT/$side.pretrain.txt"
  "$PY" -m seqrep probe "$d/pretrain" --device "$dev" > "$OUT/$side.probe.txt"
  seqrep mi-bench --mi-levels 2,6 --steps-per-level 300 --device "$dev" --out "$d/mi"
  seqrep sac --env Pendulum-v1 --total-steps 3000 --learning-starts 500 --eval-every 3000 \
    --device "$dev" --out "$d/sac"
  "$PY" -m seqrep collect --env Pendulum-v1 --policy "$d/sac" --steps 2000 --device "$dev" \
    --dataset-id "seqrep/gpu-check/$side-v0" > /dev/null
  seqrep bc --data "seqrep/gpu-check/$side-v0" --steps 2000 --eval-every 2000 --device "$dev" \
    --out "$d/bc"
  seqrep offline-rl --data "seqrep/gpu-check/$side-v0" --steps 2000 --eval-every 2000 \
    --device "$dev" --out "$d/td3bc"
  seqrep curl --task seqrep-dot --env-steps 1500 --init-steps 300 --batch-size 64 \
    --eval-every 1500 --eval-episodes 3 --device "$dev" --out "$d/curl"
  seqrep study --profile quick --envs Hopper-v5 --objectives none,cpc,temporal --seeds 0 \
    --pretrain-transitions 5000 --pretrain-steps 200 --bc-steps 500 --eval-episodes 2 \
    --device "$dev" --out "$d/study" > /dev/null
done

"$PY" - "$OUT" "$DEVICE" "$RESULTS" <<'EOF'
import csv, json, sys
from pathlib import Path

out, device, results = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


def last(folder, key):
    rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r][-1]


def numbers(side):
    d = out / side
    probe = (out / f"{side}.probe.txt").read_text()
    mi = json.loads((d / "mi" / "results.json").read_text())
    with open(d / "study" / "cells.csv") as f:
        study = [float(r["score"]) for r in csv.DictReader(f)]
    return {
        "pretrain: CPC loss at step 100": last(d / "pretrain", "loss"),
        "probe: SVM accuracy": float(probe.split("SVM test accuracy ")[1].split()[0]),
        "mi-bench: InfoNCE estimate at 6 nats": mi["rows"][1]["separable/infonce/mean"],
        "sac: Pendulum return at 3k steps": last(d / "sac", "eval_return_mean"),
        "bc: return": last(d / "bc", "eval_return_mean"),
        "offline-rl: return": last(d / "td3bc", "eval_return_mean"),
        "curl: seqrep-dot return at 1.5k steps": last(d / "curl", "eval_return_mean"),
        "study: mean normalised score": sum(study) / len(study),
    }


# (absolute tolerance, relative tolerance): the larger applies
TOLERANCE = {
    "pretrain: CPC loss at step 100": (0.0, 0.15),
    "probe: SVM accuracy": (0.05, 0.0),
    "mi-bench: InfoNCE estimate at 6 nats": (0.5, 0.0),
    "sac: Pendulum return at 3k steps": (400.0, 0.0),
    "bc: return": (400.0, 0.0),
    "offline-rl: return": (400.0, 0.0),
    "curl: seqrep-dot return at 1.5k steps": (0.0, 0.5),
    "study: mean normalised score": (25.0, 0.0),
}
cpu, dev = numbers("reference"), numbers("device")
rows, lines = [], [f"# GPU check: every verb on cpu and {device}", "",
                   "`bash bench/gpu_check.sh`", "",
                   "| verb: number | cpu | " + device + " | tolerance | ok |", "|---|---|---|---|---|"]
for key, (abs_tol, rel_tol) in TOLERANCE.items():
    tol = max(abs_tol, rel_tol * abs(cpu[key]))
    ok = abs(cpu[key] - dev[key]) <= tol
    rows.append({"check": key, "cpu": cpu[key], device: dev[key], "tolerance": tol, "ok": ok})
    lines.append(f"| {key} | {cpu[key]:.3f} | {dev[key]:.3f} | ±{tol:.3f} | {'yes' if ok else 'NO'} |")
stem = "gpu_check" if device == "cuda" else f"gpu_check_{device}"
(results / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
(results / f"{stem}.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if all(r["ok"] for r in rows) else 1)
EOF
