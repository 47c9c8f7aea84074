"""The layers of seqrep, in one place: every package and module at its level, imports only
downwards or sideways, and the same table in README.md, DESIGN.md and the package docstring.

    python tests/test_layers.py   # rewrite the table in those three places from LAYERS
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "seqrep"
BEGIN, END = "<!-- layers: generated from tests/test_layers.py -->", "<!-- /layers -->"

# Bottom to top: (name, what it holds, modules). A module may import from its own level or any
# level below. A package covers its submodules unless one is listed itself.
LAYERS = [
    (
        "data",
        "adapters to the ecosystem's formats, returning plain arrays: UCR/UEA series, files, "
        "trajectories (Minari, D4RL HDF5); imports nothing of seqrep",
        ["seqrep.data"],
    ),
    (
        "core",
        "option checks of every config, device choice, torch.distributed helpers",
        ["seqrep.options", "seqrep.devices", "seqrep.distributed"],
    ),
    (
        "math",
        "pure tensor math: InfoNCE and the margin losses, scoring functions, MI bounds",
        ["seqrep.losses", "seqrep.critics", "seqrep.mi"],
    ),
    ("nets", "encoders for signals, states and pixels; the momentum (EMA) copy", ["seqrep.nets"]),
    (
        "models",
        "what is trained: representation methods registered by name; agents, environments, "
        "replay, collection",
        ["seqrep.methods", "seqrep.rl"],
    ),
    (
        "run infrastructure",
        "run folders and checkpoints, TensorBoard, progress bars, memory tuning, online "
        "checkpoints, report pieces, probes, Ray",
        [
            "seqrep.loops",
            "seqrep.loops.runs",
            "seqrep.loops.tensorboard_log",
            "seqrep.loops.progress",
            "seqrep.loops.memory",
            "seqrep.loops.online",
            "seqrep.loops.report",
            "seqrep.loops.probes",
            "seqrep.loops.sweep",
        ],
    ),
    (
        "verbs",
        "one module per verb: its config, preparation, training loop and report",
        [
            "seqrep.loops.pretrain",
            "seqrep.loops.pretrain_states",
            "seqrep.loops.sac",
            "seqrep.loops.offline",
            "seqrep.loops.curl",
            "seqrep.loops.mi_bench",
            "seqrep.loops.zoo",
        ],
    ),
    (
        "over the verbs",
        "the Python API (every verb as a function, seqrep.load), the UCR/UEA benchmark, the "
        "scikit-learn transformer, encode, collect",
        [
            "seqrep.loops.api",
            "seqrep.loops.series_bench",
            "seqrep.loops.transform",
            "seqrep.loops.encode",
            "seqrep.loops.collect",
        ],
    ),
    (
        "study",
        "the Representation Matters grid: config, grid, cells, run, report",
        ["seqrep.study"],
    ),
    (
        "interface",
        "the `seqrep` command, `python -m seqrep`, and the package's public names",
        ["seqrep.cli", "seqrep.__main__", "seqrep"],
    ),
]


def level_of(module: str) -> int:
    """The level of ``module``: that of the longest listed name it is, or lies inside."""
    best, level = -1, None
    for i, (_, _, names) in enumerate(LAYERS):
        for name in names:
            inside = module == name or module.startswith(name + ".")
            if inside and len(name) > best:
                best, level = len(name), i
    if level is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return level


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def render() -> str:
    """The layers as a Markdown table, top first (the order a reader meets them in)."""
    rows = [
        f"| {i} {name} | {', '.join(f'`{m}`' for m in modules)} | {what} |"
        for i, (name, what, modules) in reversed(list(enumerate(LAYERS)))
    ]
    return "\n".join(["| level | modules | what |", "|---|---|---|", *rows])


def _places() -> dict[Path, str]:
    return {
        ROOT / "README.md": (ROOT / "README.md").read_text(),
        ROOT / "DESIGN.md": (ROOT / "DESIGN.md").read_text(),
        SRC / "__init__.py": (SRC / "__init__.py").read_text(),
    }


def test_every_module_imports_only_its_level_or_below():
    problems = []
    for path in SRC.rglob("*.py"):
        module = module_name(path)
        own = level_of(module)
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("seqrep")
            ):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("seqrep")]
            problems += [
                f"{module} ({LAYERS[own][0]}) imports {t} ({LAYERS[level_of(t)][0]})"
                for t in targets
                if level_of(t) > own
            ]
    assert not problems, problems


def test_every_listed_module_exists():
    present = {module_name(p) for p in SRC.rglob("*.py")}
    listed = [m for _, _, modules in LAYERS for m in modules]
    assert not [m for m in listed if m not in present], "listed in LAYERS but not in src/"


def test_readme_design_and_the_package_docstring_show_the_same_layers():
    table = render()
    for path, text in _places().items():
        assert f"{BEGIN}\n{table}\n{END}" in text, (
            f"{path.name}'s layer table differs from LAYERS: run `python tests/test_layers.py`"
        )


def _write() -> None:
    for path, text in _places().items():
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(f"{head}{BEGIN}\n{render()}\n{END}{tail}")
        print(f"wrote the layer table into {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(_write())
