"""The ``seqrep`` command. Each verb's options are generated from its config dataclass."""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable
from typing import Any

import click

from seqrep.mi_bench import MIBenchConfig, format_table, run_mi_bench
from seqrep.runs import RunDir, RunDirError, console

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


def config_options(config_cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding one ``--field-name`` option per dataclass field (help from metadata)."""
    hints = typing.get_type_hints(config_cls)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(dataclasses.fields(config_cls)):
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
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in kwargs.items() if k in names})


def _out_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--quiet", is_flag=True, help="no progress bar")(fn)
    fn = click.option(
        "--overwrite", is_flag=True, help="replace an existing run folder instead of resuming it"
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
def cli() -> None:
    """seqrep: contrastive representation learning on sequences and for decision making."""


@cli.command("mi-bench", short_help="Correlated-Gaussian MI benchmark: InfoNCE vs NWJ bounds.")
@config_options(MIBenchConfig)
@_out_options
def mi_bench_cmd(out: str | None, overwrite: bool, quiet: bool, **kwargs: Any) -> None:
    """Correlated-Gaussian MI benchmark (Poole et al. 2019): InfoNCE vs NWJ bounds."""
    cfg = _config_from(MIBenchConfig, kwargs)
    cfg.validate()
    run = RunDir.open(out, "mi-bench", cfg, overwrite=overwrite)
    console.print(f"run folder: [bold]{run.path}[/]")
    summary = run_mi_bench(cfg, run, quiet=quiet)
    click.echo(format_table(cfg, summary))
    click.echo(f"\nreport: {run.path / 'report.md'}\nplot:   {run.path / 'mi_estimates.png'}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns expected user errors into one clear line and exit code 2."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (RunDirError, ValueError, FileNotFoundError) as e:
        console.print(f"[red]error:[/] {e}")
        sys.exit(2)
