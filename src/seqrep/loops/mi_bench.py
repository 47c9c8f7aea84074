"""The correlated-Gaussian MI benchmark of Poole et al. 2019 (``seqrep mi-bench``).

For each critic (separable g(x)^T h(y), concat MLP([x, y])) and each estimator (InfoNCE, NWJ) a
fresh critic is trained to maximise that estimator's bound while the true MI is stepped through
``mi_levels``, a fresh batch of K pairs every step. The per-step bound value is the estimate; a
level's figure is the mean and standard deviation over the second half of its steps (the critic
has adapted by then). Beside them, the bound evaluated with the optimal critic
log p(y|x) - log p(y) separates the bound's own ceiling (InfoNCE <= log K) from training error.

Checkpoints after each level; rerunning into the same folder resumes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from seqrep.critics import ConcatCritic, Critic, SeparableMLPCritic
from seqrep.devices import resolve_device
from seqrep.loops.progress import progress_bar
from seqrep.loops.runs import Prepared, RunDir
from seqrep.mi import (
    correlated_gaussian,
    gaussian_log_density_ratio,
    infonce_lower_bound,
    nwj_lower_bound,
    rho_for_mi,
)
from seqrep.nets import mlp
from seqrep.options import check_options

__all__ = ["ESTIMATORS", "MIBenchConfig", "build_critic", "prepare_mi_bench", "run_mi_bench"]

ESTIMATORS = {"infonce": infonce_lower_bound, "nwj": nwj_lower_bound}


MAX_MI_PER_DIM = 15.0


@dataclass
class MIBenchConfig:
    """Settings of the correlated-Gaussian benchmark. Paper values: steps_per_level=4000."""

    dim: int = field(default=20, metadata={"help": "dimension d of x and y"})
    batch_size: int = field(
        default=64, metadata={"help": "K, pairs per batch (log K caps InfoNCE)"}
    )
    mi_levels: tuple[float, ...] = field(
        default=(2.0, 4.0, 6.0, 8.0, 10.0), metadata={"help": "true MI per stage, nats"}
    )
    steps_per_level: int = field(
        default=500, metadata={"help": "Adam steps per MI level (paper: 4000)"}
    )
    critics: tuple[str, ...] = field(
        default=("separable", "concat"), metadata={"help": "critics: separable, concat"}
    )
    estimators: tuple[str, ...] = field(
        default=("infonce", "nwj"), metadata={"help": "bounds: infonce, nwj"}
    )
    hidden: int = field(default=256, metadata={"help": "hidden units (2 hidden layers)"})
    embed_dim: int = field(default=32, metadata={"help": "separable critic's embedding size"})
    lr: float = field(default=5e-4, metadata={"help": "Adam learning rate"})
    ema_span: int = field(default=200, metadata={"help": "EMA span of the plotted curves"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})

    def validate(self) -> None:
        unknown = set(self.critics) - {"separable", "concat"}
        if unknown:
            raise ValueError(f"unknown critic(s) {sorted(unknown)}; choose separable, concat")
        unknown = set(self.estimators) - set(ESTIMATORS)
        if unknown:
            raise ValueError(f"unknown estimator(s) {sorted(unknown)}; choose {sorted(ESTIMATORS)}")
        if self.batch_size < 2 or self.steps_per_level < 2:
            raise ValueError("--batch-size and --steps-per-level must be >= 2")
        check_options(self, positive=("dim", "hidden", "embed_dim", "lr", "ema_span"))
        if not self.mi_levels or min(self.mi_levels) < 0:
            raise ValueError("--mi-levels must be a non-empty list of MI values >= 0 (nats)")
        # Beyond about 15 nats per dimension 1 - rho^2 = exp(-2 I / d) drops under 1e-13 and the
        # correlation rounds to 1: the Gaussian has no density left to sample or score.
        top = MAX_MI_PER_DIM * self.dim
        if max(self.mi_levels) > top:
            raise ValueError(
                f"--mi-levels {max(self.mi_levels):g} nats is more than --dim {self.dim} can "
                f"hold (at most {MAX_MI_PER_DIM} nats per dimension, {top:g} here): lower the "
                "level or raise --dim"
            )


def prepare_mi_bench(cfg: MIBenchConfig) -> Prepared:
    """``seqrep mi-bench``'s work, checked: the validated config (the benchmark draws its own
    data); nothing is written."""
    cfg.validate()
    return Prepared("mi-bench", cfg)


def build_critic(kind: str, dim: int, hidden: int, embed_dim: int) -> Critic:
    """Poole et al.'s critics: MLPs with two hidden ReLU layers."""
    if kind == "separable":
        return SeparableMLPCritic(
            mlp(dim, [hidden, hidden], embed_dim), mlp(dim, [hidden, hidden], embed_dim)
        )
    if kind == "concat":
        return ConcatCritic(mlp(2 * dim, [hidden, hidden], 1))
    raise ValueError(f"unknown critic {kind!r}; choose 'separable' or 'concat'")


