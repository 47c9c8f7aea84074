"""InfoNCE across two gloo processes equals one process on the concatenated batch: the loss,
every parameter's gradient (DDP-averaged), and the gradient that reaches each rank's keys from
the other rank's queries (which a plain, non-autograd all-gather would drop)."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seqrep.distributed import shutdown
from seqrep.losses import info_nce

B, WORLD = 3, 2


def _data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 4).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(WORLD * B, 5, generator=g, dtype=torch.float64)
    y = x + 0.3 * torch.randn(WORLD * B, 5, generator=g, dtype=torch.float64)
    return net, x, y


def _rank_main(rank: int, work, init_file: str, out: str, *args) -> None:
    """One spawned rank: join the group, save what ``work(rank, *args)`` returns, leave.

    The rank leaves with ``os._exit(0)`` once its results are on disk and the group is
    destroyed: gloo's worker threads can abort the interpreter's finalization (pytorch/pytorch
    #179291), a teardown race that these tests do not check and that failed CI once."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.save(work(rank, *args), Path(out) / f"rank{rank}.pt")
    shutdown()  # barrier, then leave together
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _spawn_ranks(tmp_path: Path, work, *args) -> list[dict]:
    mp.spawn(_rank_main, args=(work, str(tmp_path / "init"), str(tmp_path), *args), nprocs=WORLD)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]


def _info_nce_rank(rank: int, cross_rank: bool) -> dict:
    net, x, y = _data()
    model = torch.nn.parallel.DistributedDataParallel(net)
    mine = slice(rank * B, (rank + 1) * B)
    z = model(torch.cat([x[mine], y[mine]]))  # one forward through DDP per step
    q, k = z[:B], z[B:]
    k.retain_grad()
    loss = info_nce(q, k, temperature=0.5, cross_rank=cross_rank)
    loss.backward()
    return {
        "loss": loss.detach(),
        "grads": [p.grad.clone() for p in net.parameters()],
        "key_grad": k.grad.clone(),
    }


def _spawn(tmp_path: Path, cross_rank: bool) -> list[dict]:
    return _spawn_ranks(tmp_path, _info_nce_rank, cross_rank)


def test_two_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    ranks = _spawn(tmp_path, cross_rank=True)
    net, x, y = _data()
    z = net(torch.cat([x, y]))
    q, k = z[: WORLD * B], z[WORLD * B :]
    k.retain_grad()
    loss = info_nce(q, k, temperature=0.5)
    loss.backward()
    # the mean of the ranks' losses is the global loss (each rank averages B of the W*B queries)
    assert torch.stack([r["loss"] for r in ranks]).mean().item() == pytest.approx(
        loss.item(), abs=1e-12
    )
    for r in ranks:  # DDP averages gradients: every rank holds the single process's
        for got, want in zip(r["grads"], [p.grad for p in net.parameters()], strict=True):
            assert torch.allclose(got, want, atol=1e-10)
    for i, r in enumerate(ranks):  # each key gets the gradient of every rank's queries
        assert torch.allclose(r["key_grad"], WORLD * k.grad[i * B : (i + 1) * B], atol=1e-10)


