"""Slow checks (minutes): `make test-slow` or `pytest -m slow`."""

from __future__ import annotations

import math

import pytest

from seqrep.loops.mi_bench import MIBenchConfig, run_mi_bench
from seqrep.loops.runs import Prepared, RunDir

pytestmark = pytest.mark.slow


def test_mi_bench_default_run_shows_the_published_picture(tmp_path):
    """The claims of Poole et al.'s benchmark on the default `seqrep mi-bench` run."""
    cfg = MIBenchConfig()
    summary = run_mi_bench(cfg, RunDir.open(tmp_path / "mi", Prepared("mi-bench", cfg)), quiet=True)
    rows = {r["true_mi"]: r for r in summary["rows"]}
    log_k = math.log(cfg.batch_size)
    for critic in cfg.critics:
        nce = {mi: rows[mi][f"{critic}/infonce/mean"] for mi in rows}
        # Tracks the truth at 2 nats: within the bound's own bias at K = 64 plus training error.
        assert abs(nce[2.0] - 2.0) < 0.6
        # Saturates just under log K at 8-10 nats, and never above it.
        for mi in (8.0, 10.0):
            assert log_k - 0.3 < nce[mi] <= log_k
        # NWJ's spread at 10 nats is far larger than InfoNCE's.
        assert rows[10.0][f"{critic}/nwj/std"] > 5 * rows[10.0][f"{critic}/infonce/std"]
    # With the concat critic NWJ goes clearly past log K at 10 nats.
    assert rows[10.0]["concat/nwj/mean"] > log_k + 1.0
