"""What a run asks for, checked before it starts: every config's options in range (one line
naming the flag and what it must be: :func:`check_options`, :class:`OptionError`), and the
optional packages a verb needs installed (:func:`require_extra`, naming the extra)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from seqrep.devices import check_device

__all__ = ["EXTRAS", "OptionError", "check_options", "flag", "require_extra"]


def flag(name: str) -> str:
    """A config field's command-line flag: ``q_lr`` -> ``--q-lr``."""
    return "--" + name.replace("_", "-")


class OptionError(ValueError):
    """An option out of range. ``str()`` names it as a command-line flag (``--q-lr``); a
    Python front end (e.g. an estimator's parameters) names it its own way with
    :meth:`naming`.

    Attributes:
        option: the config field, e.g. ``"q_lr"``.
        template: the message with ``{name}`` where the option's name goes.
    """

    def __init__(self, option: str, template: str) -> None:
        super().__init__(template.format(name=flag(option)))
        self.option, self.template = option, template

    def naming(self, name: str) -> str:
        """The message with the option called ``name``."""
        return self.template.format(name=name)


def _is_rate(name: str) -> bool:
    """A learning rate, by the naming rule every config follows (``lr``, ``q_lr``, ...)."""
    return name == "lr" or name.endswith("_lr")


def _number_values(cfg: Any) -> Iterator[tuple[str, float]]:
    """Every real-valued option of a config dataclass (tuples item by item), by name."""
    if not dataclasses.is_dataclass(cfg):
        return
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, int | float) and not isinstance(item, bool):
                yield f.name, float(item)


def check_options(
    cfg: Any,
    *,
    positive: tuple[str, ...] = (),
    non_negative: tuple[str, ...] = (),
    unit: tuple[str, ...] = (),
    choices: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Range checks for a config's options, each failure one line naming the flag.

    Whatever the arguments, every number of a config dataclass must be finite (``inf`` or
    ``nan`` would train to NaN without an error), and every learning rate (``lr``, ``*_lr``)
    must lie in (0, 1]: Adam's step is about the rate itself, so a rate above 1 moves each
    weight by more than its typical size on every step.

    Args:
        positive: must be > 0 (counts >= 1, rates > 0).
        non_negative: must be >= 0.
        unit: must lie in (0, 1] (update rates, fractions).
        choices: option -> allowed values.

    A config with a ``device`` option also has it checked: one of :data:`DEVICES`, and ``cuda``
    only where a GPU is visible.

    Raises:
        ValueError: the first option out of range, with what it must be.
    """
    for name, value in _number_values(cfg):
        if not math.isfinite(value):
            raise OptionError(name, f"{{name}} must be a finite number, got {value}")
        if _is_rate(name) and not 0 < value <= 1:
            raise OptionError(
                name, f"{{name}} is a learning rate and must lie in (0, 1], got {value}"
            )
    for name in positive:
        if not getattr(cfg, name) > 0:
            raise OptionError(name, f"{{name}} must be > 0, got {getattr(cfg, name)}")
    for name in non_negative:
        if not getattr(cfg, name) >= 0:
            raise OptionError(name, f"{{name}} must be >= 0, got {getattr(cfg, name)}")
    for name in unit:
        if not 0 < getattr(cfg, name) <= 1:
            raise OptionError(name, f"{{name}} must lie in (0, 1], got {getattr(cfg, name)}")
    for name, allowed in (choices or {}).items():
        value = getattr(cfg, name)
        if value not in allowed:
            raise OptionError(name, f"unknown {{name}} {value!r}; choose {', '.join(allowed)}")
    if hasattr(cfg, "device"):
        check_device(cfg.device)


# The optional dependencies of seqrep's extras (`pip install 'seqrep[series]'`), as modules.
EXTRAS = {
    "series": ("aeon", "sklearn", "pandas", "matplotlib"),
    "rl": ("gymnasium", "mujoco", "minari", "h5py", "matplotlib"),
    "pixels": ("gymnasium", "dm_control", "shimmy", "imageio_ffmpeg", "matplotlib"),
    "ray": ("ray",),
    "tensorboard": ("tensorboard",),
}


def require_extra(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise ImportError, in one line naming the extra to install, unless ``what`` can run:
    every module of ``extra`` (or just ``modules``) importable. Nothing is imported here.

    Raises:
        ImportError: ``{what} needs ...: pip install 'seqrep[{extra}]'``.
    """
    missing = [m for m in modules or EXTRAS[extra] if not _installed(m)]
    if missing:
        raise ImportError(
            f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: pip install 'seqrep[{extra}]'"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses it (a broken install, a test's blocker)
        return False
