"""A synthetic pixel task for fast tests and examples, beside the DeepMind Control tasks of
:mod:`seqrep.rl.pixels` (``make_pixel_env("seqrep-dot")`` wraps it the same way)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from seqrep.rl.pixels import TOY_TIME_LIMIT

__all__ = ["PointPixels"]


class PointPixels(gym.Env):  # type: ignore[type-arg]
    """A synthetic pixel task for fast tests, as a ``gymnasium.Env``: a bright 3x3 dot on a dark
    canvas (its ``render()``), moved by a 2-d action (0.1 per unit, walls at +-1); reward
    1 - |position| / sqrt(2) per step (0 to 1); episodes of 50 steps, ended by the time limit
    (truncated). Its observation is the position; :func:`make_pixel_env` shows the frames."""

    time_limit = TOY_TIME_LIMIT
    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # noqa: RUF012 (gymnasium's)

    def __init__(self, size: int = 40) -> None:
        self.size, self.render_mode = size, "rgb_array"
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float64)
        self._t, self._pos = 0, np.zeros(2)

    def render(self) -> np.ndarray:
        """The frame [size, size, 3] uint8."""
        img = np.full((self.size, self.size, 3), 20, np.uint8)
        c = np.round((self._pos + 1.0) / 2.0 * (self.size - 4)).astype(int) + 1
        img[c[1] : c[1] + 3, c[0] : c[0] + 3] = 255
        return img

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos, self._t = self.np_random.uniform(-1.0, 1.0, 2), 0
        return self._pos.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._pos = np.clip(self._pos + 0.1 * np.clip(action, -1, 1), -1.0, 1.0)
        self._t += 1
        reward = 1.0 - float(np.linalg.norm(self._pos)) / np.sqrt(2.0)
        return self._pos.copy(), reward, False, self._t >= self.time_limit, {}
