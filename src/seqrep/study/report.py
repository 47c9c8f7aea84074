"""The study's report: per-task summaries with bootstrap CIs, the headline, data-efficiency
tables, representation diagnostics, plots and CSV files."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrep.loops.probes import bootstrap_ci, interquartile_mean
from seqrep.loops.runs import RunDir
from seqrep.methods.states import (
    CONTRASTIVE_OBJECTIVES,
)
from seqrep.rl.scores import normalized_score
from seqrep.rl.zoo import zoo_reference
from seqrep.study.cells import encoder_checkpoint, encoder_for, study_data
from seqrep.study.config import PAPER_SIZED_COMMAND, StudyConfig
from seqrep.study.grid import grid_cells

__all__ = [
    "CEILING",
    "MEDIOCRE",
    "RL_LEARNERS",
    "efficiency_tables",
    "headline",
    "online_summary",
    "representation_diagnostics",
    "summarise_study",
    "write_csv",
    "write_study_report",
]


def summarise_study(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (env, setting, objective, mode, expert episodes): mean, 95% bootstrap CI, IQM of the
    normalised score over seeds, and the pretraining's final metrics and seconds. ``episodes``
    is None outside the data-efficiency axis."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["env"], r["setting"], r["objective"], r["mode"], r.get("episodes"))
        groups.setdefault(key, []).append(r)
    out = []
    for (env_id, setting, objective, mode, episodes), rs in groups.items():
        scores = np.array([r["score"] for r in rs])
        low, high = bootstrap_ci(scores)
        final = rs[0]["pretrain_final"]
        out.append(
            {
                "env": env_id,
                "setting": setting,
                "objective": objective,
                "mode": mode,
                "episodes": episodes,
                "seeds": len(rs),
                "score_mean": float(scores.mean()),
                "score_std": float(scores.std()),
                "ci_low": low,
                "ci_high": high,
                "score_iqm": interquartile_mean(scores),
                "return_mean": float(np.mean([r["return_mean"] for r in rs])),
                "pretrain_seconds": float(np.mean([r["pretrain_seconds"] for r in rs])),
                "pretrain_metric": final.get("accuracy", final.get("prediction_error")),
            }
        )
    return out


# A normalised score whose whole CI lies above this is at the expert: nothing left to gain.


CEILING = 95.0
# The data-efficiency axis states the headline at the fewest expert episodes where BC from
# scratch is below this: the "mediocre on its own" learner the paper's claim is about.


MEDIOCRE = 80.0


def _headline_size(cells: list[dict[str, Any]]) -> int | None:
    """On the data-efficiency axis, the expert-set size the headline is stated at: the smallest
    where BC from scratch scores below :data:`MEDIOCRE`, else the smallest (None: no axis)."""
    sizes = sorted({s["episodes"] for s in cells if s.get("episodes") is not None})
    if not sizes:
        return None
    scratch = {s["episodes"]: s["score_mean"] for s in cells if s["objective"] == "none"}
    return next((n for n in sizes if scratch.get(n, 100.0) < MEDIOCRE), sizes[0])


# The reinforcement learners of the study's RL settings, as the headline names them.


RL_LEARNERS = {"offline": "offline RL (TD3+BC)", "online": "online RL (SAC)"}


def headline(summary: list[dict[str, Any]]) -> list[str]:
    """The paper's headline, checked per environment on the imitation cells: does BC with the
    best frozen contrastive encoder beat BC from scratch outside the 95% CIs, and does it beat
    the best frozen non-contrastive baseline (forward, inverse, autoencoder, VAE)? Then the
    same question for the best fine-tuned contrastive encoder, the other way a user would take
    a pretrained encoder. On the data-efficiency axis, at the fewest expert episodes where BC
    from scratch is mediocre. Then, per environment, offline RL (TD3+BC) and online RL (SAC):
    the best pretrained encoder, frozen or fine-tuned, against the same learner from scratch."""
    envs = list(dict.fromkeys(s["env"] for s in summary))
    lines = [line for env_id in envs if (line := _imitation_claim(summary, env_id))]
    return lines + [line for env_id in envs for line in _rl_claims(summary, env_id)]


def _imitation_claim(summary: list[dict[str, Any]], env_id: str) -> str | None:
    """The headline's line for ``env_id``'s imitation cells (see :func:`headline`), or None
    without both a scratch and a frozen contrastive cell."""
    cells = [s for s in summary if s["env"] == env_id and s["setting"] == "imitation"]
    size = _headline_size(cells)
    if size is not None:
        cells = [s for s in cells if s.get("episodes") == size]
    scratch = [s for s in cells if s["objective"] == "none"]
    frozen = [s for s in cells if s["mode"] == "frozen"]
    contrastive = [s for s in frozen if s["objective"] in CONTRASTIVE_OBJECTIVES]
    baselines = [s for s in frozen if s["objective"] not in CONTRASTIVE_OBJECTIVES]
    if not scratch or not contrastive:
        return None
    best, none = max(contrastive, key=lambda s: s["score_mean"]), scratch[0]
    at = "" if size is None else f" with {size} expert episode{'s' * (size > 1)}"
    text = (
        f"- {env_id}{at}: best frozen contrastive encoder `{best['objective']}` "
        f"{_fmt_ci(best)} vs BC from scratch {_fmt_ci(none)}: "
        + (
            "beats it outside the CIs"
            if _ci_above(best, none)
            else "does **not** beat it outside the CIs"
        )
    )
    if baselines:
        base = max(baselines, key=lambda s: s["score_mean"])
        text += (
            f"; best non-contrastive baseline `{base['objective']}` "
            f"{_fmt(base['score_mean'])}: "
            + ("below" if best["score_mean"] > base["score_mean"] else "**not below**")
        )
    tuned = [
        s for s in cells if s["mode"] == "finetune" and s["objective"] in CONTRASTIVE_OBJECTIVES
    ]
    if tuned:
        top = max(tuned, key=lambda s: s["score_mean"])
        text += f"; best fine-tuned contrastive encoder `{top['objective']}` {_fmt_ci(top)}: " + (
            "beats scratch outside the CIs"
            if _ci_above(top, none)
            else "does **not** beat scratch outside the CIs"
        )
    return text + _scratch_caveats(none, size) + "."


def _scratch_caveats(none: dict[str, Any], size: int | None) -> str:
    """Why a comparison with BC from scratch may not test the paper's claim: scratch is not
    mediocre at any expert-set size, or already at the expert."""
    text = ""
    if size is not None and none["score_mean"] >= MEDIOCRE:
        text += (
            f"; BC from scratch is not mediocre (below {MEDIOCRE:.0f}) at any expert-set size "
            "here, so the paper's regime (a learner mediocre on its own) is not reached"
        )
    if none["ci_low"] >= CEILING:
        text += (
            f"; BC from scratch is already at the expert (CI above {CEILING:.0f}), so this "
            "setting leaves no room for a representation to help"
        )
    return text


def _rl_claims(summary: list[dict[str, Any]], env_id: str) -> list[str]:
    """Per RL setting of ``env_id``: the best pretrained encoder, frozen or fine-tuned, against
    the same learner from scratch."""
    lines = []
    for setting, learner in RL_LEARNERS.items():
        cells = [s for s in summary if s["env"] == env_id and s["setting"] == setting]
        scratch = [s for s in cells if s["objective"] == "none"]
        pretrained = [s for s in cells if s["objective"] != "none"]
        if not scratch or not pretrained:
            continue
        best, none = max(pretrained, key=lambda s: s["score_mean"]), scratch[0]
        verdict = (
            "beats it outside the CIs"
            if _ci_above(best, none)
            else "lies **below** it outside the CIs"
            if _ci_above(none, best)
            else "does **not** beat it outside the CIs"
        )
        lines.append(
            f"- {env_id}, {learner}: best pretrained encoder `{best['objective']}` "
            f"({best['mode']}) {_fmt_ci(best)} vs from scratch {_fmt_ci(none)}: {verdict}."
        )
    return lines


def _efficiency_axis(
    summary: list[dict[str, Any]], env_id: str
) -> tuple[list[dict[str, Any]], list[int]]:
    """``env_id``'s imitation rows on the data-efficiency axis and its expert-set sizes
    (ascending); no rows when the axis has fewer than two sizes."""
    cells = [
        s
        for s in summary
        if s["env"] == env_id and s["setting"] == "imitation" and s["episodes"] is not None
    ]
    sizes = sorted({s["episodes"] for s in cells})
    return (cells, sizes) if len(sizes) >= 2 else ([], [])


def efficiency_tables(summary: list[dict[str, Any]]) -> str:
    """Per environment on the data-efficiency axis, one row per (objective, mode) and one column
    per expert-set size: mean [95% CI], marked up (down) where the CI lies wholly above (below)
    BC from scratch's at that size. Empty without the axis."""
    out = []
    for env_id in dict.fromkeys(s["env"] for s in summary):
        cells, sizes = _efficiency_axis(summary, env_id)
        if not cells:
            continue
        scratch = {s["episodes"]: s for s in cells if s["objective"] == "none"}
        by_key: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        for s in cells:
            by_key.setdefault((s["objective"], s["mode"]), {})[s["episodes"]] = s

        def entry(s: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
            if s is None:
                return "-"
            text = _fmt_ci(s)
            if base is not None and s is not base:
                if _ci_above(s, base):
                    text += " ↑"
                elif _ci_above(base, s):
                    text += " ↓"
            return text

        header = " | ".join(f"{n} ep" for n in sizes)
        lines = [
            f"### {env_id}",
            "",
            f"| objective | mode | {header} |",
            "|---|---|" + "---|" * len(sizes),
        ]
        for (objective, mode), row in by_key.items():
            values = " | ".join(entry(row.get(n), scratch.get(n)) for n in sizes)
            lines.append(f"| {objective} | {mode} | {values} |")
        out.append("\n".join(lines))
    if not out:
        return ""
    return (
        "\n## Imitation against expert data\n\nNormalised score, mean [95% CI] over seeds, "
        "per number of expert episodes; ↑ (↓): the CI lies wholly above (below) BC from "
        "scratch's at that size.\n\n" + "\n\n".join(out) + "\n"
    )


def _online_curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict]]:
    """Online cells with a learning curve, grouped by (env, objective, mode) in first-seen
    order; one row per seed."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        if r["setting"] == "online" and r["curve"]:
            groups.setdefault((r["env"], r["objective"], r["mode"]), []).append(r)
    return groups


def online_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Online cells summarised over the whole learning curve, not only its last point: per
    (env, objective, mode), the normalised score averaged over every evaluation (the area under
    the curve, which a single noisy final evaluation hides), mean over seeds with a 95% CI."""
    lines = []
    for key, rs in _online_curves(rows).items():
        reference = zoo_reference(key[0])
        auc = np.array(
            [
                np.mean([normalized_score(p["return"], reference=reference) for p in r["curve"]])
                for r in rs
            ]
        )
        low, high = bootstrap_ci(auc)
        lines.append(
            f"- {key[0]} `{key[1]}` {key[2]}: {_fmt(float(auc.mean()))} "
            f"[{_fmt(low)}, {_fmt(high)}] over {len(rs)} seeds"
        )
    return lines


