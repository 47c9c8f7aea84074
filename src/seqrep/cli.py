"""The ``seqrep`` command. Each verb's options are generated from its config dataclass."""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch

from seqrep.data.series import SHIPPED_DATASETS as SHIPPED
from seqrep.data.series import load_normalised
from seqrep.data.trajectories import TrajectoryDataset
from seqrep.devices import DEVICES, check_device, resolve_device
from seqrep.distributed import broadcast_object, process_group, rank, shutdown, world_size
from seqrep.loops.curl import PixelRunConfig, prepare_pixel_run, train_pixel_sac, write_pixel_report
from seqrep.loops.memory import retain_freed_memory
from seqrep.loops.mi_bench import MIBenchConfig, format_table, prepare_mi_bench, run_mi_bench
from seqrep.loops.offline import OfflineRunConfig, prepare_offline, run_offline
from seqrep.loops.pretrain import PretrainConfig, build_from_config, prepare_pretrain, pretrain
from seqrep.loops.pretrain_states import (
    StatePretrainConfig,
    prepare_state_pretraining,
    pretrain_state_encoder,
    save_state_encoder,
    write_state_report,
)
from seqrep.loops.progress import console, interrupted_at
from seqrep.loops.runs import Prepared, RunDir, RunDirError, has_progress, load_run
from seqrep.loops.sac import (
    SACRunConfig,
    load_sac_policy,
    prepare_sac,
    replay_buffer_dataset,
    train_sac,
    write_sac_report,
)
from seqrep.loops.series_bench import (
    evaluate_cell,
    run_series_bench,
    summarise,
    write_pretrain_report,
)
from seqrep.loops.sweep import LOCAL
from seqrep.rl.collect import collect_episodes
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


