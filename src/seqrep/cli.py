"""The ``seqrep`` command: a thin layer over the Python API (:mod:`seqrep.loops.api`). Each
verb's options are generated from its config dataclass; the verb calls its API function with a
run folder and prints what it returns."""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch
from rich.markup import escape

from seqrep.data.series import SHIPPED_DATASETS as SHIPPED
from seqrep.devices import DEVICES
from seqrep.distributed import rank
from seqrep.loops import api
from seqrep.loops.collect import CollectConfig, collect, prepare_collection
from seqrep.loops.curl import PixelRunConfig
from seqrep.loops.memory import retain_freed_memory
from seqrep.loops.mi_bench import MIBenchConfig, format_table
from seqrep.loops.offline import OfflineRunConfig
from seqrep.loops.pretrain import PretrainConfig
from seqrep.loops.pretrain_states import StatePretrainConfig
from seqrep.loops.progress import console, interrupted_at
from seqrep.loops.runs import RunDir, RunDirError, default_run_folder, has_progress
from seqrep.loops.sac import SACRunConfig
from seqrep.loops.series_bench import run_series_bench, summarise
from seqrep.loops.sweep import LOCAL
from seqrep.rl.envs import RenderError
from seqrep.study import (
    PROFILES,
    StudyConfig,
    finished_cells,
    merge_studies,
    parse_cell_filter,
    prepare_study,
    profile_config,
    run_study,
    write_study_report,
)

__all__ = ["main"]


def _parse_tuple(item_type: type) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str | tuple[Any, ...]) -> tuple[Any, ...]:
        if isinstance(text, tuple):
            return text
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        try:
            return tuple(item_type(p) for p in parts)
        except ValueError as e:
            raise click.BadParameter(
                f"expected a comma-separated list of {item_type.__name__}"
            ) from e

    return parse


def config_options(
    config_cls: type, exclude: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding one ``--field-name`` option per dataclass field (help from metadata),
    except the fields in ``exclude`` (set by the verb itself)."""
    hints = typing.get_type_hints(config_cls)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(dataclasses.fields(config_cls)):
            if f.name in exclude:
                continue
            flag = "--" + f.name.replace("_", "-")
            hint = hints[f.name]
            helptext = f.metadata.get("help", "")
            default = f.default if f.default is not dataclasses.MISSING else None
            if hint is bool:
                fn = click.option(
                    f"{flag}/--no-{flag[2:]}", default=default, help=helptext, show_default=True
                )(fn)
            elif typing.get_origin(hint) is tuple:
                item = typing.get_args(hint)[0]
                shown = ",".join(str(v) for v in default) if default else ""
                fn = click.option(
                    flag,
                    f.name,
                    default=shown,
                    show_default=True,
                    help=helptext + " (comma-separated)",
                    callback=lambda _c, _p, v, _i=item: _parse_tuple(_i)(v),
                )(fn)
            else:
                fn = click.option(
                    flag, f.name, type=hint, default=default, show_default=True, help=helptext
                )(fn)
        return fn

    return decorate


def _config_from(config_cls: type, kwargs: dict[str, Any]) -> Any:
    """The verb's config from its options (validated by the verb's ``prepare_*``)."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in kwargs.items() if k in names})


TENSORBOARD_OPTION = click.option(
    "--tensorboard",
    is_flag=True,
    help="also write the metrics (scalars) and the report's figures (images) as TensorBoard "
    "event files in RUN/tensorboard (pip install 'seqrep[tensorboard]')",
)


def _out_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--quiet", is_flag=True, help="no progress bar")(fn)
    fn = click.option(
        "--overwrite",
        is_flag=True,
        help="replace the seqrep run in --out instead of resuming it (a folder that holds no "
        "seqrep run is never deleted)",
    )(fn)
    fn = click.option(
        "--out",
        type=click.Path(file_okay=False),
        default=None,
        help="run folder (default: runs/<verb>-<date>); rerun to resume",
    )(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqrep")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch threads for any verb (default: torch's, one per core). Use 1 when other heavy "
    "jobs hold the cores: more threads than free cores can make a run 20x slower.",
)
def cli(threads: int | None) -> None:
    """seqrep: contrastive representation learning on sequences and for decision making."""
    retain_freed_memory()  # every verb trains or evaluates: steps reuse their freed memory
    if threads is not None:
        torch.set_num_threads(threads)


