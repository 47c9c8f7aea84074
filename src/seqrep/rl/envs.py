"""Gymnasium environments with gymnasium's own wrappers, and policy evaluation."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["RenderError", "check_renders", "evaluate_policy", "import_dm_control", "make_env"]


def _hide_dims(env, count: int):  # type: ignore[no-untyped-def]
    """Partial observability as in Representation Matters' online setting: ``count`` observation
    dimensions, drawn afresh at every step, read 0. The draws are seeded by ``reset(seed=...)``,
    so an evaluation is reproducible."""
    import gymnasium as gym

    class HideRandomDimensions(gym.ObservationWrapper):  # type: ignore[type-arg]
        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            super().__init__(inner)
            self.rng = np.random.default_rng()

        def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
            if seed is not None:
                self.rng = np.random.default_rng(seed)
            return super().reset(seed=seed, options=options)

        def observation(self, observation):  # type: ignore[no-untyped-def]
            out = np.array(observation, dtype=np.float32, copy=True)
            out[self.rng.choice(out.shape[-1], count, replace=False)] = 0.0
            return out

    return HideRandomDimensions(env)


class RenderError(RuntimeError):
    """MuJoCo could not render headless (no OpenGL backend installed or selected)."""


# What dm_control accepts in MUJOCO_GL (dm_control/_render/__init__.py); the first three
# render, the others switch rendering off.
_GL_RENDERING = ("egl", "osmesa", "glfw")
_GL_OTHER = ("", "0", "1", "disable", "disabled", "enable", "enabled", "false", "off", "on", "true")
_GL_FIX = (
    "set MUJOCO_GL=egl (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1) or "
    "MUJOCO_GL=osmesa (apt-get install libosmesa6)"
)


def import_dm_control(render: bool) -> Any:
    """``dm_control.suite`` with shimmy's gymnasium ids registered, under a MuJoCo OpenGL
    backend that can work here (``MUJOCO_GL``, egl when unset), or one line saying what to set
    or install. ``render``: pixels will be rendered, so the backend must draw off-screen.

    Raises:
        RenderError: MUJOCO_GL names no backend, a window backend without a display, or a
            backend whose library is missing.
        ImportError: dm_control or shimmy is not installed.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless: no X display to open
    backend = os.environ["MUJOCO_GL"].lower()
    if backend not in _GL_RENDERING + _GL_OTHER:
        raise RenderError(f"MUJOCO_GL={backend!r} is not a MuJoCo rendering backend: {_GL_FIX}")
    if render and backend not in ("egl", "osmesa") and not os.environ.get("DISPLAY"):
        raise RenderError(
            f"MUJOCO_GL={backend!r} renders through a window, and there is no display (DISPLAY "
            f"is unset): {_GL_FIX}"
        )
    try:
        import dm_control.suite as suite
        import shimmy  # noqa: F401 - registers the dm_control/* ids with gymnasium
    except ImportError as e:
        raise ImportError(
            f"DeepMind Control tasks need dm_control and shimmy ({e}): pip install 'seqrep[pixels]'"
        ) from e
    except Exception as e:  # the backend's library is missing: PyOpenGL fails while importing
        raise RenderError(
            f"MuJoCo's {backend} backend cannot load ({type(e).__name__}: {e}): {_GL_FIX}"
        ) from e
    return suite


def check_renders(env: Any) -> None:
    """Reset ``env`` once and render a frame: a missing or broken OpenGL backend fails here,
    in one line.

    Raises:
        RenderError: MuJoCo could not render, with the packages that bring a backend.
    """
    try:
        env.reset(seed=0)
        env.render()
    except (ValueError, ImportError, RenderError):
        raise
    except Exception as e:  # no OpenGL backend: say which packages bring one
        backend = os.environ.get("MUJOCO_GL", "")
        raise RenderError(
            f"MuJoCo cannot render headless with MUJOCO_GL={backend} ({type(e).__name__}: "
            f"{e}). On Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1 (egl), or "
            "libosmesa6 and MUJOCO_GL=osmesa"
        ) from e


def make_env(  # type: ignore[no-untyped-def]
    env_id: str, seed: int | None = None, hide_dims: int = 0, render_mode: str | None = None
):
    """``gymnasium.make(env_id)`` with actions rescaled to [-1, 1] (``RescaleAction``) and
    episode return/length statistics (``RecordEpisodeStatistics``); seeded on first reset.
    ``hide_dims`` > 0 zeroes that many random observation dimensions at every step;
    ``render_mode="rgb_array"`` lets ``env.render()`` return frames (videos).

    MuJoCo tasks (HalfCheetah-v5, Hopper-v5, Walker2d-v5) need ``pip install gymnasium[mujoco]``.
    """
    try:
        import gymnasium as gym
    except ImportError as e:
        raise ImportError("environments need gymnasium: pip install 'seqrep[rl]'") from e
    if env_id.startswith("dm_control/"):  # DeepMind Control through shimmy (seqrep[pixels])
        import_dm_control(render=render_mode is not None)
    # dm_control's float64 spaces (unbounded states) warn about overflow when gymnasium casts
    # their limits to float32 in make and in the wrappers; the casts are right, the noise is not.
    warnings.filterwarnings(
        "ignore", "overflow encountered in cast", RuntimeWarning, module="gymnasium.spaces.box"
    )
    if render_mode is not None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo tasks render headless too
    try:
        env = gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as e:
        raise ValueError(f"cannot make environment {env_id!r}: {e}") from e
    except ImportError as e:  # e.g. MuJoCo not installed
        raise ImportError(f"{env_id} needs an optional package: {e}") from e
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(
            f"{env_id} has a {type(env.action_space).__name__} action space; "
            "seqrep's agents need continuous (Box) actions"
        )
    # float32 bounds: the policy's dtype, and no precision warning from gymnasium.
    ones = np.ones(env.action_space.shape, dtype=np.float32)
    env = gym.wrappers.RescaleAction(env, -ones, ones)
    if isinstance(env.observation_space, gym.spaces.Dict):  # e.g. dm_control's named states
        env = gym.wrappers.FlattenObservation(env)  # type: ignore[assignment]
    if hide_dims:
        size = int(np.prod(env.observation_space.shape or (0,)))
        if not 0 < hide_dims < size:
            raise ValueError(
                f"--hide-dims {hide_dims}: {env_id} observations have {size} dimensions; hide "
                f"between 1 and {size - 1}"
            )
        env = _hide_dims(env, hide_dims)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def evaluate_policy(
    env_id: str,
    policy: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    seed: int,
    hide_dims: int = 0,
    frames: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes (seeds seed, seed+1, ...): [episodes],
    with ``hide_dims`` as in :func:`make_env`. ``frames`` (if given) receives the rendered
    frames [H, W, 3] of the first episode, from its reset on."""
    env = make_env(
        env_id, hide_dims=hide_dims, render_mode="rgb_array" if frames is not None else None
    )
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        record = frames if i == 0 else None  # the first episode's frames, when asked for
        if record is not None:
            record.append(env.render())
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
            if record is not None:
                record.append(env.render())
        returns.append(total)
    env.close()
    return np.asarray(returns)