def test_shutdown_frees_a_data_parallel_model_caught_in_a_reference_cycle(tmp_path):
    """DDP's reducer holds the process group; a DDP model in a reference cycle outlives its
    function (a fresh process's first DDP model is in one of its own making; this test makes
    its own, so that it holds wherever the test runs). shutdown() must free it while the
    interpreter is alive, not at its finalization."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)

    def train_one_step() -> weakref.ref:
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(5, 4))
        model(torch.randn(3, 5)).sum().backward()
        model.cycle = [model]
        return weakref.ref(model)

    enabled = gc.isenabled()
    gc.disable()  # no collection by chance between the steps below
    try:
        model = train_one_step()
        assert model() is not None  # the cycle keeps it after its function returned
        shutdown()
        assert model() is None
        assert not dist.is_initialized()
    finally:
        if enabled:
            gc.enable()
        if dist.is_initialized():  # a failed assertion must not leave the group to later tests
            dist.destroy_process_group()


def test_without_cross_rank_negatives_the_objective_differs(tmp_path):
    """Per-rank negatives (cross_rank=False) train another objective: fewer candidates."""
    ranks = _spawn(tmp_path, cross_rank=False)
    net, x, y = _data()
    z = net(torch.cat([x, y]))
    loss = info_nce(z[: WORLD * B], z[WORLD * B :], temperature=0.5)
    assert abs(torch.stack([r["loss"] for r in ranks]).mean().item() - loss.item()) > 1e-3


# --------------------------------------------------------------------------- methods
# Each case builds a float64 method (same init on every rank), a global batch of WORLD * 2 rows
# and a loss call; ranks get their rows, one process gets all of them, generators start equal.


def _series_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(WORLD * 2, 20, 2, generator=g, dtype=torch.float64)
    lengths = torch.tensor([20, 17, 20, 15][: WORLD * 2])
    x[torch.arange(20)[None, :] >= lengths[:, None]] = float("nan")
    return x, lengths


def _state_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    return {
        "obs": torch.randn(WORLD * 2, 8, 3, generator=g, dtype=torch.float64),
        "action": torch.rand(WORLD * 2, 8, 2, generator=g, dtype=torch.float64) * 2 - 1,
        "reward": torch.randn(WORLD * 2, 8, generator=g, dtype=torch.float64),
    }


GEN = "generator"  # where a case's inputs take the loss's generator (else last)


def _case(name: str):
    """(method, global inputs as a tuple, rows of the global batch per input)."""
    from seqrep.methods import build_series_method
    from seqrep.methods.states import build_state_method

    torch.manual_seed(0)
    if name in ("cpc", "triplet_batch_hard"):
        method = build_series_method(
            "cpc" if name == "cpc" else "triplet",
            2,
            hidden=8,
            depth=2,
            z_dim=8,
            context_dim=8,
            steps=3,
            num_negatives=5,
            max_queries=30,  # fewer than the valid (b, t, k): the query draw is exercised
            mining="batch_hard",
        )
        inputs: tuple = _series_batch()
    elif name == "bidirectional_cpc_context":  # crops read context the loss does not score
        method = build_series_method(
            "cpc", 2, hidden=8, depth=2, z_dim=8, context_dim=8, steps=3, bidirectional=True
        )
        margins = torch.tensor([[3, 2], [0, 4], [5, 0], [1, 1]])
        inputs = (*_series_batch(), GEN, margins)
    else:
        method = build_state_method(name, 3, 2, feature_dim=8, hidden=16, window=8)
        inputs = (_state_batch(),)
    return method.double(), inputs


def _rows(inputs: tuple, part: slice) -> tuple:
    return tuple(
        {k: v[part] for k, v in x.items()} if isinstance(x, dict) else x if x is GEN else x[part]
        for x in inputs
    )


def _with_generator(inputs: tuple) -> tuple:
    gen = torch.Generator().manual_seed(5)
    if not any(x is GEN for x in inputs):
        return (*inputs, gen)
    return tuple(gen if x is GEN else x for x in inputs)


METHOD_CASES = (
    "cpc",
    "triplet_batch_hard",
    "temporal",
    "curl",
    "acl",
    "triplet",
    "deepmdp",
    "bisimulation",
    "vpn",
    "bert",
    "cpc_momentum",
    "acl_momentum",
    "bidirectional_cpc_context",
)
PLAIN_GATHER_CASES = ("cpc", "triplet_batch_hard", "temporal")


def _methods_rank(rank: int, plain_gather: bool) -> dict:
    import seqrep.distributed as sd

    if plain_gather:  # the classic bug: keys gathered without autograd (own rows keep theirs)

        def plain(
            x: torch.Tensor, equal_rows: bool = False, counts: list[int] | None = None
        ) -> tuple[torch.Tensor, int]:
            parts = [torch.empty_like(x) for _ in range(WORLD)]
            dist.all_gather(parts, x.detach())
            parts[rank] = x
            return torch.cat(parts), rank * x.shape[0]

        for module in ("seqrep.methods.cpc", "seqrep.methods.windows", "seqrep.methods.states"):
            __import__(module, fromlist=["_"]).gather_with_grad = plain
    results = {}
    for name in PLAIN_GATHER_CASES if plain_gather else METHOD_CASES:
        method, inputs = _case(name)
        loss_fn = sd.data_parallel_loss(method)
        res = loss_fn(*_with_generator(_rows(inputs, slice(rank * 2, rank * 2 + 2))))
        res.loss.backward()
        results[name] = {
            "loss": res.loss.detach(),
            "logged": res.metrics["loss"],
            "grads": {n: p.grad for n, p in method.named_parameters() if p.requires_grad},
        }
    return results


def _spawn_methods(tmp_path: Path, plain_gather: bool) -> list[dict]:
    return _spawn_ranks(tmp_path, _methods_rank, plain_gather)


def _single_process(name: str) -> tuple[torch.Tensor, float, dict[str, torch.Tensor]]:
    """One process's loss, logged loss and gradients on the global batch."""
    method, inputs = _case(name)
    res = method.loss(*_with_generator(inputs))
    res.loss.backward()
    grads = {n: p.grad for n, p in method.named_parameters() if p.requires_grad}
    return res.loss.detach(), res.metrics["loss"], grads


