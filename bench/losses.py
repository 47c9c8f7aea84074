"""Forward+backward time of seqrep's losses against a floor and peer libraries, on CPU.

Every (case, batch size) runs in its own subprocess under an address-space limit, so a peer that
runs out of memory is recorded as "oom" instead of taking the benchmark down, and each process
reports its own peak memory. Each subprocess also times the floor
``F.cross_entropy(q @ k.T / t, arange(B))`` interleaved with its subject, so every ratio compares
two measurements taken side by side in the same process.

    python bench/losses.py                 # B in 256, 1024, 4096, 16384; writes bench/results/
    python bench/losses.py --sizes 256,1024 --repeats 3

Writes bench/results/losses.json and bench/results/losses.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DIM, TEMPERATURE, MARGIN = 128, 0.1, 0.2
MEMORY_LIMIT_GIB = 22  # the machine has 24 GiB: stay below it rather than swap

CASES = {
    "info_nce": "seqrep info_nce, in-batch, dot / t",
    "info_nce_cosine": "seqrep info_nce, in-batch, cosine / t",
    "pml_ntxent": "pytorch-metric-learning NTXentLoss on [q; k], labels [i; i]",
    "lightly_ntxent": "lightly NTXentLoss(q, k)",
    "batch_triplet": "seqrep batch_triplet(mining='batch_hard')",
    "pml_batch_hard": "pytorch-metric-learning BatchHardMiner + TripletMarginLoss",
}


# ----------------------------------------------------------------------------- worker side
def _make_subject(case: str, b: int):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    q = torch.randn(b, DIM, generator=g, requires_grad=True)
    k = torch.randn(b, DIM, generator=g, requires_grad=True)
    labels = torch.arange(b) // 4  # P x K sampling: B/4 classes of 4

    def floor():
        return F.cross_entropy(q @ k.T / TEMPERATURE, torch.arange(b))

    if case == "info_nce":
        from seqrep.losses import info_nce

        return floor, lambda: info_nce(q, k, temperature=TEMPERATURE), (q, k)
    if case == "info_nce_cosine":
        from seqrep.losses import info_nce

        return floor, lambda: info_nce(q, k, similarity="cosine", temperature=TEMPERATURE), (q, k)
    if case == "pml_ntxent":
        from pytorch_metric_learning.losses import NTXentLoss

        loss = NTXentLoss(temperature=TEMPERATURE)
        pair_labels = torch.cat([torch.arange(b), torch.arange(b)])
        return floor, lambda: loss(torch.cat([q, k]), pair_labels), (q, k)
    if case == "lightly_ntxent":
        from lightly.loss import NTXentLoss  # needs torchvision: see the report

        loss = NTXentLoss(temperature=TEMPERATURE)
        return floor, lambda: loss(q, k), (q, k)
    if case == "batch_triplet":
        from seqrep.losses import batch_triplet

        return floor, lambda: batch_triplet(q, labels, MARGIN, mining="batch_hard"), (q,)
    if case == "pml_batch_hard":
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.losses import TripletMarginLoss
        from pytorch_metric_learning.miners import BatchHardMiner

        distance = LpDistance(normalize_embeddings=False)
        miner, loss = (
            BatchHardMiner(distance=distance),
            TripletMarginLoss(MARGIN, distance=distance),
        )
        return floor, lambda: loss(q, labels, miner(q, labels)), (q,)
    raise ValueError(f"unknown case {case!r}")


def _time_once(fn, leaves) -> float:
    for t in leaves:
        t.grad = None
    start = time.perf_counter()
    fn().backward()
    return time.perf_counter() - start


def worker(case: str, b: int, repeats: int) -> dict:
    limit = MEMORY_LIMIT_GIB * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out: dict = {"case": case, "B": b}
    try:
        floor, subject, leaves = _make_subject(case, b)
        _time_once(floor, leaves)
        _time_once(subject, leaves)  # warm-up (and the first out-of-memory, if any)
        floors, subjects = [], []
        for i in range(repeats):
            # Alternate the order: whichever runs second in a pair tends to find warm caches.
            if i % 2:
                floors.append(_time_once(floor, leaves))
                subjects.append(_time_once(subject, leaves))
            else:
                subjects.append(_time_once(subject, leaves))
                floors.append(_time_once(floor, leaves))
        out.update(
            status="ok", floor_s=statistics.median(floors), seconds=statistics.median(subjects)
        )
        out["ratio_to_floor"] = out["seconds"] / out["floor_s"]
    except ImportError as e:
        out.update(status="unavailable", error=f"{type(e).__name__}: {e}")
    except (MemoryError, RuntimeError) as e:
        msg = str(e).splitlines()[0][:200]
        out.update(
            status="oom" if "alloc" in msg.lower() or isinstance(e, MemoryError) else "error",
            error=msg,
        )
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


# ----------------------------------------------------------------------------- driver side
def run_case(case: str, b: int, repeats: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", case, "--sizes", str(b), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"case": case, "B": b, "status": "crashed", "error": proc.stderr.strip()[-300:]}


def _fmt(row: dict | None) -> str:
    if row is None:
        return "-"
    if row["status"] != "ok":
        return {"oom": "out of memory", "unavailable": "not installable"}.get(
            row["status"], row["status"]
        )
    return f"{row['seconds'] * 1e3:,.1f}"


def markdown(results: list[dict], sizes: list[int]) -> str:
    by = {(r["case"], r["B"]): r for r in results}
    lines = [
        f"Forward+backward on CPU ({os.cpu_count()} cores, torch threads default), D={DIM}, "
        f"median ms; ratio = this case / floor measured in the same process.",
        "",
        "| B | floor ms | info_nce ms (x floor) | info_nce cosine ms (x floor) | PML NTXent ms "
        "| info_nce vs PML | batch_triplet ms | PML batch-hard ms | batch_triplet vs PML "
        "| peak RSS GiB (info_nce / batch_triplet) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in sizes:
        nce, cos = by.get(("info_nce", b)), by.get(("info_nce_cosine", b))
        pml, trip, pbh = (
            by.get(("pml_ntxent", b)),
            by.get(("batch_triplet", b)),
            by.get(("pml_batch_hard", b)),
        )

        def ratio(a, c):
            if a and c and a["status"] == "ok" and c["status"] == "ok":
                return f"{c['seconds'] / a['seconds']:.1f}x faster"
            return "-"

        def with_floor(r):
            return (
                f"{_fmt(r)} ({r['ratio_to_floor']:.2f}x)" if r and r["status"] == "ok" else _fmt(r)
            )

        floor = f"{nce['floor_s'] * 1e3:,.1f}" if nce and nce["status"] == "ok" else "-"
        rss = " / ".join(f"{r['peak_rss_gib']:.1f}" for r in (nce, trip) if r)
        lines.append(
            f"| {b} | {floor} | {with_floor(nce)} | {with_floor(cos)} | {_fmt(pml)} | "
            f"{ratio(nce, pml)} | {_fmt(trip)} | {_fmt(pbh)} | {ratio(trip, pbh)} | {rss} |"
        )
    lines += [
        "",
        f"out of memory = the case exceeded the {MEMORY_LIMIT_GIB} GiB address-space cap its "
        "process ran under (PML's NTXentLoss builds a positive-pairs x negative-pairs matrix, "
        "O(B^3)).",
    ]
    lightly = [r for r in results if r["case"] == "lightly_ntxent"]
    if lightly and lightly[0]["status"] != "ok":
        lines += [
            "",
            f"lightly: not measured ({lightly[0].get('error', lightly[0]['status'])}). "
            "lightly requires torchvision, and PyPI's torchvision needs a newer (CUDA) torch "
            "than the 2.13 CPU build seqrep is pinned to here.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="256,1024,4096,16384")
    p.add_argument("--repeats", type=int, default=0, help="0: 20 for B<=1024, else 4")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--render", action="store_true", help="rewrite losses.md from losses.json")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        reps = args.repeats or (20 if sizes[0] <= 1024 else 4)
        print(json.dumps(worker(args.worker, sizes[0], reps)))
        return
    if args.render:
        results = json.loads((RESULTS / "losses.json").read_text())["results"]
        sizes = sorted({r["B"] for r in results})
        (RESULTS / "losses.md").write_text("# bench/losses.py\n\n" + markdown(results, sizes))
        return
    results = []
    for b in sizes:
        for case in args.cases.split(","):
            row = run_case(case, b, args.repeats)
            results.append(row)
            print(
                f"B={b:6d} {case:16s} {row['status']:11s} "
                f"{_fmt(row):>14s} ms  ratio/floor={row.get('ratio_to_floor', float('nan')):.2f}  "
                f"rss={row.get('peak_rss_gib', float('nan')):.1f} GiB",
                flush=True,
            )
    RESULTS.mkdir(exist_ok=True)
    import torch

    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "dim": DIM,
        "temperature": TEMPERATURE,
        "memory_limit_gib": MEMORY_LIMIT_GIB,
        "cases": CASES,
    }
    (RESULTS / "losses.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    table = markdown(results, sizes)
    (RESULTS / "losses.md").write_text("# bench/losses.py\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