def _ema(values: np.ndarray, span: int) -> np.ndarray:
    alpha, out, acc = 2.0 / (span + 1.0), np.empty_like(values), values[0]
    for i, v in enumerate(values):
        acc = alpha * v + (1.0 - alpha) * acc
        out[i] = acc
    return out


# Each bound's optimal critic is the log density ratio plus a constant: 0 for InfoNCE (which is
# shift-invariant), 1 for NWJ (whose optimum f* = 1 + log p(y|x)/p(y) makes it unbiased).
OPTIMAL_SHIFT = {"infonce": 0.0, "nwj": 1.0}


def _true_critic_bounds(cfg: MIBenchConfig, gen: torch.Generator) -> dict[str, list[float]]:
    """Each bound with its optimal critic, averaged over 200 fresh batches per level."""
    out: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    for mi in cfg.mi_levels:
        rho = rho_for_mi(mi, cfg.dim)
        vals: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
        for _ in range(200):
            x, y, _ = correlated_gaussian(cfg.batch_size, cfg.dim, mi, gen)
            scores = gaussian_log_density_ratio(x.double(), y.double(), rho)
            for name, bound in ESTIMATORS.items():
                vals[name].append(float(bound(scores + OPTIMAL_SHIFT[name])))
        for name in ESTIMATORS:
            out[name].append(float(np.mean(vals[name])))
    return out