def _zero_if_none(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if g is None else g


def test_methods_on_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    """CPC (also bidirectional on crops with context), batch-hard triplet on series windows, and
    the state objectives: the loss and every parameter's gradient on each
    rank equal one process on the concatenated batch (queries, crops and noise included)."""
    ranks = _spawn_methods(tmp_path, plain_gather=False)
    for name in METHOD_CASES:
        loss, logged, grads = _single_process(name)
        # The ranks' losses average to the global one; each logs the global value.
        mean = torch.stack([r[name]["loss"] for r in ranks]).mean().item()
        assert mean == pytest.approx(loss.item(), abs=1e-9), name
        for r in ranks:
            assert r[name]["logged"] == pytest.approx(logged, abs=1e-9), name
            for n, want in grads.items():
                got = r[name]["grads"][n]
                want = _zero_if_none(want, got if got is not None else torch.zeros(1))
                assert torch.allclose(_zero_if_none(got, want), want, atol=1e-8), (name, n)


def test_a_gather_without_autograd_gives_other_gradients(tmp_path):
    """The test above can fail: with keys gathered without autograd (the other ranks' queries
    then never reach this rank's encoder), the gradients differ from one process's."""
    ranks = _spawn_methods(tmp_path, plain_gather=True)
    for name in PLAIN_GATHER_CASES:
        _, _, grads = _single_process(name)
        enc = next(k for k in grads if k.startswith("encoder"))
        worst = max((r[name]["grads"][enc] - grads[enc]).abs().max().item() for r in ranks)
        assert worst > 1e-6, name


# --------------------------------------------------------------------------- torchrun
TINY = ["--data", "GunPoint", "--hidden", "8", "--depth", "2", "--z-dim", "16"]
TINY += ["--context-dim", "16", "--batch-size", "4", "--log-every", "10", "--quiet"]


def _torchrun(out: Path, iterations: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "seqrep", "pretrain", *TINY, "--iterations", str(iterations)]
    cmd += ["--checkpoint-every", "10", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )


def _worker_of_rank(launcher: int, wanted: int) -> int:
    """The pid of torchrun's worker with RANK=wanted."""
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={wanted}".encode() in environ:
            return int(child)
    raise AssertionError("no worker found")


def _losses(folder: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (folder / "metrics.jsonl").open())]