def _out_folder(out: str | None, verb: str) -> str:
    """--out, or ``runs/<verb>-<time>`` without it: on the command line a verb always writes a
    run folder (the Python API writes one only when given ``out``)."""
    return str(default_run_folder(verb)) if out is None else out


def _finish(run_dir: str | None, report: str, *files: str) -> None:
    """Print a verb's table and where its report lies (on rank 0 under torchrun)."""
    if rank() != 0:
        return
    if report:
        click.echo(report)
    if run_dir is not None:
        click.echo(
            "\n" + "\n".join(f"{f + ':':8}{Path(run_dir) / f}" for f in ("report.md", *files))
        )


@cli.command("mi-bench", short_help="Correlated-Gaussian MI benchmark: InfoNCE vs NWJ bounds.")
@config_options(MIBenchConfig)
@_out_options
@TENSORBOARD_OPTION
def mi_bench_cmd(
    out: str | None, overwrite: bool, quiet: bool, tensorboard: bool, **kwargs: Any
) -> None:
    """Correlated-Gaussian MI benchmark (Poole et al. 2019): InfoNCE vs NWJ bounds."""
    cfg = _config_from(MIBenchConfig, kwargs)
    out = _out_folder(out, "mi-bench")
    summary = api.mi_bench(cfg, out=out, overwrite=overwrite, quiet=quiet, tensorboard=tensorboard)
    _finish(out, format_table(cfg, summary), "mi_estimates.png")


@cli.command("pretrain", short_help="Pretrain CPC / triplet / contrastive on a series data set.")
@config_options(PretrainConfig)
@_out_options
@TENSORBOARD_OPTION
def pretrain_cmd(
    out: str | None, overwrite: bool, quiet: bool, tensorboard: bool, **kwargs: Any
) -> None:
    """Pretrain a sequence encoder, then probe it (SVM, TS2Vec protocol) beside baselines
    where the data are labelled.

    Data-parallel on several processes when launched by torchrun, e.g.
    ``torchrun --nproc-per-node 2 -m seqrep pretrain ...`` (--batch-size is per process)."""
    out = _out_folder(out, "pretrain")
    cfg = _config_from(PretrainConfig, kwargs)
    encoder = api.pretrain(cfg, out=out, overwrite=overwrite, quiet=quiet, tensorboard=tensorboard)
    _finish(out, encoder.report_)


@cli.command(
    "pretrain-states",
    short_help="Pretrain a state encoder on offline trajectories (Minari id or .hdf5).",
)
@config_options(StatePretrainConfig)
@_out_options
@TENSORBOARD_OPTION
def pretrain_states_cmd(
    out: str | None, overwrite: bool, quiet: bool, tensorboard: bool, **kwargs: Any
) -> None:
    """Pretrain phi(s) with one objective (see --objective) on a data set's windows; the run
    folder's encoder.pt goes under `bc`, `offline-rl` or `sac` with --encoder.

    Data-parallel when launched by torchrun (--batch-size is per process)."""
    out = _out_folder(out, "pretrain-states")
    cfg = _config_from(StatePretrainConfig, kwargs)
    encoder = api.pretrain_states(
        cfg, out=out, overwrite=overwrite, quiet=quiet, tensorboard=tensorboard
    )
    _finish(out, encoder.report)


@cli.command("sac", short_help="Train SAC online on a gymnasium task (resumable).")
@config_options(SACRunConfig)
@_out_options
@TENSORBOARD_OPTION
def sac_cmd(
    out: str | None, overwrite: bool, quiet: bool, tensorboard: bool, **kwargs: Any
) -> None:
    """Soft Actor-Critic on state observations; run folder with return curves and checkpoints."""
    out = _out_folder(out, "sac")
    policy = api.sac(
        _config_from(SACRunConfig, kwargs),
        out=out,
        overwrite=overwrite,
        quiet=quiet,
        tensorboard=tensorboard,
    )
    _finish(out, policy.report)


