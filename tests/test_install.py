"""The light install: `pip install seqrep` (torch, numpy, click, rich) gives the losses, critics,
MI bounds and nets, and the command line; a verb whose extra is missing says which extra to
install, before it writes anything. Checked in subprocesses where every optional package is
made unimportable (a meta-path finder that refuses them), so this venv's full install cannot
hide an import that escaped into the core."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

OPTIONAL = (
    "aeon",
    "sklearn",
    "pandas",
    "pyarrow",
    "matplotlib",
    "scipy",
    "h5py",
    "gymnasium",
    "mujoco",
    "minari",
    "dm_control",
    "shimmy",
    "imageio_ffmpeg",
    "ray",
    "tensorboard",
)

BLOCKER = f"""
import importlib.abc, sys
BLOCKED = set({OPTIONAL!r})
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


@pytest.fixture(scope="module")
def core_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which only seqrep's core dependencies import."""
    site = tmp_path_factory.mktemp("core-only")
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return env


def _run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_blocker_blocks(core_env: dict[str, str]) -> None:
    result = _run(core_env, "-c", "import sklearn")
    assert result.returncode != 0 and "blocked" in result.stderr


def test_core_imports_nothing_optional_and_computes(core_env: dict[str, str]) -> None:
    # The loss equals the closed form: uniform scores give log N.
    code = """
import math, sys, torch
import seqrep, seqrep.losses, seqrep.critics, seqrep.mi, seqrep.nets
loss = seqrep.info_nce(torch.ones(8, 4), torch.ones(8, 4))
assert abs(loss.item() - math.log(8)) < 1e-5, loss
optional = set(sys.argv[1:])
print(sorted(m for m in sys.modules if m.split(".")[0] in optional))
"""
    result = _run(core_env, "-c", code, *OPTIONAL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_readmes_tour_runs_as_written_on_the_core(core_env: dict[str, str]) -> None:
    """The README's "A short tour" block, executed as written with only the core importable,
    so the documented API cannot drift and the light install really runs it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    tour = readme.split("## A short tour", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    check = "\nassert loss.ndim == 0 and res.logits.shape == (256, 256)\nprint('ok')\n"
    result = _run(core_env, "-c", tour + check)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_cli_help_and_version_need_only_the_core(core_env: dict[str, str]) -> None:
    result = _run(core_env, "-m", "seqrep", "--help")
    assert result.returncode == 0, result.stderr
    assert "pretrain" in result.stdout and "curl" in result.stdout
    assert _run(core_env, "-m", "seqrep", "--version").returncode == 0


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["pretrain", "--data", "GunPoint"], "series"),
        (["bench", "series", "--datasets", "GunPoint"], "series"),
        (["sac", "--env", "Pendulum-v1"], "rl"),
        (["pretrain-states", "--data", "x.hdf5"], "rl"),
        (["bc", "--data", "x.hdf5"], "rl"),
        (["offline-rl", "--data", "x.hdf5"], "rl"),
        (["collect", "--dataset-id", "seqrep/t/x-v0"], "rl"),
        (["study", "--profile", "quick"], "rl"),
        (["curl", "--task", "cartpole-swingup"], "pixels"),
    ],
)
def test_a_verb_without_its_extra_names_it_and_writes_nothing(
    core_env: dict[str, str], tmp_path: Path, argv: list[str], extra: str
) -> None:
    out = tmp_path / "run"
    with_out = [*argv, "--out", str(out)] if argv[0] not in ("bench", "collect") else argv
    result = _run(core_env, "-m", "seqrep", *with_out, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stdout + result.stderr
    assert f"pip install 'seqrep[{extra}]'" in message, message
    assert "Traceback" not in message
    assert list(tmp_path.iterdir()) == []  # no run folder, no half-written file


def test_python_api_names_the_extra(core_env: dict[str, str], tmp_path: Path) -> None:
    code = """
import seqrep
try:
    seqrep.pretrain(data="GunPoint")
except ImportError as e:
    print(e)
"""
    result = _run(core_env, "-c", code, cwd=tmp_path)
    assert "pip install 'seqrep[series]'" in result.stdout, result.stdout + result.stderr