def _fmt_ci(s: dict[str, Any]) -> str:
    """A summary row's score as ``mean [low, high]``."""
    return f"{_fmt(s['score_mean'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]"


def _ci_above(s: dict[str, Any], base: dict[str, Any]) -> bool:
    """Whether ``s``'s 95% CI lies wholly above ``base``'s."""
    return bool(s["ci_low"] > base["ci_high"])


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def write_study_report(cfg: StudyConfig, run: RunDir, rows: list[dict[str, Any]]) -> str:
    """cells.csv (every cell), summary.csv, report.md with bar charts (95% CIs), pretraining
    curves and online learning curves; returns the Markdown table."""
    flat = [{k: v for k, v in r.items() if k not in ("curve", "pretrain_final")} for r in rows]
    write_csv(run, "cells.csv", flat)
    summary = summarise_study(rows)
    write_csv(run, "summary.csv", summary)
    table = _settings_table(cfg, summary)
    plots = _plot_scores(summary, run.path)
    for env_id in cfg.envs:
        if efficiency_plot := _plot_data_efficiency(summary, run.path, env_id):
            plots.append(efficiency_plot)
        if pretraining_plot := _plot_pretraining(cfg, run.path, env_id):
            plots.append(pretraining_plot)
    if online_plot := _plot_online(rows, run.path):
        plots.append(online_plot)
    run.write_text("report.md", _report_markdown(cfg, run, rows, summary, table, plots))
    return table