@cli.command("mi-bench", short_help="Correlated-Gaussian MI benchmark: InfoNCE vs NWJ bounds.")
@config_options(MIBenchConfig)
@_out_options
def mi_bench_cmd(out: str | None, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
    """Correlated-Gaussian MI benchmark (Poole et al. 2019): InfoNCE vs NWJ bounds."""
    cfg = _config_from(MIBenchConfig, kwargs)
    run = RunDir.open(out, prepare_mi_bench(cfg), overwrite=overwrite)
    console.print(f"run folder: [bold]{run.path}[/]")
    summary = run_mi_bench(cfg, run, quiet=quiet)
    click.echo(format_table(cfg, summary))
    click.echo(f"\nreport: {run.path / 'report.md'}\nplot:   {run.path / 'mi_estimates.png'}")


@cli.command("pretrain", short_help="Pretrain CPC / triplet / contrastive on a series data set.")
@config_options(PretrainConfig)
@_out_options
def pretrain_cmd(out: str | None, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
    """Pretrain a sequence encoder, then probe it (SVM, TS2Vec protocol) beside baselines.

    Data-parallel on several processes when launched by torchrun, e.g.
    ``torchrun --nproc-per-node 2 -m seqrep pretrain ...`` (--batch-size is per process)."""
    # Every rank prepares on its own, before the process group exists: a failure is each
    # rank's, identical, and no collective waits on it.
    prepared = prepare_pretrain(_config_from(PretrainConfig, kwargs))
    with process_group(resolve_device(prepared.config.device)):
        _pretrain_and_probe(prepared, out, overwrite, quiet)


def _open_on_rank0(out: str | None, prepared: Prepared, overwrite: bool) -> RunDir | None:
    """Rank 0 opens the run folder; if it cannot, every rank stops with its message (rather
    than waiting for it in the first collective)."""
    run, error = None, None
    if rank() == 0:
        try:
            run = RunDir.open(out, prepared, overwrite=overwrite)
        except RunDirError as e:
            error = str(e)
    error = broadcast_object(error)
    if error is not None:
        raise RunDirError(error)
    return run


def _pretrain_and_probe(prepared: Any, out: str | None, overwrite: bool, quiet: bool) -> None:
    cfg, train, test = prepared.config, prepared.train, prepared.test
    run = _open_on_rank0(out, prepared, overwrite)
    if run is not None:
        # config.json keeps the paths as typed (a resume must match them); data.json records
        # where they pointed, so `seqrep probe` finds the files from any directory.
        run.write_json("data.json", {k: _absolute(getattr(cfg, k)) for k in ("data", "test_data")})
        processes = f", {world_size()} processes" if world_size() > 1 else ""
        console.print(
            f"run folder: [bold]{run.path}[/]  ({len(train)} train / {len(test)} test series"
            f"{processes})"
        )
    if world_size() > 1:
        # Every rank trains its share; then the group is closed and rank 0 alone probes and
        # reports (its evaluate_cell below loads the finished checkpoint).
        pretrain(cfg, train, run, quiet=quiet or run is None)
        shutdown()
    if run is None:
        return
    row = evaluate_cell(cfg, train, test, run=run, quiet=quiet)
    raw = evaluate_cell(dataclasses.replace(cfg, method="raw"), train, test)
    rows = [row, raw]
    run.write_json(
        "probe.json", [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    )
    table = write_pretrain_report(run, cfg, rows, test, row["_features"][1])
    click.echo(table)
    click.echo(f"\nreport: {run.path / 'report.md'}")


@cli.command(
    "pretrain-states",
    short_help="Pretrain a state encoder on offline trajectories (Minari id or .hdf5).",
)
@config_options(StatePretrainConfig)
@_out_options
def pretrain_states_cmd(out: str | None, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
    """Pretrain phi(s) with one objective (see --objective) on a data set's windows; the run
    folder's encoder.pt goes under `bc`, `offline-rl` or `sac` with --encoder.

    Data-parallel when launched by torchrun (--batch-size is per process)."""
    prepared = prepare_state_pretraining(_config_from(StatePretrainConfig, kwargs))
    cfg, data = prepared.config, prepared.data
    with process_group(resolve_device(cfg.device)):
        run = _open_on_rank0(out, prepared, overwrite)
        if run is not None:
            console.print(
                f"run folder: [bold]{run.path}[/]  ({data.num_episodes} episodes, {len(data)} "
                f"transitions{f', {world_size()} processes' if world_size() > 1 else ''})"
            )
        method, history = pretrain_state_encoder(
            cfg.objective,
            data,
            steps=cfg.steps,
            batch_size=cfg.batch_size,
            window=cfg.window,
            feature_dim=cfg.feature_dim,
            hidden=cfg.hidden,
            lr=cfg.lr,
            seed=cfg.seed,
            log_every=cfg.log_every,
            quiet=quiet or run is None,
            device=resolve_device(cfg.device),
            run=run,
            checkpoint_every=cfg.checkpoint_every,
        )
    if run is not None:
        save_state_encoder(run, method.encoder, cfg.objective)
        click.echo(write_state_report(cfg, run, history, data))
        click.echo(f"\nreport: {run.path / 'report.md'}")


def _absolute(path: str) -> str:
    """An existing file's absolute path; anything else (a shipped data set's name) as given."""
    return str(Path(path).resolve()) if path and Path(path).is_file() else path


def _names_a_file(source: str) -> bool:
    """A path (it has a suffix, or exists) rather than the name of a shipped data set."""
    return Path(source).suffix != "" or Path(source).exists()


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


def _load_encoder(
    run_dir: str, cfg: PretrainConfig, state: dict[str, Any], channels: int, device: str
) -> Any:
    """The run's trained method for data of ``channels`` channels on ``device``, or one line
    saying why the checkpoint does not fit."""
    method = build_from_config(cfg, channels).to(check_device(device))
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(
            f"{run_dir}'s encoder does not fit this data ({channels} channels): the data "
            "changed since the run was trained, or --data names another data set"
        ) from e
    return method


def _probe_data(run_dir: str, given: str, recorded: str, key: str) -> str:
    """The data a probe reads: the option if given, else the run's path if it resolves from here,
    else the absolute path the run recorded in data.json."""
    import json

    if given:
        return given
    if not recorded or Path(recorded).exists() or not _names_a_file(recorded):
        return recorded
    record = Path(run_dir) / "data.json"
    if record.exists():
        absolute = json.loads(record.read_text()).get(key, "")
        if Path(absolute).exists():
            return str(absolute)
    raise FileNotFoundError(
        f"{recorded} (the run's --{key.replace('_', '-')}) is not found from {Path.cwd()}; run "
        f"probe from the folder the run started in, or pass --{key.replace('_', '-')} PATH"
    )


@cli.command("probe", short_help="Probe a pretrained run folder's frozen encoder.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data", default="", help="training data (default: the run's)")
@click.option("--test-data", "test_data", default="", help="test data (default: the run's)")
@DEVICE_OPTION
def probe_cmd(run_dir: str, data: str, test_data: str, device: str) -> None:
    """Encode train/test with RUN_DIR's checkpoint and print the probes' test accuracy."""
    from seqrep.loops.probes import encode_dataset, logistic_probe, svm_probe

    cfg, state = load_run(run_dir, "pretrain", PretrainConfig)
    train, test = load_normalised(
        _probe_data(run_dir, data, cfg.data, "data"),
        _probe_data(run_dir, test_data, cfg.test_data, "test_data"),
    )
    method = _load_encoder(run_dir, cfg, state, train.num_channels, device)
    tr, te = encode_dataset(method, train), encode_dataset(method, test)
    svm = svm_probe(tr, train.labels, te, test.labels)
    lr = logistic_probe(tr, train.labels, te, test.labels)
    click.echo(
        f"{cfg.method} on {cfg.data} (step {state['iteration']}/{cfg.iterations}): "
        f"SVM test accuracy {svm.accuracy:.3f} ({svm.detail}); "
        f"logistic {lr.accuracy:.3f}"
    )


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
    help="features.npy ([N, D] float32), or .csv / .parquet (split, label, f0..f{D-1})",
)
@click.option("--overwrite", is_flag=True, help="replace an existing --out file")
@DEVICE_OPTION
def encode_cmd(
    run_dir: str, data: str, split: str, out_file: str, overwrite: bool, device: str
) -> None:
    """Encode series with RUN_DIR's frozen encoder (z-scored with the run's training data)."""
    import numpy as np

    from seqrep.data.series import Standardizer, load_series, load_train_test
    from seqrep.loops.probes import encode_dataset
    from seqrep.loops.runs import atomic_write_bytes

    target = Path(out_file)
    if target.suffix not in (".npy", ".csv", ".parquet"):
        raise click.UsageError(f"--out {out_file}: write .npy, .csv or .parquet")
    if target.is_dir() or (target.exists() and not overwrite):
        raise click.UsageError(
            f"--out {out_file} already exists: pass --overwrite to replace it, or choose "
            "another file"
        )
    cfg, state = load_run(run_dir, "pretrain", PretrainConfig)
    train_source = _probe_data(run_dir, "", cfg.data, "data")
    names = ("train", "test") if split == "both" else (split,)
    # The run's own data: its training split gives the z-score statistics; its test split is
    # read only when it is what is encoded.
    own_test = not data and "test" in names
    if _names_a_file(train_source) and own_test:
        test_source = _probe_data(run_dir, "", cfg.test_data, "test_data")
        own = dict(
            zip(("train", "test"), load_train_test(train_source, test_source or None), strict=True)
        )
    elif _names_a_file(train_source):
        own = {"train": load_series(train_source)}
    else:
        own = {
            k: load_series(train_source, k) for k in ("train", "test") if k == "train" or own_test
        }
    reference = own["train"]
    scaler = Standardizer().fit(reference)
    if not data:
        splits, source = {k: own[k] for k in names}, train_source
    elif _names_a_file(data):
        splits, source = {"file": load_series(data)}, data
    else:
        splits, source = {k: load_series(data, k) for k in names}, data
    if any(v.num_channels != reference.num_channels for v in splits.values()):
        raise ValueError(
            f"{source} has another channel count than the run's data "
            f"({reference.num_channels}); the encoder cannot read it"
        )
    method = _load_encoder(run_dir, cfg, state, reference.num_channels, device)
    parts = {k: encode_dataset(method, scaler.transform(v)) for k, v in splits.items()}
    features = np.concatenate(list(parts.values())).astype(np.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".npy":
        import io

        buffer = io.BytesIO()
        np.save(buffer, features)
        atomic_write_bytes(target, buffer.getvalue())
    else:
        import pandas as pd

        frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(features.shape[1])])
        frame.insert(0, "label", [v.classes[c] for v in splits.values() for c in v.labels])
        frame.insert(0, "split", [k for k, v in parts.items() for _ in range(len(v))])
        tmp = target.with_name(target.name + ".tmp")
        try:
            if target.suffix == ".csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
            tmp.replace(target)
        except ImportError as e:
            raise ImportError("writing .parquet needs pyarrow: pip install pyarrow") from e
        finally:
            tmp.unlink(missing_ok=True)
    counts = ", ".join(f"{k} {len(v)}" for k, v in parts.items())
    click.echo(f"{target}: {features.shape[0]} series ({counts}) x {features.shape[1]} features")


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


@cli.command("sac", short_help="Train SAC online on a gymnasium task (resumable).")
@config_options(SACRunConfig)
@_out_options
def sac_cmd(out: str | None, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
    """Soft Actor-Critic on state observations; run folder with return curves and checkpoints."""
    cfg = _config_from(SACRunConfig, kwargs)
    run = RunDir.open(out, prepare_sac(cfg), overwrite=overwrite)
    console.print(f"run folder: [bold]{run.path}[/]")
    _, summary = train_sac(cfg, run, quiet=quiet)
    click.echo(write_sac_report(cfg, run, summary))
    click.echo(f"\nreport: {run.path / 'report.md'}")


@cli.command("curl", short_help="SAC from pixels on DeepMind Control, with or without CURL.")
@config_options(PixelRunConfig)
@_out_options
def curl_cmd(out: str | None, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
    """SAC from rendered pixels on a DeepMind Control task with CURL's contrastive auxiliary
    (--aux curl|none) and augmentation (--augment crop|none|gaussian); resumable."""
    cfg = _config_from(PixelRunConfig, kwargs)
    run = RunDir.open(out, prepare_pixel_run(cfg), overwrite=overwrite)
    console.print(
        f"run folder: [bold]{run.path}[/]  (device {resolve_device(cfg.device)}, action repeat "
        f"{cfg.repeat()})"
    )
    _, summary = train_pixel_sac(cfg, run, quiet=quiet)
    click.echo(write_pixel_report(cfg, run, summary))
    click.echo(f"\nreport: {run.path / 'report.md'}")


@cli.command("collect", short_help="Roll a policy and write a local Minari data set.")
@click.option("--env", "env_id", default="Pendulum-v1", show_default=True, help="gymnasium id")
@click.option(
    "--policy",
    default="random",
    show_default=True,
    help="'random', a zoo level ('medium', 'expert', 'medium-replay': seqrep's shipped SAC "
    "actors for --env), or a `seqrep sac` run folder (its deterministic policy)",
)
@click.option("--noise", default=0.0, show_default=True, help="Gaussian action noise (std)")
@click.option("--steps", default=10_000, show_default=True, help="environment steps")
@click.option("--seed", default=0, show_default=True)
@click.option("--dataset-id", required=True, help="Minari id, e.g. seqrep/pendulum/expert-v0")
@click.option(
    "--from-replay",
    is_flag=True,
    help="with --policy a `seqrep sac` run folder: write the first --steps transitions of its "
    "replay buffer instead of rolling its policy (D4RL's medium-replay recipe)",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace an existing data set of that id (once the new one is complete)",
)
@DEVICE_OPTION
def collect_cmd(
    env_id: str,
    policy: str,
    noise: float,
    steps: int,
    seed: int,
    dataset_id: str,
    from_replay: bool,
    overwrite: bool,
    device: str,
) -> None:
    """Collect episodes (no network) into MINARI_DATASETS_PATH (default ~/.minari/datasets).

    The data set is written atomically: an interrupted collect leaves nothing under its id."""
    import numpy as np

    from seqrep.data.trajectories import require_writable_minari_id
    from seqrep.rl.envs import make_env
    from seqrep.rl.zoo import ZOO_LEVELS, load_zoo_policy, uniform_random_policy

    if steps < 1:
        raise click.UsageError(f"--steps must be >= 1, got {steps}")
    if noise < 0:
        raise click.UsageError(f"--noise is a standard deviation, >= 0; got {noise}")
    if policy not in ZOO_LEVELS and not Path(policy).is_dir():
        raise click.UsageError(
            f"--policy {policy!r} is neither a zoo level ({', '.join(ZOO_LEVELS)}) nor a "
            "`seqrep sac` run folder"
        )
    require_writable_minari_id(dataset_id, overwrite)  # say so now, not after collecting
    device = check_device(device)

    if from_replay:
        if policy in ZOO_LEVELS:
            raise click.UsageError("--from-replay needs --policy to be a `seqrep sac` run folder")
        # The buffer holds what the run stored: its own environment, actions and seeds. Say so
        # rather than silently ignoring options that would change the data if they applied.
        given = _given_options("env_id", "noise", "seed")
        if given:
            raise click.UsageError(
                f"{', '.join(given)} cannot apply with --from-replay: the data are the "
                "transitions the run stored (its environment, actions and seeds); drop them"
            )
        data, run_env = replay_buffer_dataset(policy, steps)
        _save_collected(
            data,
            dataset_id,
            run_env,
            f"{policy} --from-replay",
            f"replay buffer of {policy}",
            overwrite,
        )
        return
    rng = np.random.default_rng(seed)
    if policy not in ZOO_LEVELS:
        run_env, act = load_sac_policy(policy, device)  # it acts in its own environment
        if _given_options("env_id") and env_id != run_env:
            raise click.UsageError(
                f"--env {env_id} differs from the environment {policy} was trained on "
                f"({run_env}); drop --env"
            )
        env_id = run_env
    probe = make_env(env_id)
    act_dim = int(np.prod(probe.action_space.shape))
    probe.close()
    if policy == "random":  # any Box-action environment, zoo or not
        act = uniform_random_policy(act_dim, seed)
    elif policy in ZOO_LEVELS:
        act = load_zoo_policy(env_id, policy, seed=seed, device=device)

    def behaviour(obs: np.ndarray) -> np.ndarray:
        a = act(obs)
        if noise > 0:
            a = a + rng.normal(0.0, noise, size=np.shape(a))
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    if hasattr(act, "start_episode"):
        behaviour.start_episode = act.start_episode  # type: ignore[attr-defined]
    data = collect_episodes(env_id, behaviour, steps, seed)
    _save_collected(
        data, dataset_id, env_id, policy, f"{policy} policy, noise {noise}, seed {seed}", overwrite
    )


def _given_options(*names: str) -> list[str]:
    """The flags among these parameter ``names`` that the user typed (not defaults)."""
    ctx = click.get_current_context()
    return [
        param.opts[0]  # the flag as declared, e.g. env_id -> --env
        for param in ctx.command.params
        if param.name in names
        and ctx.get_parameter_source(param.name) is click.core.ParameterSource.COMMANDLINE
    ]


def _save_collected(
    data: TrajectoryDataset,
    dataset_id: str,
    env_id: str,
    source: str,
    description: str,
    overwrite: bool,
) -> None:
    """Write ``data`` as a local Minari data set and print its size and returns."""
    from seqrep.data.trajectories import save_minari

    save_minari(
        data,
        dataset_id,
        env=env_id,
        algorithm_name=f"seqrep collect --policy {source}",
        author="seqrep",
        description=description,
        overwrite=overwrite,
    )
    returns = data.episode_returns()
    click.echo(
        f"{dataset_id}: {data.num_episodes} episodes, {len(data)} steps, "
        f"return {returns.mean():.1f} ± {returns.std():.1f}"
    )


def _offline_command(kind: str, name: str, help_text: str) -> None:
    @cli.command(name, short_help=help_text, help=help_text)
    @config_options(OfflineRunConfig)
    @_out_options
    def command(out: str | None, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
        cfg = _config_from(OfflineRunConfig, kwargs)
        prepared = prepare_offline(cfg, name)
        run = RunDir.open(out, prepared, overwrite=overwrite)
        console.print(f"run folder: [bold]{run.path}[/]")
        _, r = run_offline(prepared, run, quiet=quiet)
        click.echo(
            f"{name} on {cfg.data}: return {r['return_mean']:.1f} ± {r['return_std']:.1f} "
            f"over {cfg.eval_episodes} episodes (data: {r['data_return_mean']:.1f})"
        )


_offline_command("bc", "bc", "Behaviour cloning on an offline data set (Minari id or .hdf5).")
_offline_command("td3bc", "offline-rl", "TD3+BC offline RL on a data set (Minari id or .hdf5).")


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
        console.print(f"[red]error:[/] {e}", soft_wrap=True)  # one line, never wrapped
        sys.exit(2)
