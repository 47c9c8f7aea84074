"""Sweeps on a Ray cluster: every cell a Ray task, results streamed back to the driver.

``seqrep study --ray [ADDRESS]`` and ``seqrep bench series --ray [ADDRESS]`` hand their cells to
Ray; the driver (the process that runs the command) appends each finished row to the same
resumable file that ``--jobs`` writes, so a killed sweep resumes under either executor. Ray is an
optional extra (``pip install 'seqrep[ray]'``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["LOCAL", "connect", "stream"]

LOCAL = "local"  # --ray without an address: start a Ray instance on this machine

# Environment a worker needs to find what the driver sees (the zoo, Minari sets, the renderer).
FORWARDED = ("MINARI_DATASETS_PATH", "MUJOCO_GL", "OMP_NUM_THREADS", "PYOPENGL_PLATFORM")


def connect(address: str) -> Any:
    """The ``ray`` module, connected to ``address`` (``local``: a fresh instance on this
    machine; ``auto``: the cluster this machine belongs to; ``ray://host:10001``: a remote one).

    Raises:
        ImportError: Ray is not installed, with how to install it.
    """
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "--ray needs Ray, an optional extra: pip install 'seqrep[ray]' (or pip install ray)"
        ) from e
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith("SEQREP_") or k in FORWARDED}
        ray.init(
            address=None if address == LOCAL else address,
            runtime_env={"env_vars": env},
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    return ray


def stream(ray: Any, tasks: dict[Any, Any]) -> Iterator[tuple[Any, Any]]:
    """(label, result) of each task as it finishes, in finishing order.

    Args:
        tasks: Ray ObjectRef -> the caller's label for it. A task's error is raised here.
    """
    pending = list(tasks)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield tasks[ready[0]], ray.get(ready[0])
