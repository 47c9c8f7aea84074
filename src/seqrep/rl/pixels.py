"""Learning from pixels: DeepMind Control tasks rendered headless, frame stacks, a replay that
stores each rendered frame once, and the random / centre crops CURL trains with.

Rendering needs an OpenGL backend: ``MUJOCO_GL=egl`` (Debian: libegl1 libegl-mesa0 libgl1) or
``MUJOCO_GL=osmesa`` (libosmesa6). :func:`make_dmc_pixels` sets egl when nothing is chosen.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqrep.rl.envs import RenderError, import_dm_control

__all__ = [
    "DMC_ACTION_REPEAT",
    "DMCPixels",
    "FrameReplay",
    "FrameStacker",
    "RenderError",
    "center_crop",
    "parse_task",
    "random_crop",
    "random_shift",
]

# Action repeat per task as in CURL (Table 3 / the authors' scripts); 4 for any other task.
DMC_ACTION_REPEAT = {
    "cartpole-swingup": 8,
    "finger-spin": 2,
    "walker-walk": 2,
    "reacher-easy": 4,
    "cheetah-run": 4,
    "ball_in_cup-catch": 4,
}


def parse_task(task: str) -> tuple[str, str]:
    """``"ball_in_cup-catch"`` -> ``("ball_in_cup", "catch")``; a clear error for other forms."""
    domain, sep, name = task.partition("-")
    if not sep or not domain or not name:
        raise ValueError(
            f"--task {task!r} is not DOMAIN-TASK (e.g. cartpole-swingup, ball_in_cup-catch)"
        )
    return domain, name


class DMCPixels:
    """A DeepMind Control suite task seen as pixels, through shimmy's gymnasium adapter.

    Each :meth:`step` repeats the action ``action_repeat`` times (summing the rewards), then
    renders one frame [3, size, size] uint8 from ``camera_id``. Episodes last 1000 simulator
    steps and end by the time limit, reported as ``truncated`` (never ``terminated``: a time
    limit is not a terminal state and the critic must bootstrap through it).

    Args:
        task: ``DOMAIN-TASK``, e.g. ``"cartpole-swingup"``.
        size: rendered height and width (CURL: 100, then cropped to 84).
        action_repeat: simulator steps per agent step (default: CURL's per task).
    """

    def __init__(
        self, task: str, size: int = 100, camera_id: int = 0, action_repeat: int | None = None
    ) -> None:
        suite = import_dm_control(render=True)
        import gymnasium as gym

        domain, name = parse_task(task)
        if (domain, name) not in suite.ALL_TASKS:
            known = ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS)
            raise ValueError(f"unknown DeepMind Control task {task!r}; the suite has: {known}")
        self.task = task
        self.action_repeat = action_repeat or DMC_ACTION_REPEAT.get(task, 4)
        if self.action_repeat < 1:
            raise ValueError(f"--action-repeat must be >= 1, got {self.action_repeat}")
        self.env = gym.make(
            f"dm_control/{domain}-{name}-v0",
            render_mode="rgb_array",
            render_kwargs={"height": size, "width": size, "camera_id": camera_id},
        )
        space = self.env.action_space
        assert isinstance(space, gym.spaces.Box), "dm_control suite tasks have Box actions"
        self.action_dim = int(np.prod(space.shape))
        # Agents act in [-1, 1]; map onto the task's bounds (all suite tasks use [-1, 1] today).
        self._low = np.asarray(space.low, np.float64)
        self._high = np.asarray(space.high, np.float64)
        self.frame_shape = (3, size, size)
        # Suite episodes last 1000 simulator steps; the replay sizes its frame ring by this.
        self.episode_steps = -(-1000 // self.action_repeat)

    def _frame(self) -> np.ndarray:
        try:
            frame = self.env.render()
        except Exception as e:  # no OpenGL backend: say which packages bring one
            backend = os.environ.get("MUJOCO_GL", "")
            raise RenderError(
                f"MuJoCo cannot render headless with MUJOCO_GL={backend} ({type(e).__name__}: "
                f"{e}). On Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1 (egl), or "
                "libosmesa6 and MUJOCO_GL=osmesa"
            ) from e
        return np.ascontiguousarray(np.asarray(frame).transpose(2, 0, 1))

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; the first frame [3, size, size] uint8."""
        self.env.reset(seed=seed)
        return self._frame()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """Act ``action_repeat`` times: (frame, summed reward, terminated, truncated)."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        a = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        total, terminated, truncated = 0.0, False, False
        for _ in range(self.action_repeat):
            _, reward, terminated, truncated, _ = self.env.step(a)
            total += float(reward)
            if terminated or truncated:
                break
        return self._frame(), total, bool(terminated), bool(truncated)

    def close(self) -> None:
        self.env.close()


class FrameStacker:
    """The last ``k`` frames as one observation [k * 3, H, W]; at a reset the first frame fills
    every slot (as CURL's FrameStack), the same rule :class:`FrameReplay` rebuilds stacks by."""

    def __init__(self, k: int) -> None:
        self.frames: deque[np.ndarray] = deque(maxlen=k)
        self.k = k

    def reset(self, frame: np.ndarray) -> np.ndarray:
        for _ in range(self.k):
            self.frames.append(frame)
        return self.observation()

    def push(self, frame: np.ndarray) -> np.ndarray:
        self.frames.append(frame)
        return self.observation()

    def observation(self) -> np.ndarray:
        return np.concatenate(list(self.frames), axis=0)


class FrameReplay:
    """Uniform replay of pixel transitions that stores every rendered frame once.

    An episode contributes its reset frame, then one frame per step. Transition t holds the
    global index j of its observation's newest frame and of its episode's first frame; the
    stacks are rebuilt by index, frames j-k+1..j for ``obs`` and j-k+2..j+1 for ``next_obs``,
    each clamped to the episode's first frame, so a stack never crosses an episode boundary.
    Frames sit in a ring large enough for every frame that the retained transitions reference.

    Args:
        capacity: transitions kept (the oldest are dropped first).
        frame_shape: one frame, e.g. (3, 100, 100).
        act_dim: action size.
        stack: frames per observation (CURL: 3).
        min_episode_steps: the shortest episode, in transitions, that will be added (sizes the
            frame ring: each episode adds one frame more than it has transitions).
    """

    def __init__(
        self,
        capacity: int,
        frame_shape: tuple[int, ...],
        act_dim: int,
        stack: int = 3,
        min_episode_steps: int = 1,
    ) -> None:
        self.capacity, self.stack = capacity, stack
        self.frame_capacity = capacity + -(-capacity // max(min_episode_steps, 1)) + stack + 1
        self.frames = np.zeros((self.frame_capacity, *frame_shape), np.uint8)
        self.newest = np.zeros(capacity, np.int64)  # global frame index of obs's newest frame
        self.first = np.zeros(capacity, np.int64)  # global frame index of the episode's first
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminal = np.zeros(capacity, np.float32)
        self.size, self.pos = 0, 0
        self.frames_written = 0  # global count; frame g lives at g % frame_capacity
        self._episode_first = -1
        self._last_frame = -1

    def _put_frame(self, frame: np.ndarray) -> int:
        g = self.frames_written
        self.frames[g % self.frame_capacity] = frame
        self.frames_written += 1
        return g

    def start_episode(self, frame: np.ndarray) -> None:
        """The reset frame [3, H, W] of a new episode."""
        self._episode_first = self._last_frame = self._put_frame(frame)

    def add(
        self, action: np.ndarray, reward: float, next_frame: np.ndarray, terminal: bool
    ) -> None:
        """One step: the action taken, its reward, the frame rendered after it, and whether the
        episode reached a terminal state (a time limit is not one)."""
        if self._episode_first < 0:
            raise ValueError("call start_episode(frame) with the reset frame first")
        i = self.pos
        if self.size == self.capacity:  # the transition dropped now must be the oldest kept
            oldest = self.newest[(i + 1) % self.capacity] - self.stack + 1
            if oldest <= self.frames_written - self.frame_capacity:
                raise RuntimeError(
                    "episodes are shorter than min_episode_steps: frames still referenced "
                    "would be overwritten; build the replay with the shortest episode length"
                )
        self.newest[i], self.first[i] = self._last_frame, self._episode_first
        self.action[i], self.reward[i], self.terminal[i] = action, reward, float(terminal)
        self._last_frame = self._put_frame(next_frame)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _stacks(self, newest: np.ndarray, first: np.ndarray) -> np.ndarray:
        offsets = np.arange(self.stack - 1, -1, -1)  # k-1, ..., 0
        g = np.maximum(newest[:, None] - offsets[None, :], first[:, None])  # [B, k]
        frames = self.frames[g % self.frame_capacity]  # [B, k, 3, H, W]
        return frames.reshape(len(newest), -1, *frames.shape[3:])

    def stacks(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The obs and next_obs stacks [B, k * 3, H, W] uint8 of transitions ``idx``."""
        newest, first = self.newest[idx], self.first[idx]
        return self._stacks(newest, first), self._stacks(newest + 1, first)

    def sample(
        self, batch: int, generator: torch.Generator | None = None, device: str = "cpu"
    ) -> dict[str, Tensor]:
        """A uniform minibatch: obs, next_obs [B, k*3, H, W] uint8, action [B, A], reward [B],
        terminal [B], on ``device``."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        idx = torch.randint(self.size, (batch,), generator=generator).numpy()
        obs, next_obs = self.stacks(idx)
        out = {
            "obs": torch.from_numpy(obs),
            "next_obs": torch.from_numpy(next_obs),
            "action": torch.from_numpy(self.action[idx]),
            "reward": torch.from_numpy(self.reward[idx]),
            "terminal": torch.from_numpy(self.terminal[idx]),
        }
        return {k: v.to(device, non_blocking=True) for k, v in out.items()}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (only the filled part of the arrays)."""
        n, f = self.size, min(self.frames_written, self.frame_capacity)
        return {
            "size": n,
            "pos": self.pos,
            "frames_written": self.frames_written,
            "episode_first": self._episode_first,
            "last_frame": self._last_frame,
            "frames": self.frames[:f].copy(),
            **{
                k: getattr(self, k)[:n].copy()
                for k in ("newest", "first", "action", "reward", "terminal")
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        self.frames[: len(state["frames"])] = state["frames"]
        for k in ("newest", "first", "action", "reward", "terminal"):
            getattr(self, k)[:n] = state[k]
        self.size, self.pos = n, state["pos"]
        self.frames_written = state["frames_written"]
        self._episode_first, self._last_frame = state["episode_first"], state["last_frame"]


def random_crop(pixels: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """One random ``size`` x ``size`` window per sample, the same window for all channels (so for
    every stacked frame): [B, C, H, W] -> [B, C, size, size], on the input's device and dtype.

    Offsets are uniform over all H - size + 1 by W - size + 1 valid positions, drawn with
    ``generator`` (which must live on the input's device). The windows are a strided view
    (``unfold``) and one gather copies just the chosen ones; crop uint8 pixels before
    converting them, a quarter of the memory traffic of cropping floats.
    """
    b, _, h, w = pixels.shape
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds the image ({h} x {w})")
    dev = pixels.device
    top = torch.randint(h - size + 1, (b,), generator=generator, device=dev)
    left = torch.randint(w - size + 1, (b,), generator=generator, device=dev)
    windows = pixels.unfold(2, size, 1).unfold(3, size, 1)  # [B, C, H-S+1, W-S+1, S, S]
    return windows[torch.arange(b, device=dev), :, top, left]


def random_shift(pixels: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """DrQ's image augmentation: replicate-pad by ``pad`` pixels on every side, then a random
    crop back to the input's size, i.e. a shift of up to ``pad`` pixels each way with the
    border pixels repeated: [B, C, H, W] -> [B, C, H, W] (square images), same dtype (crop
    uint8 pixels before converting them). The crop is :func:`random_crop` on the padded
    images, so its offsets, 0..2*pad, draw from ``generator`` the same way."""
    h, w = pixels.shape[-2:]
    if h != w:
        raise ValueError(f"random_shift needs square images, got {h} x {w}")
    padded = torch.nn.functional.pad(pixels, (pad, pad, pad, pad), mode="replicate")
    return random_crop(padded, h, generator)


def center_crop(pixels: Tensor, size: int) -> Tensor:
    """The centre ``size`` x ``size`` window: [B, C, H, W] -> [B, C, size, size] (acting and
    evaluation; offsets (H - size) // 2 and (W - size) // 2)."""
    h, w = pixels.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds the image ({h} x {w})")
    top, left = (h - size) // 2, (w - size) // 2
    return pixels[..., top : top + size, left : left + size]
