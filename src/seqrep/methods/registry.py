"""Registries of methods by name: each constructor is registered once, beside its definition,
with its name(s) and family (as timm's ``register_model`` / ``create_model``), and everything
that lists methods (the command line's choices, the study's grid, the tests) reads the
registry instead of a tuple kept apart from the code that builds them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

__all__ = ["Entry", "Registry"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """One registered name: its constructor (called with the name first), family and summary."""

    name: str
    build: Callable[..., Any]
    family: str
    summary: str


class Registry(Sequence[str]):
    """Names -> constructors, in registration order. As a sequence it is the tuple of names,
    so ``name in registry``, ``tuple(registry)`` and ``", ".join(registry)`` work.

    Args:
        what: what an entry is, for error messages (e.g. ``"objective"``).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Entry] = {}

    def register(self, *names: str, family: str, summary: str = "") -> Callable[[F], F]:
        """Decorator registering ``build`` under each of ``names`` (one constructor may serve
        variants, e.g. an objective and its momentum-target version: it gets the name first).

        Raises:
            ValueError: a name is registered already.
        """

        def decorate(build: F) -> F:
            for name in names:
                if name in self._entries:
                    raise ValueError(f"{self.what} {name!r} is registered twice")
                self._entries[name] = Entry(name, build, family, summary)
            return build

        return decorate

    def entry(self, name: str) -> Entry:
        """The entry of ``name``.

        Raises:
            ValueError: an unknown name, with every registered one.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.what} {name!r}; choose {', '.join(self._entries)}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``build(name, *args, **kwargs)`` of the entry of ``name`` (ValueError if unknown)."""
        return self.entry(name).build(name, *args, **kwargs)

    def names(self, family: str | None = None) -> tuple[str, ...]:
        """Every name in registration order, or those of one ``family``."""
        return tuple(n for n, e in self._entries.items() if family in (None, e.family))

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self.names()[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.what}: {', '.join(self._entries)})"
