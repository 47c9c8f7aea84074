"""seqrep's Python API: every verb as a function, and :func:`load`.

Each verb takes its config dataclass (the command line's, with the same defaults) or its
options as keywords, trains, and returns the trained object: a fitted
:class:`~seqrep.loops.transform.CPCTransformer` for ``pretrain``, the state encoder (a torch
module with its normaliser inside) for ``pretrain_states``, a :class:`~seqrep.rl.policy.Policy`
for ``sac``, ``bc``, ``offline_rl`` and ``curl``. With ``out`` it writes the same run folder as
the command line (config, metrics, checkpoints, report) and resumes one that holds the same
config; without it nothing is written. Every check runs before the folder is opened.

    import seqrep
    encoder = seqrep.pretrain(data="GunPoint", iterations=20)      # no run folder
    features = encoder.transform(X)                                 # [n_cases, n_features]
    policy = seqrep.load("runs/sac-hopper")                         # any run folder
    action = policy.act(obs)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.markup import escape

from seqrep.devices import resolve_device
from seqrep.distributed import broadcast_object, process_group, rank
from seqrep.loops.curl import (
    PixelRunConfig,
    load_curl,
    pixel_policy,
    prepare_pixel_run,
    train_pixel_sac,
    write_pixel_report,
)
from seqrep.loops.mi_bench import MIBenchConfig, prepare_mi_bench, run_mi_bench
from seqrep.loops.offline import (
    OfflineRunConfig,
    load_offline,
    offline_policy,
    prepare_offline,
    run_offline,
)
from seqrep.loops.pretrain import PretrainConfig, prepare_pretrain, run_pretrain
from seqrep.loops.pretrain_states import (
    StatePretrainConfig,
    load_state_encoder,
    prepare_state_pretraining,
    run_state_pretraining,
)
from seqrep.loops.progress import console
from seqrep.loops.runs import Prepared, RunDir, RunDirError
from seqrep.loops.sac import (
    SACRunConfig,
    load_sac,
    prepare_sac,
    sac_policy,
    train_sac,
    write_sac_report,
)
from seqrep.nets import StateEncoder
from seqrep.options import require_extra
from seqrep.rl.policy import Policy

if TYPE_CHECKING:
    from seqrep.loops.transform import CPCTransformer

__all__ = [
    "bc",
    "curl",
    "load",
    "mi_bench",
    "offline_rl",
    "open_run",
    "pretrain",
    "pretrain_states",
    "sac",
]

C = TypeVar("C")


def _config(cls: type[C], config: C | None, options: dict[str, Any]) -> C:
    """``config``, or the class's defaults, with ``options`` replacing fields.

    Raises:
        TypeError: an option that is not a field of the config.
    """
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(
            f"{cls.__name__} has no option {', '.join(unknown)}; it has {', '.join(sorted(names))}"
        )
    base = {f.name: getattr(config, f.name) for f in fields(cls)} if config else {}  # type: ignore[arg-type]
    return cls(**{**base, **options})


@contextmanager
def open_run(
    out: str | Path | None, prepared: Prepared, overwrite: bool, tensorboard: bool = False
) -> Iterator[RunDir | None]:
    """The run folder ``out`` for ``prepared`` work (None without ``out``), for the ``with``
    block that trains and reports into it; with ``tensorboard``, its records also go to
    TensorBoard, and the report's figures when the block ends. Under torchrun rank 0 alone
    opens it; if it cannot, every rank stops with its message instead of waiting for it in
    the first collective.

    Raises:
        ValueError: ``tensorboard`` without ``out`` (the event files go in the run folder).
        ImportError: ``tensorboard`` without the tensorboard package.
        RunDirError: the folder cannot be opened (see :meth:`RunDir.open`).
    """
    if tensorboard:
        if out is None:
            raise ValueError("tensorboard=True writes into the run folder: pass out=FOLDER too")
        require_extra("tensorboard", "--tensorboard")
    if out is None:
        yield None
        return
    run, error = None, None
    if rank() == 0:
        try:
            run = RunDir.open(out, prepared, overwrite=overwrite)
        except RunDirError as e:
            error = str(e)
    error = broadcast_object(error)
    if error is not None:
        raise RunDirError(error)
    if run is None:  # another rank's: rank 0 writes the folder
        yield None
        return
    console.print(f"run folder: [bold]{escape(str(run.path))}[/]")
    if tensorboard:
        run.enable_tensorboard()
    try:
        yield run
    finally:
        run.close_tensorboard()


def pretrain(
    config: PretrainConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    tensorboard: bool = False,
    **options: Any,
) -> CPCTransformer:
    """``seqrep pretrain``: a sequence encoder pretrained on ``data`` (CPC by default), as a
    fitted transformer; with ``out``, probed beside the raw series where the data are
    labelled, and reported. Under torchrun every rank trains its share of each batch."""
    require_extra("series", "seqrep.pretrain")
    from seqrep.loops.transform import CPCTransformer

    prepared = prepare_pretrain(_config(PretrainConfig, config, options))
    with (
        process_group(resolve_device(prepared.config.device)),
        open_run(out, prepared, overwrite, tensorboard) as run,
    ):
        result = run_pretrain(prepared, run, quiet=quiet)
    estimator = CPCTransformer._fitted(result.method, result.scaler, prepared.config)
    estimator.report_ = result.table
    return estimator


def pretrain_states(
    config: StatePretrainConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    tensorboard: bool = False,
    **options: Any,
) -> StateEncoder:
    """``seqrep pretrain-states``: a state encoder phi pretrained on ``data``'s trajectories
    with ``objective``: a torch module, observations [B, obs_dim] -> features [B, d], its input
    normalisation inside (``encoder.report`` holds the report's table with ``out``)."""
    require_extra("rl", "seqrep.pretrain_states", ("minari", "h5py", "matplotlib"))
    prepared = prepare_state_pretraining(_config(StatePretrainConfig, config, options))
    with (
        process_group(resolve_device(prepared.config.device)),
        open_run(out, prepared, overwrite, tensorboard) as run,
    ):
        encoder, table = run_state_pretraining(prepared, run, quiet=quiet)
    encoder.report = table
    return encoder


def sac(
    config: SACRunConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    tensorboard: bool = False,
    **options: Any,
) -> Policy:
    """``seqrep sac``: SAC trained online in ``env`` (optionally on a pretrained ``encoder``);
    its policy, with ``policy.report`` the evaluation table."""
    require_extra("rl", "seqrep.sac")
    prepared = prepare_sac(_config(SACRunConfig, config, options))
    cfg = prepared.config
    with open_run(out, prepared, overwrite, tensorboard) as run:
        agent, summary = train_sac(cfg, run, quiet=quiet)
        report = write_sac_report(cfg, run, summary) if run else _evaluations(summary)
    policy = sac_policy(agent.eval(), cfg, prepared.obs_dim)
    policy.report = report
    policy.summary = summary
    return policy


def _offline(
    verb: str,
    config: OfflineRunConfig | None,
    out: Any,
    overwrite: bool,
    quiet: bool,
    tensorboard: bool,
    **options: Any,
) -> Policy:
    require_extra("rl", f"seqrep.{verb.replace('-', '_')}")
    prepared = prepare_offline(_config(OfflineRunConfig, config, options), verb)
    with open_run(out, prepared, overwrite, tensorboard) as run:
        agent, result = run_offline(prepared, run, quiet=quiet)
    policy = offline_policy(agent.eval(), prepared.env_id, prepared.data.obs_dim, verb)
    policy.summary = result
    policy.report = (
        f"{verb} on {prepared.config.data}: return {result['return_mean']:.1f} ± "
        f"{result['return_std']:.1f} over {prepared.config.eval_episodes} episodes (data: "
        f"{result['data_return_mean']:.1f})"
    )
    return policy


def bc(
    config: OfflineRunConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    tensorboard: bool = False,
    **options: Any,
) -> Policy:
    """``seqrep bc``: behaviour cloning on an offline data set (a Minari id or a D4RL-layout
    HDF5 file); its policy, evaluated in the data's environment."""
    return _offline("bc", config, out, overwrite, quiet, tensorboard, **options)


def offline_rl(
    config: OfflineRunConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    tensorboard: bool = False,
    **options: Any,
) -> Policy:
    """``seqrep offline-rl``: TD3+BC on an offline data set; its policy."""
    return _offline("offline-rl", config, out, overwrite, quiet, tensorboard, **options)


def curl(
    config: PixelRunConfig | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    tensorboard: bool = False,
    **options: Any,
) -> Policy:
    """``seqrep curl``: SAC from pixels on a DeepMind Control task, with CURL, crop-only, DrQ
    or Gaussian positives (see :class:`~seqrep.rl.curl.PixelSACConfig`); its policy, which acts
    on uint8 frame stacks."""
    require_extra("pixels", "seqrep.curl")
    prepared = prepare_pixel_run(_config(PixelRunConfig, config, options))
    cfg = prepared.config
    with open_run(out, prepared, overwrite, tensorboard) as run:
        agent, summary = train_pixel_sac(cfg, run, quiet=quiet)
        report = write_pixel_report(cfg, run, summary) if run else _evaluations(summary)
    policy = pixel_policy(agent.eval(), cfg)
    policy.report = report
    policy.summary = summary
    return policy


def mi_bench(
    config: MIBenchConfig | None = None,
    *,
    out: str | Path,
    overwrite: bool = False,
    quiet: bool = True,
    tensorboard: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """``seqrep mi-bench``: InfoNCE and NWJ bounds against the true MI of correlated Gaussians,
    into the run folder ``out`` (its checkpoints let it resume); returns the summary."""
    require_extra("series", "seqrep.mi_bench's plots", ("matplotlib",))
    prepared = prepare_mi_bench(_config(MIBenchConfig, config, options))
    with open_run(out, prepared, overwrite, tensorboard) as run:
        assert run is not None
        return run_mi_bench(prepared.config, run, quiet=quiet)


def _evaluations(summary: dict[str, Any]) -> str:
    """The evaluation curve of a run without a folder, as a Markdown table."""
    step = (
        "env_step" if summary["evaluations"] and "env_step" in summary["evaluations"][0] else "step"
    )
    rows = "\n".join(
        f"| {e[step]} | {e['eval_return_mean']:.1f} ± {e['eval_return_std']:.1f} |"
        for e in summary["evaluations"]
    )
    return f"| {step.replace('_', ' ')} | evaluation return |\n|---|---|\n{rows}"


def _load_pretrain(path: str | Path, device: str) -> CPCTransformer:
    require_extra("series", "loading a pretrain run")
    from seqrep.loops.transform import CPCTransformer

    return CPCTransformer.from_run(path, device)


LOADERS = {
    "pretrain": _load_pretrain,
    "pretrain-states": lambda path, device: load_state_encoder(path, device),
    "sac": load_sac,
    "bc": load_offline,
    "offline-rl": load_offline,
    "curl": load_curl,
}


def load(path: str | Path, device: str = "cpu") -> Any:
    """The trained object of any run folder, from its last checkpoint, on ``device``:

    - ``seqrep pretrain``: a fitted :class:`~seqrep.loops.transform.CPCTransformer`
      (``transform(X)`` on [n_cases, n_channels, n_timepoints] arrays or lists of unequal
      length: the features ``seqrep encode`` writes; ``encode(X, per_timestep=True)`` for one
      vector per time step);
    - ``seqrep pretrain-states``: the state encoder, a torch module [B, obs_dim] -> [B, d]
      with its normaliser inside;
    - ``seqrep sac``, ``bc``, ``offline-rl``, ``curl``: a :class:`~seqrep.rl.policy.Policy`,
      whose ``act(obs)`` answers one observation or a batch, numpy or torch, deterministically.

    Raises:
        RunDirError: no run folder there, a kind of run that trains nothing to load (a study,
            a benchmark), or no checkpoint yet.
    """
    config = Path(path) / "config.json"
    try:
        kind = json.loads(config.read_text()).get("kind")
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path} holds no seqrep run to load (no readable config.json)") from e
    if kind not in LOADERS:
        raise RunDirError(
            f"{path} holds a {kind!r} run, which trains nothing to load; seqrep.load reads "
            f"{', '.join(LOADERS)} runs"
        )
    return LOADERS[kind](path, device)