@pytest.mark.long
def test_torchrun_pretraining_killed_and_resumed_continues_the_same_metrics(tmp_path):
    """Two ranks under torchrun: rank 1 is killed after the first checkpoint, torchrun takes
    the job down (no hang), and the rerun resumes the same curve as an uninterrupted 2-rank run,
    which in turn equals one process at twice the batch."""
    whole = _torchrun(tmp_path / "whole", 30)
    assert whole.wait(timeout=300) == 0, whole.stdout.read()  # type: ignore[union-attr]
    job = _torchrun(tmp_path / "cut", 30)
    ckpt = tmp_path / "cut" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.02)
    assert job.poll() is None, "finished before it could be killed; raise the iterations"
    os.kill(_worker_of_rank(job.pid, 1), signal.SIGKILL)
    assert job.wait(timeout=120) != 0  # the surviving rank is taken down, not left waiting
    log = job.stdout.read()  # type: ignore[union-attr]
    assert "SIGKILL" in log or "Signal 9" in log, log
    cut = _losses(tmp_path / "cut")
    assert 0 < len(cut) < 3  # it really stopped part-way
    resumed = _torchrun(tmp_path / "cut", 30)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()  # type: ignore[union-attr]
    want = _losses(tmp_path / "whole")
    got = _losses(tmp_path / "cut")
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(10, 31, 10))
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)

    # ... and the 2-rank curve is one process's at batch 8 (first steps, before float drift)
    from seqrep.data.series import load_normalised
    from seqrep.loops.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(
        hidden=8, depth=2, z_dim=16, context_dim=16, batch_size=8, iterations=30, log_every=10
    )
    train, _ = load_normalised("GunPoint", "")
    torch.set_num_threads(1)
    from seqrep.loops.runs import Prepared, RunDir

    run = RunDir.open(tmp_path / "single", Prepared("pretrain", cfg))
    pretrain(cfg, train, run, quiet=True)
    single = [v for _, v in _losses(tmp_path / "single")]
    assert single == pytest.approx([v for _, v in want[:3]], rel=1e-5)


@pytest.mark.long
def test_torchrun_state_pretraining_equals_one_process_at_twice_the_batch(tmp_path):
    """`pretrain-states` under torchrun: 2 ranks at batch 16 give one process's curve at 32
    (state CPC: its queries, negatives and windows drawn for the global batch)."""
    pytest.importorskip("minari")
    env = {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path / "m"), "OMP_NUM_THREADS": "1"}
    seqrep = [sys.executable, "-m", "seqrep"]
    collect = ["collect", "--steps", "1000", "--dataset-id", "t/pend/random-v0"]
    subprocess.run([*seqrep, *collect], env=env, check=True, capture_output=True)
    args = ["pretrain-states", "--data", "t/pend/random-v0", "--objective", "cpc", "--quiet"]
    args += ["--steps", "40", "--log-every", "10", "--hidden", "32", "--feature-dim", "8"]
    ranks = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    two = subprocess.run(
        [*ranks, "-m", "seqrep", *args, "--batch-size", "16", "--out", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    one = [*seqrep, *args, "--batch-size", "32", "--out", str(tmp_path / "one")]
    subprocess.run(one, env=env, check=True, capture_output=True)
    assert [v for _, v in _losses(tmp_path / "two")] == pytest.approx(
        [v for _, v in _losses(tmp_path / "one")], rel=1e-5
    )


# --------------------------------------------------------------------------- Ray
def test_ray_missing_says_how_to_install(monkeypatch):
    from seqrep.loops.sweep import connect

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    with pytest.raises(ImportError, match=r"pip install 'seqrep\[ray\]'"):
        connect("local")


@pytest.mark.long
def test_bench_series_on_ray_appends_the_same_rows_as_in_process(tmp_path):
    """Each (data set, method, seed) a Ray task; the driver writes the same rows, resumably."""
    pytest.importorskip("ray")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "seqrep", "bench", "series", "--datasets", "ItalyPowerDemand"]
    base += ["--methods", "raw,random", "--seeds", "0,1", "--threads", "1"]
    local, on_ray = tmp_path / "local.json", tmp_path / "ray.json"
    subprocess.run([*base, "--out", str(local)], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [*base, "--out", str(on_ray), "--ray"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]

    def key(rows: list[dict]) -> list[tuple]:
        return sorted((r["dataset"], r["method"], r["seed"], r["accuracy"]) for r in rows)

    assert key(json.loads(on_ray.read_text())) == key(json.loads(local.read_text()))
    assert len(json.loads(on_ray.read_text())) == 3  # raw once, random for both seeds