@cli.command("curl", short_help="SAC from pixels on DeepMind Control: CURL, crop-only, DrQ.")
@config_options(PixelRunConfig)
@_out_options
@TENSORBOARD_OPTION
def curl_cmd(
    out: str | None, overwrite: bool, quiet: bool, tensorboard: bool, **kwargs: Any
) -> None:
    """SAC from rendered pixels on a DeepMind Control task with CURL's contrastive auxiliary
    (--aux curl|none), augmentation (--augment crop|shift|none|gaussian) and DrQ's averaged
    targets (--drq-k, --drq-m); resumable."""
    out = _out_folder(out, "curl")
    cfg = _config_from(PixelRunConfig, kwargs)
    policy = api.curl(cfg, out=out, overwrite=overwrite, quiet=quiet, tensorboard=tensorboard)
    _finish(out, policy.report)


def _offline_command(verb: str, help_text: str, fit: Callable[..., Any]) -> None:
    @cli.command(verb, short_help=help_text, help=help_text)
    @config_options(OfflineRunConfig)
    @_out_options
    @TENSORBOARD_OPTION
    def command(
        out: str | None, overwrite: bool, quiet: bool, tensorboard: bool, **kwargs: Any
    ) -> None:
        out = _out_folder(out, verb)
        cfg = _config_from(OfflineRunConfig, kwargs)
        _finish(
            out, fit(cfg, out=out, overwrite=overwrite, quiet=quiet, tensorboard=tensorboard).report
        )


_offline_command("bc", "Behaviour cloning on an offline data set (Minari id or .hdf5).", api.bc)
_offline_command(
    "offline-rl", "TD3+BC offline RL on a data set (Minari id or .hdf5).", api.offline_rl
)


RAY_OPTION = click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value=LOCAL,
    default=None,
    metavar="[ADDRESS]",
    help="run the cells as Ray tasks: alone, on a fresh Ray instance on this machine; with an "
    "address (auto, ray://host:10001), on that cluster (pip install 'seqrep[ray]')",
)

DEVICE_OPTION = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="where the encoder runs",
)


@cli.command("probe", short_help="Probe a pretrained run folder's frozen encoder.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data", default="", help="training data (default: the run's)")
@click.option("--test-data", "test_data", default="", help="test data (default: the run's)")
@DEVICE_OPTION
def probe_cmd(run_dir: str, data: str, test_data: str, device: str) -> None:
    """Encode train/test with RUN_DIR's checkpoint and print the probes' test accuracy."""
    from seqrep.data.series import load_train_test
    from seqrep.loops.encode import run_data_source
    from seqrep.loops.probes import logistic_probe, svm_probe

    encoder = api.load(run_dir, device)
    train, test = load_train_test(
        data or run_data_source(run_dir, "data"),
        test_data or run_data_source(run_dir, "test_data") or None,
    )
    tr, te = (encoder.encode([s.T for s in _series(d)]) for d in (train, test))
    svm = svm_probe(tr, train.labels, te, test.labels)
    lr = logistic_probe(tr, train.labels, te, test.labels)
    cfg = encoder.config_
    click.echo(
        f"{cfg.method} on {data or cfg.data} (step {encoder.trained_iterations_}/"
        f"{cfg.iterations}): SVM test accuracy {svm.accuracy:.3f} "
        f"({svm.detail}); logistic {lr.accuracy:.3f}"
    )


def _series(data: Any) -> list[Any]:
    """Each series' valid steps [T_i, C]."""
    return [data.values[i, : data.lengths[i]] for i in range(len(data))]