def _settings_table(cfg: StudyConfig, summary: list[dict[str, Any]]) -> str:
    """Every setting's row: score mean ± std [95% CI], IQM, return, pretraining cost."""
    lines = [
        "| env | setting | objective | mode | expert episodes | seeds | score mean ± std "
        "[95% CI] | IQM | return | pretrain s | pretrain acc / error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        episodes = cfg.expert_episodes if s["episodes"] is None else s["episodes"]
        lines.append(
            f"| {s['env']} | {s['setting']} | {s['objective']} | {s['mode']} | "
            f"{episodes if s['setting'] == 'imitation' else '-'} | {s['seeds']} | "
            f"{_fmt(s['score_mean'])} ± {_fmt(s['score_std'])} "
            f"[{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}] | "
            f"{_fmt(s['score_iqm'])} | {_fmt(s['return_mean'])} | "
            f"{_fmt(s['pretrain_seconds'])} | {_fmt(s['pretrain_metric'], 3)} |"
        )
    return "\n".join(lines)


def _plot_scores(summary: list[dict[str, Any]], folder: Path) -> list[str]:
    """A bar chart per (environment, setting) of the score with its 95% CI, frozen and
    fine-tuned coloured apart (not for data-efficiency imitation: its panels show it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    mode_colour = {"frozen": "C0", "finetune": "C1"}
    for env_id in dict.fromkeys(s["env"] for s in summary):
        for setting in dict.fromkeys(s["setting"] for s in summary if s["env"] == env_id):
            sel = [s for s in summary if s["env"] == env_id and s["setting"] == setting]
            if setting == "imitation" and any(s["episodes"] is not None for s in sel):
                continue  # a bar per (objective, mode, size) is unreadable: the panels show it
            fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(sel)), 4))
            x = np.arange(len(sel))
            mean = np.array([s["score_mean"] for s in sel])
            err = np.array(
                [[m - s["ci_low"], s["ci_high"] - m] for m, s in zip(mean, sel, strict=True)]
            ).T
            colors = [mode_colour.get(s["mode"], "gray") for s in sel]
            ax.bar(x, mean, yerr=np.nan_to_num(err), color=colors, capsize=3)
            labels = [
                f"{s['objective']} {s['mode']}"
                + ("" if s["episodes"] is None else f" {s['episodes']} ep")
                for s in sel
            ]
            ax.set_xticks(x, labels, fontsize=7, rotation=40, ha="right")
            ax.set(ylabel="normalised score (95% bootstrap CI)", title=f"{env_id}: {setting}")
            fig.tight_layout()
            name = f"scores-{env_id}-{setting}.png"
            fig.savefig(folder / name, dpi=100)
            plt.close(fig)
            plots.append(name)
    return plots


def _plot_online(rows: list[dict[str, Any]], folder: Path) -> str | None:
    """online-curves.png: each online learner's evaluation curve, mean over seeds with a 95%
    bootstrap band; None without online cells."""
    groups = _online_curves(rows)
    if not groups:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, rs in groups.items():
        steps = [p["step"] for p in rs[0]["curve"]]
        returns = np.array([[p["return"] for p in r["curve"]] for r in rs])  # [seeds, evals]
        band = np.array([bootstrap_ci(column) for column in returns.T])  # [evals, 2]
        (line,) = ax.plot(steps, returns.mean(axis=0), "o-", label=" ".join(key))
        if len(rs) > 1:
            ax.fill_between(steps, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.15)
    ax.set(
        xlabel="environment step",
        ylabel="evaluation return (mean, 95% CI over seeds)",
        title="online SAC",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "online-curves.png", dpi=100)
    plt.close(fig)
    return "online-curves.png"


def _setup_paragraph(cfg: StudyConfig) -> str:
    """What was trained on what, with which budget, and how it is scored."""
    episodes_text = (
        ", ".join(map(str, cfg.bc_episodes)) + " (the first N of one expert set)"
        if cfg.bc_episodes
        else str(cfg.expert_episodes)
    )
    hidden_note = (
        f", with {cfg.online_hide_dims} random state dimension(s) zeroed at every step, also in"
        " evaluation (the paper's partial observability)"
        if cfg.online_hide_dims
        else " on the full state"
    )
    expert_mix = (
        f"; {cfg.pretrain_expert_fraction:.0%} of each batch from the expert set"
        if cfg.pretrain_expert_fraction
        else ""
    )
    return f"""Pretraining: {cfg.pretrain_steps} steps, {cfg.batch_size} windows of {cfg.window} steps, on
{cfg.pretrain_transitions} transitions of zoo `{cfg.pretrain_data}` data{expert_mix}; encoder MLP
{cfg.hidden}-{cfg.hidden}-{cfg.feature_dim} + LayerNorm for every objective. Imitation: BC
({cfg.bc_steps} steps, `{cfg.bc_loss}` loss) on {episodes_text} zoo-expert episodes. Offline:
TD3+BC ({cfg.offline_steps} steps) on medium-replay-like data. Online: SAC for
{cfg.online_steps} steps{hidden_note}. Scores: 100 (return - random) / (expert - random) with the zoo's own (random, expert) references (not
D4RL's), {cfg.eval_episodes} evaluation episodes per cell; mean over seeds with a 95%
percentile-bootstrap CI, and the interquartile mean."""


def _report_markdown(
    cfg: StudyConfig,
    run: RunDir,
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    table: str,
    plots: list[str],
) -> str:
    """report.md: the set-up, the headline, the data-efficiency and online sections, every
    setting's row, the representation diagnostics and the plots."""
    refs = "\n".join(
        f"- {e}: random {zoo_reference(e)[0]:.1f}, expert {zoo_reference(e)[1]:.1f}"
        for e in cfg.envs
    )
    claims = "\n".join(headline(summary)) or (
        "- No setting has both its learner from scratch and a pretrained encoder yet."
    )
    online_lines = online_summary(rows)
    online_section = (
        "\n## Online RL over the whole curve\n\nNormalised score averaged over every evaluation"
        " of the learning curve (its area), mean over seeds [95% CI]; the table below scores"
        " the last evaluation only.\n\n" + "\n".join(online_lines) + "\n"
        if online_lines
        else ""
    )
    online_note = (
        f" Online curves stop at {cfg.online_steps} environment steps for CPU cost; the first"
        " 100k steps are the fuller picture (`--online-steps 100000`)."
        if cfg.online_steps < 100_000
        else ""
    )
    images = "\n\n".join(f"![{p}]({p})" for p in plots)
    return f"""# Representation Matters, reproduced

{_setup_paragraph(cfg)}

Cells finished: {len(rows)} of {len(grid_cells(cfg))} (a study resumes where it stopped).

References used:
{refs}

Where this differs from Yang & Nachum (2021): v5 environments instead of D4RL's v2; data from
seqrep's own behaviour zoo instead of D4RL's files; a CPU budget (the paper pretrains 200k
steps with a 256-unit embedding; downstream budgets are longer there too).{online_note} The paper
reports its comparisons as figures, not tables, so the orderings, not the decimals, are what
compare. The paper-sized run, for a machine with a GPU and many cores:
`{PAPER_SIZED_COMMAND}`.

## The headline, measured

{claims}
{efficiency_tables(summary)}{online_section}
## Every setting

{table}

{_diagnostics_section(cfg, run)}
{images}
"""


def representation_diagnostics(cfg: StudyConfig, run: RunDir) -> list[dict[str, Any]]:
    """Why an objective helps or fails, for every cached encoder of the first seed: on the
    expert episodes (never seen in pretraining), the features' effective rank and the held-out
    R^2 of linear probes from the features to the observed state and to the expert's action
    (half the states fit the probes, the other half score them). ``none`` is the random
    encoder every objective starts from."""
    from seqrep.loops.probes import effective_rank, linear_probe_r2

    rows = []
    seed = cfg.seeds[0]
    for env_id in cfg.envs:
        try:  # a report of a running study never collects: the study does, in its own time
            data = study_data(cfg, env_id, run.path, collect=False)
        except FileNotFoundError:
            continue
        states, actions = data["expert"].observations, data["expert"].actions
        order = np.random.default_rng(seed).permutation(len(states))
        fit, score = order[: len(order) // 2], order[len(order) // 2 :]
        for objective in cfg.objectives:
            cached = run.checkpoints / encoder_checkpoint(env_id, objective, seed)
            if objective != "none" and not cached.exists():
                continue  # not pretrained yet: the report shows what exists
            encoder, _ = encoder_for(cfg, env_id, objective, seed, data, run)
            with torch.no_grad():
                f = encoder(torch.from_numpy(states)).numpy()
            rows.append(
                {
                    "env": env_id,
                    "objective": objective,
                    "effective_rank": effective_rank(f[score]),
                    "r2_state": linear_probe_r2(f[fit], states[fit], f[score], states[score]),
                    "r2_action": linear_probe_r2(f[fit], actions[fit], f[score], actions[score]),
                }
            )
    return rows


def _diagnostics_section(cfg: StudyConfig, run: RunDir) -> str:
    """The diagnostics table, computed from the folder's encoders; a folder without encoders or
    data (a study's committed cells and files, copied to report again) keeps the table its
    ``diagnostics.csv`` holds from when they were there."""
    rows: list[dict[str, Any]] = representation_diagnostics(cfg, run)
    saved = run.path / "diagnostics.csv"
    if rows:
        write_csv(run, "diagnostics.csv", rows)
    elif saved.exists():
        with saved.open(newline="") as f:
            rows = [
                {k: v if k in ("env", "objective") else float(v) for k, v in r.items()}
                for r in csv.DictReader(f)
            ]
    if not rows:
        return ""
    lines = [
        "| env | objective | effective rank | R^2 state | R^2 expert action |",
        "|---|---|---|---|---|",
        *(
            f"| {r['env']} | {r['objective']} | {r['effective_rank']:.1f} | "
            f"{r['r2_state']:.3f} | {r['r2_action']:.3f} |"
            for r in rows
        ),
    ]
    return (
        f"""## Why an objective helps or fails: representation diagnostics

First seed's encoders on the expert episodes (unseen in pretraining): effective rank of the
{cfg.feature_dim} features (Roy & Vetterli 2007), and held-out R^2 of linear probes from the
features to the observed state and to the expert's action. `none` is the random encoder.
(`diagnostics.csv`)

"""
        + "\n".join(lines)
        + "\n"
    )


def _panel_grid(
    n: int, width: float, height: float, pad: tuple[float, float] = (0.0, 0.6), **kw: Any
) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels in rows of at most six, each ``width`` x ``height`` inches, plus
    ``pad`` inches (width, height) for titles and legends; spare cells switched off; ``kw``
    goes to ``plt.subplots``. Returns (figure, the n axes)."""
    import matplotlib.pyplot as plt

    ncols = min(6, n)
    nrows = -(-n // ncols)
    size = (width * ncols + pad[0], height * nrows + pad[1])
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, list(axes.flat[:n])


def _plot_data_efficiency(summary: list[dict[str, Any]], folder: Path, env_id: str) -> str | None:
    """Imitation score against expert episodes: one small panel per pretrained objective, its
    frozen and fine-tuned lines beside BC from scratch, each with its 95% CI band (None without
    the data-efficiency axis). Panels rather than one axis: with a dozen objectives on one
    axis, the lines and bands cannot be told apart."""
    cells, sizes = _efficiency_axis(summary, env_id)
    if not cells:
        return None
    import matplotlib.pyplot as plt

    def line(objective: str, mode: str) -> list[dict[str, Any]]:
        chosen = (s for s in cells if (s["objective"], s["mode"]) == (objective, mode))
        return sorted(chosen, key=lambda s: s["episodes"])

    def draw(ax: Any, points: list[dict[str, Any]], colour: str, label: str, **kw: Any) -> None:
        if not points:
            return
        x, mean = [s["episodes"] for s in points], [s["score_mean"] for s in points]
        ax.plot(x, mean, color=colour, marker="o", ms=3, label=label, **kw)
        low = np.nan_to_num([s["ci_low"] for s in points], nan=np.nan_to_num(mean))
        high = np.nan_to_num([s["ci_high"] for s in points], nan=np.nan_to_num(mean))
        ax.fill_between(x, low, high, color=colour, alpha=0.15, lw=0)

    objectives = [o for o in dict.fromkeys(s["objective"] for s in cells) if o != "none"]
    panels = objectives or ["none"]
    fig, axes = _panel_grid(len(panels), 2.3, 1.9, (0.4, 0.9), sharex=True, sharey=True)
    scratch = line("none", "scratch")
    for ax, objective in zip(axes, panels, strict=True):
        draw(ax, scratch, "black", "BC from scratch", lw=1.2)
        if objective != "none":
            draw(ax, line(objective, "frozen"), "tab:blue", "frozen encoder")
            draw(ax, line(objective, "finetune"), "tab:orange", "fine-tuned encoder", ls="--")
        ax.axhline(MEDIOCRE, color="gray", lw=0.7, ls=":")
        ax.set_title(objective, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    ax = axes[0]
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    handles, labels = ax.get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="gray", lw=0.7, ls=":"))
    labels.append(f"{MEDIOCRE:.0f}: scratch below it is mediocre")
    fig.legend(handles, labels, loc="upper right", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(
        f"{env_id}: imitation score against expert episodes (mean, 95% CI)",
        x=0.01,
        ha="left",
        fontsize=10,
    )
    fig.supxlabel("expert episodes for behaviour cloning", fontsize=9)
    fig.supylabel("normalised score", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    name = f"data-efficiency-{env_id}.png"
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name


def _plot_pretraining(cfg: StudyConfig, folder: Path, env_id: str) -> str | None:
    """Loss and accuracy / prediction-error curves of every objective (first seed): one panel
    per objective, in rows of six, the loss on the left axis and its metric on the right. A
    folder without encoders keeps the plot it already holds (drawn when they were there)."""
    import matplotlib.pyplot as plt

    name = f"pretraining-{env_id}.png"
    histories = {}
    for objective in cfg.objectives:
        state = RunDir(folder).load_checkpoint(encoder_checkpoint(env_id, objective, cfg.seeds[0]))
        if state is not None:
            histories[objective] = state["history"]
    if not histories:
        return name if (folder / name).exists() else None
    fig, axes = _panel_grid(len(histories), 2.6, 2.0, sharex=True)
    for ax, (objective, hist) in zip(axes, histories.items(), strict=True):
        steps = [h["step"] for h in hist]
        ax.plot(steps, [h["loss"] for h in hist], color="C0", lw=1)
        metric = "accuracy" if "accuracy" in hist[-1] else "prediction_error"
        right = ax.twinx()
        right.plot(steps, [h[metric] for h in hist], color="C1", lw=1)
        ax.set_title(f"{objective} ({metric.replace('_', ' ')})", fontsize=8)
        ax.tick_params(labelsize=6, labelcolor="C0")
        right.tick_params(labelsize=6, labelcolor="C1")
    fig.suptitle(
        f"{env_id}: pretraining (seed {cfg.seeds[0]}); loss (blue, left axis) and accuracy or "
        "prediction error (orange, right axis) against step",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name


def write_csv(run: RunDir, name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    # The union of the rows' columns: only imitation cells on the data-efficiency axis have
    # "episodes".
    columns = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    run.write_text(name, buf.getvalue())
