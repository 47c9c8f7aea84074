"""Data-parallel pretraining throughput: samples/s on 1 and 2 processes, and what communication costs.

    python bench/scale.py                     # CPU: 1 and 2 processes, one thread each
    python bench/scale.py --device cuda --procs 1 --batch-sizes 512,1024,2048,4096   # one GPU

Every process runs seqrep's own pretraining loop (``seqrep.loops.pretrain.pretrain``, CPC by default) in a
gloo (CPU) or nccl (GPU) process group, exactly as ``torchrun -m seqrep pretrain`` does, at a
per-process batch of B series. Throughput is the global batch (W * B) times the steps over the
loop's time, after a warm-up run that is not counted.

Two floors separate what the machine costs from what data parallelism costs: W unconnected
single-process jobs run at the same time (same per-process work, sharing cores, caches and memory
bandwidth, but no communication) give the speedup ceiling W * t(1) / t(W unconnected); the
communication share of a data-parallel step is 1 - t(W unconnected) / t(W ranks): the gathers of
embeddings, DDP's gradient all-reduce and the metric reductions. Writes
bench/results/scale.{json,md}.

On a 2-core machine run it with nothing else busy: another heavy process on a core makes the
2-process run wait for it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

RESULTS = Path(__file__).resolve().parent / "results"


def _worker(rank: int, world: int, init: str, args: dict[str, Any], out: str) -> None:
    torch.set_num_threads(args["threads"])
    grouped = world > 1 and not args["independent"]
    if grouped:
        backend = "nccl" if args["device"] == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, init_method=f"file://{init}", rank=rank, world_size=world)
    from seqrep.data.series import load_normalised
    from seqrep.loops.pretrain import PretrainConfig, pretrain

    train, _ = load_normalised(args["data"], "")
    cfg = PretrainConfig(
        data=args["data"],
        method=args["method"],
        batch_size=args["batch"],
        window=args["window"],
        device=args["device"],
    )
    times = []
    for phase, iterations in enumerate((args["warmup"], args["iterations"])):
        cfg.iterations = iterations
        _file_barrier(Path(init).with_suffix(f".phase{phase}"), rank, world)
        t0 = time.perf_counter()
        pretrain(cfg, train, None, quiet=True)
        if args["device"] == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if rank == 0:
        Path(out).write_text(json.dumps({"seconds": times[1]}))
    from seqrep.distributed import shutdown

    shutdown()


def _file_barrier(folder: Path, rank: int, world: int) -> None:
    """Wait until every process arrives (connected or not), so that the timed runs overlap."""
    folder.mkdir(exist_ok=True)
    (folder / str(rank)).touch()
    while len(list(folder.iterdir())) < world:
        time.sleep(0.001)


def measure(world: int, args: dict[str, Any], independent: bool = False) -> float:
    """Seconds per optimiser step of ``world`` processes at per-process batch args['batch']:
    one data-parallel job, or (``independent``) as many unconnected single-process jobs at
    once, which share the machine but not a gradient."""
    args = {**args, "independent": independent}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        mp.spawn(_worker, args=(world, os.path.join(tmp, "init"), args, out), nprocs=world)
        return json.loads(Path(out).read_text())["seconds"] / args["iterations"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="OSULeaf", help="a shipped set with enough series")
    parser.add_argument("--method", default="cpc")
    parser.add_argument("--procs", default="1,2", help="process counts (the first is the base)")
    parser.add_argument("--batch-sizes", default="8,32,64", help="per-process batch sizes")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=40, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    procs = [int(p) for p in args.procs.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    from seqrep.data.series import load_normalised

    # The loop caps the global batch at the data set (seqrep.loops.pretrain.global_batch_size): a larger
    # W * B would time fewer series than the samples/s below counts.
    n_series = len(load_normalised(args.data, "")[0])
    too_big = [(b, w) for b in batches for w in procs if b * w > n_series]
    if too_big:
        b, w = too_big[0]
        parser.error(
            f"{w} processes x batch {b} = {w * b} series per step, but {args.data} has "
            f"{n_series} training series; use batch sizes up to {n_series // max(procs)} "
            "or a larger data set (--data)"
        )
    rows = []
    for batch in batches:
        base = None
        for world in procs:
            opts = {**vars(args), "batch": batch, "results": None}
            step = measure(world, opts)
            base = base if base is not None else (world, step)
            row = {
                "batch_per_process": batch,
                "processes": world,
                "step_seconds": step,
                "samples_per_second": world * batch / step,
            }
            if world != base[0]:
                alone = measure(world, opts, independent=True)
                row["independent_step_seconds"] = alone
                row["speedup"] = row["samples_per_second"] / (base[0] * batch / base[1])
                row["speedup_ceiling"] = world / base[0] * base[1] / alone
                row["communication_share"] = max(0.0, 1.0 - alone / step)
            rows.append(row)
            print(json.dumps(row))
    meta = {
        "data": args.data,
        "method": args.method,
        "window": args.window,
        "iterations": args.iterations,
        "threads_per_process": args.threads,
        "device": args.device,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    stem = "scale" if args.device == "cpu" else "scale_gpu"
    (args.results / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# Data-parallel pretraining throughput ({args.method} on {args.data}, {args.device})",
        "",
        "`" + " ".join(["python bench/scale.py", *sys.argv[1:]]) + "`",
        "",
        f"{meta['cpu_count']} CPUs, {args.threads} torch thread(s) per process, window "
        f"{args.window}, {args.iterations} timed steps after {args.warmup} warm-up steps; "
        "speedup is samples/s against the first process count at the same per-process batch.",
        "",
        "| batch / process | processes | step (s) | samples/s | speedup | ceiling (unconnected "
        "jobs) | communication share |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        ceiling = f"{r['speedup_ceiling']:.2f}x" if "speedup_ceiling" in r else "-"
        comm = f"{100 * r['communication_share']:.0f}%" if "communication_share" in r else "-"
        lines.append(
            f"| {r['batch_per_process']} | {r['processes']} | {r['step_seconds']:.3f} | "
            f"{r['samples_per_second']:.0f} | {speed} | {ceiling} | {comm} |"
        )
    (args.results / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