@cli.command("encode", short_help="Frozen features of a data set from a pretrained run.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", default="", help="data set name or file (default: the run's)")
@click.option(
    "--split",
    type=click.Choice(["train", "test", "both"]),
    default="both",
    show_default=True,
    help="which split of a named data set, or of the run's own data",
)
@click.option(
    "--out",
    "out_file",
    required=True,
    help=".npy ([N, D], or [N, T, D] per time step), or .csv / .parquet (split, label, "
    "f0..f{D-1}; per time step also series and step)",
)
@click.option(
    "--per-timestep", is_flag=True, help="one vector per time step (causal: no later step used)"
)
@click.option(
    "--encoding-window",
    default=0,
    show_default=True,
    help="per time step, the vectors of the last N steps pooled (a causal sliding window)",
)
@click.option(
    "--non-causal",
    is_flag=True,
    help="per time step, let a bidirectional CPC's backward half read later steps too",
)
@click.option("--overwrite", is_flag=True, help="replace an existing --out file")
@DEVICE_OPTION
def encode_cmd(
    run_dir: str,
    data: str,
    split: str,
    out_file: str,
    per_timestep: bool,
    encoding_window: int,
    non_causal: bool,
    overwrite: bool,
    device: str,
) -> None:
    """Encode series with RUN_DIR's frozen encoder (z-scored with the run's training data)."""
    from seqrep.loops.encode import check_target, splits_to_encode, write_features

    target = Path(out_file)
    check_target(target, overwrite)
    if encoding_window < 0:
        raise ValueError(f"--encoding-window must be >= 0, got {encoding_window}")
    encoder = api.load(run_dir, device)
    splits, _ = splits_to_encode(run_dir, data, split)
    click.echo(
        write_features(
            target,
            encoder,
            splits,
            per_timestep=per_timestep,
            encoding_window=encoding_window,
            causal=not non_causal,
        )
    )


@cli.group("bench")
def bench_group() -> None:
    """Benchmarks that write result files (see bench/)."""


@bench_group.command("series")
@click.option("--datasets", default=",".join(SHIPPED), show_default=True, help="comma-separated")
@click.option("--methods", default="cpc,triplet,contrastive,raw,random", show_default=True)
@click.option("--seeds", default="0,1,2,3,4", show_default=True)
@click.option(
    "--out",
    default="runs/bench-series/series.json",
    show_default=True,
    help="JSON rows (appended; rerun with the same options resumes); a .md table and the "
    "configuration (.config.json) are written beside it",
)
@click.option(
    "--threads", default=2, show_default=True, help="torch threads (1 beside other heavy jobs)"
)
@RAY_OPTION
@config_options(PretrainConfig, exclude=("data", "test_data", "method", "seed"))
def bench_series_cmd(
    datasets: str,
    methods: str,
    seeds: str,
    out: str,
    threads: int,
    ray_address: str | None,
    **kwargs: Any,
) -> None:
    """Every data set x method x seed: SVM accuracy and seconds, beside published numbers."""
    base = _config_from(PretrainConfig, kwargs)
    out_json = Path(out)
    rows = run_series_bench(
        out_json,
        tuple(d for d in datasets.split(",") if d),
        tuple(m for m in methods.split(",") if m),
        tuple(int(s) for s in seeds.split(",") if s),
        base,
        threads=threads,
        ray_address=ray_address,
    )
    table = summarise(rows, base)
    out_json.with_suffix(".md").write_text("# seqrep bench series\n\n" + table)
    click.echo(table)


@cli.command("collect", short_help="Roll a policy and write a local Minari data set.")
@config_options(CollectConfig)
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace an existing data set of that id (once the new one is complete)",
)
@click.pass_context
def collect_cmd(ctx: click.Context, overwrite: bool, **kwargs: Any) -> None:
    """Collect episodes (no network) into MINARI_DATASETS_PATH (default ~/.minari/datasets).

    The data set is written atomically: an interrupted collect leaves nothing under its id."""
    given = tuple(
        k for k in kwargs if ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE
    )
    cfg = _config_from(CollectConfig, kwargs)
    data = collect(prepare_collection(cfg, overwrite, given), overwrite)
    returns = data.episode_returns()
    click.echo(
        f"{cfg.dataset_id}: {data.num_episodes} episodes, {len(data)} steps, "
        f"return {returns.mean():.1f} ± {returns.std():.1f}"
    )