def run_mi_bench(cfg: MIBenchConfig, run: RunDir, *, quiet: bool = False) -> dict[str, Any]:
    """Train every (critic, estimator) pair on the MI schedule; write table, plot, report.

    Returns the summary dict also written to ``results.json``.
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    state = run.load_checkpoint() or {"traces": {}, "seconds": {}}
    combos = [(c, e) for c in cfg.critics for e in cfg.estimators]
    n_levels = len(cfg.mi_levels)
    total = len(combos) * n_levels * cfg.steps_per_level
    done_steps = sum(len(t) for t in state["traces"].values())
    with progress_bar("mi-bench", total, disable=quiet) as advance:
        advance(done_steps)
        for ci, (critic_kind, est) in enumerate(combos):
            key = f"{critic_kind}/{est}"
            trace: list[float] = state["traces"].setdefault(key, [])
            if len(trace) == n_levels * cfg.steps_per_level:
                continue
            torch.manual_seed(cfg.seed * 1000 + ci)
            critic = build_critic(critic_kind, cfg.dim, cfg.hidden, cfg.embed_dim).to(device)
            opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
            gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + ci)
            if state.get("current") == key:  # resume mid-combo at a level boundary
                critic.load_state_dict(state["model"])
                opt.load_state_dict(state["optim"])
                gen.set_state(state["gen"])
            bound_fn = ESTIMATORS[est]
            t0 = time.perf_counter() - state["seconds"].get(key, 0.0)
            for level in range(len(trace) // cfg.steps_per_level, n_levels):
                mi = cfg.mi_levels[level]
                for _ in range(cfg.steps_per_level):
                    x, y, _ = correlated_gaussian(cfg.batch_size, cfg.dim, mi, gen)
                    bound = bound_fn(critic.pairwise(x, y))
                    opt.zero_grad(set_to_none=True)
                    (-bound).backward()
                    opt.step()
                    trace.append(bound.item())
                    advance(1, critic=key, mi=mi, estimate=trace[-1])
                state["seconds"][key] = time.perf_counter() - t0
                state.update(
                    current=key,
                    model=critic.state_dict(),
                    optim=opt.state_dict(),
                    gen=gen.get_state(),
                )
                run.save_checkpoint(state)
                run.log(
                    {
                        "critic": critic_kind,
                        "estimator": est,
                        "mi": mi,
                        "level_mean": _level_stats(trace, level, cfg)[0],
                    }
                )
    summary = _summarise(cfg, state)
    run.write_json("results.json", summary)
    _plot(cfg, state, summary, run)
    run.write_text("report.md", _report(cfg, summary))
    return summary


def _level_stats(trace: list[float], level: int, cfg: MIBenchConfig) -> tuple[float, float]:
    s = cfg.steps_per_level
    tail = np.asarray(trace[level * s + s // 2 : (level + 1) * s])
    return float(tail.mean()), float(tail.std())


def _summarise(cfg: MIBenchConfig, state: dict[str, Any]) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    optimal = _true_critic_bounds(cfg, gen)
    rows = []
    for level, mi in enumerate(cfg.mi_levels):
        row: dict[str, Any] = {"true_mi": mi, "log_k": math.log(cfg.batch_size)}
        for est in cfg.estimators:
            row[f"optimal/{est}"] = optimal[est][level]
        for key, trace in state["traces"].items():
            mean, std = _level_stats(trace, level, cfg)
            row[f"{key}/mean"], row[f"{key}/std"] = mean, std
        rows.append(row)
    return {
        "config": {
            "dim": cfg.dim,
            "batch_size": cfg.batch_size,
            "steps_per_level": cfg.steps_per_level,
        },
        "rows": rows,
        "seconds": state["seconds"],
    }


def _plot(cfg: MIBenchConfig, state: dict[str, Any], summary: dict[str, Any], run: RunDir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = cfg.steps_per_level
    steps = np.arange(len(cfg.mi_levels) * s)
    true_mi = np.repeat(np.asarray(cfg.mi_levels), s)
    fig, axes = plt.subplots(
        1, len(cfg.critics), figsize=(6 * len(cfg.critics), 4.2), squeeze=False, sharey=True
    )
    colors = {"infonce": "tab:blue", "nwj": "tab:orange"}
    for ax, critic_kind in zip(axes[0], cfg.critics, strict=True):
        for est in cfg.estimators:
            trace = np.asarray(state["traces"][f"{critic_kind}/{est}"])
            ax.plot(steps, trace, color=colors.get(est), alpha=0.15, lw=0.5)
            ax.plot(
                steps,
                _ema(trace, cfg.ema_span),
                color=colors.get(est),
                lw=1.5,
                label=f"{est} (EMA {cfg.ema_span})",
            )
        ax.plot(steps, true_mi, "k", lw=1.5, label="true MI")
        ax.axhline(math.log(cfg.batch_size), color="gray", ls="--", lw=1, label="log K")
        ax.set_title(f"{critic_kind} critic")
        ax.set_xlabel("step")
        ax.set_ylim(-1, max(cfg.mi_levels) + 4)
        ax.legend(loc="upper left", fontsize=8)
    axes[0][0].set_ylabel("MI estimate (nats)")
    fig.suptitle(f"Correlated Gaussians, d={cfg.dim}, K={cfg.batch_size}")
    fig.tight_layout()
    fig.savefig(run.path / "mi_estimates.png", dpi=110)
    plt.close(fig)


def format_table(cfg: MIBenchConfig, summary: dict[str, Any]) -> str:
    """The per-level table as Markdown."""
    keys = [f"{c}/{e}" for c in cfg.critics for e in cfg.estimators]
    head = [
        "true MI",
        "log K",
        *(f"optimal {e}" for e in cfg.estimators),
        *(f"{k} (mean ± std)" for k in keys),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["rows"]:
        cells = [f"{row['true_mi']:.1f}", f"{row['log_k']:.3f}"]
        cells += [f"{row[f'optimal/{e}']:.2f}" for e in cfg.estimators]
        cells += [f"{row[f'{k}/mean']:.2f} ± {row[f'{k}/std']:.2f}" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _report(cfg: MIBenchConfig, summary: dict[str, Any]) -> str:
    secs = ", ".join(f"{k}: {v:.0f} s" for k, v in summary["seconds"].items())
    return f"""# MI bench: correlated Gaussians (Poole et al. 2019)

x ~ N(0, I_{cfg.dim}), y = rho x + sqrt(1 - rho^2) eps; K = {cfg.batch_size} pairs per step,
{cfg.steps_per_level} Adam steps (lr {cfg.lr}) per MI level, a fresh critic per
(critic, estimator). Each cell is the mean ± std of the per-step estimate over the second
half of its level. "optimal" columns evaluate the bound with its optimal critic
(log p(y|x) - log p(y), plus 1 for NWJ): what the bound itself gives at this K.

{format_table(cfg, summary)}

InfoNCE can never exceed log K = {math.log(cfg.batch_size):.3f} nats; NWJ can, at the price of
variance that grows with the true MI.

Training time: {secs}.

![estimates](mi_estimates.png)
"""