@cli.command("study", short_help="Representation Matters: objectives x downstream settings.")
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default="quick",
    show_default=True,
    help="the grid to start from; options given below replace its fields (the defaults "
    "shown are the full profile's; quick: Hopper-v5, 8 objectives, BC on 2 expert episodes, 3 seeds; "
    "low-data: imitation only, at 1, 2, 5 and 10 expert episodes)",
)
@click.option(
    "--jobs", default=1, show_default=True, help="worker processes (one core each); resumable"
)
@RAY_OPTION
@click.option(
    "--report-only",
    is_flag=True,
    help="write report.md from the cells finished so far, run none (e.g. while a study runs)",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="FIELD=VALUES",
    help="run only the cells whose FIELD (env, setting, objective, mode, seed, episodes) holds "
    "one of the comma-separated VALUES; repeat for more fields (e.g. one machine's share: "
    "--only env=Walker2d-v5 --only setting=imitation); the study's configuration is unchanged",
)
@click.option(
    "--merge",
    "merge",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="add the finished cells and encoders of another folder of the same study (e.g. a "
    "share run elsewhere with --only) to --out, then report; runs no cells; repeatable",
)
@config_options(StudyConfig)
@_out_options
@click.pass_context
def study_cmd(
    ctx: click.Context,
    profile: str,
    jobs: int,
    ray_address: str | None,
    report_only: bool,
    only: tuple[str, ...],
    merge: tuple[str, ...],
    out: str | None,
    overwrite: bool,
    quiet: bool,
    **kwargs: Any,
) -> None:
    """Pretrain state encoders on zoo data with every objective, then imitation (BC), offline RL
    (TD3+BC) and online RL (SAC) with each; resumable, skips finished cells."""
    selected = parse_cell_filter(only)
    if merge and (report_only or only or ray_address is not None or out is None):
        raise ValueError(
            "--merge adds other folders' cells to --out and runs none: give --out, and "
            "none of --report-only, --only or --ray with it"
        )
    given = {
        k: v
        for k, v in kwargs.items()
        if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT
    }
    cfg = profile_config(profile, **given)
    if report_only:  # the study may still be running: read its folder, do not lock it
        cfg.validate()
        if out is None or not has_progress(Path(out)):
            raise ValueError(
                f"--report-only: {out or '(no --out)'} holds no finished study cells to report; "
                "pass the --out of a study that has run (with the options it ran with)"
            )
        run = RunDir.attach(out, "study", cfg)
        rows = finished_cells(cfg, run)
    else:
        prepared = prepare_study(
            cfg, jobs=jobs, ray_address=ray_address, only=selected, merge=merge
        )
        run = RunDir.open(out, prepared, overwrite=overwrite)
        console.print(f"run folder: [bold]{run.path}[/]")
        if merge:
            added = merge_studies(cfg, run, list(prepared.merge))
            console.print(f"merged {added} finished cells from {', '.join(merge)}", soft_wrap=True)
            rows = finished_cells(cfg, run)
        else:
            rows = run_study(
                cfg, run, quiet=quiet, jobs=jobs, ray_address=ray_address, only=selected
            )
    click.echo(write_study_report(cfg, run, rows))
    click.echo(f"\nreport: {run.path / 'report.md'}\ncells:  {run.path / 'cells.csv'}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns expected user errors into one clear line and exit code 2."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        where = interrupted_at()
        console.print(
            "[yellow]interrupted[/]"
            + (f" at {where}" if where else "")
            + "; rerun the same command to resume from the last checkpoint",
            soft_wrap=True,
        )
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (RunDirError, ValueError, FileNotFoundError, ImportError, RenderError) as e:
        console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)  # one line, unwrapped
        sys.exit(2)
