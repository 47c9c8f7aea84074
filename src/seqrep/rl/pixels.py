"""Learning from pixels: DeepMind Control tasks rendered headless as gymnasium environments
with frame stacks, a replay that stores each rendered frame once, and the random crops and
shifts CURL and DrQ train with.

Rendering needs an OpenGL backend: ``MUJOCO_GL=egl`` (Debian: libegl1 libegl-mesa0 libgl1) or
``MUJOCO_GL=osmesa`` (libosmesa6). :func:`make_pixel_env` sets egl when nothing is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqrep.rl.envs import RenderError, import_dm_control

__all__ = [
    "DMC_ACTION_REPEAT",
    "TOY_TASK",
    "FrameReplay",
    "PixelEvaluation",
    "RenderError",
    "default_action_repeat",
    "make_pixel_env",
    "parse_task",
    "pixel_episode_steps",
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


TOY_TASK = "seqrep-dot"  # the synthetic pixel task of the fast tests (rl.toy.PointPixels)
TOY_TIME_LIMIT = 50  # its episodes' steps
DMC_EPISODE_STEPS = 1000  # every suite task's time limit, in simulator steps


def make_pixel_env(
    task: str,
    size: int = 100,
    action_repeat: int | None = None,
    frame_stack: int = 3,
    camera_id: int = 0,
) -> Any:
    """A pixel task as a ``gymnasium.Env``: observations are the last ``frame_stack`` rendered
    frames, uint8 [3 * frame_stack, size, size] (the oldest first); actions lie in [-1, 1].

    Built from shimmy's DeepMind Control environment (or :class:`PointPixels` for
    ``seqrep-dot``) and gymnasium's wrappers: ``RepeatAction`` (the action repeated
    ``action_repeat`` times, rewards summed, stopping at an episode's end), then
    ``AddRenderObservation`` (one rendered frame per agent step) and ``FrameStackObservation``
    (at a reset the first frame fills every slot, as CURL's FrameStack, so a stack never holds
    frames of two episodes). Suite episodes end after 1000 simulator steps by the time limit,
    reported as ``truncated`` (never ``terminated``: the critic bootstraps through it).

    Args:
        task: ``DOMAIN-TASK``, e.g. ``"cartpole-swingup"``, or ``"seqrep-dot"``.
        size: rendered height and width (CURL: 100, then cropped to 84; DrQ: 84).
        action_repeat: simulator steps per agent step (default: CURL's per task, 1 for the toy).
        frame_stack: frames per observation.

    Raises:
        ValueError: an unknown or malformed task, or a repeat below 1.
        RenderError, ImportError: rendering is not possible here (see :func:`import_dm_control`).
    """
    import gymnasium as gym

    from seqrep.rl.toy import PointPixels

    repeat = action_repeat or default_action_repeat(task)
    if repeat < 1:
        raise ValueError(f"--action-repeat must be >= 1, got {repeat}")
    env = PointPixels(size) if task == TOY_TASK else _dmc_env(task, size, camera_id)
    env = _unit_actions(env)
    env = gym.wrappers.RepeatAction(env, repeat)
    env = gym.wrappers.AddRenderObservation(env, render_only=True)  # [size, size, 3]
    frame_space = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
    env = gym.wrappers.TransformObservation(env, _channels_first, frame_space)
    env = gym.wrappers.FrameStackObservation(env, frame_stack, padding_type="reset")
    return gym.wrappers.ReshapeObservation(env, (3 * frame_stack, size, size))


def default_action_repeat(task: str) -> int:
    """CURL's action repeat for ``task`` (Table 3 and the authors' scripts): 4 for a task it
    did not use, 1 for the toy task."""
    return 1 if task == TOY_TASK else DMC_ACTION_REPEAT.get(task, 4)


def pixel_episode_steps(task: str, action_repeat: int) -> int:
    """The agent steps of a full episode (every episode of these tasks runs to its time
    limit): what :class:`FrameReplay` sizes its frame ring by."""
    limit = TOY_TIME_LIMIT if task == TOY_TASK else DMC_EPISODE_STEPS
    return -(-limit // action_repeat)


def _channels_first(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame.transpose(2, 0, 1))


def _dmc_env(task: str, size: int, camera_id: int) -> Any:
    """shimmy's gymnasium environment of a DeepMind Control task, rendering ``size`` pixels."""
    import gymnasium as gym

    suite = import_dm_control(render=True)
    domain, name = parse_task(task)
    if (domain, name) not in suite.ALL_TASKS:
        known = ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS)
        raise ValueError(f"unknown DeepMind Control task {task!r}; the suite has: {known}")
    return gym.make(
        f"dm_control/{domain}-{name}-v0",
        render_mode="rgb_array",
        render_kwargs={"height": size, "width": size, "camera_id": camera_id},
    )


def _unit_actions(env: Any) -> Any:
    """Actions clipped to [-1, 1] and mapped onto the task's bounds. Every suite task's bounds
    are [-1, 1] already: then the agent's action reaches the simulator unchanged."""
    import gymnasium as gym

    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"pixel agents need continuous (Box) actions, got {space}")
    if not (np.all(space.low == -1) and np.all(space.high == 1)):
        ones = np.ones(space.shape, np.float32)
        env = gym.wrappers.RescaleAction(env, -ones, ones)
    return gym.wrappers.ClipAction(env)


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


class PixelEvaluation:
    """Evaluation episodes of a pixel policy in a gymnasium vector environment, the actions of
    all its environments chosen in one batched call.

    Episode e starts from ``reset(seed=seed + e)`` whatever the number of environments, so
    the returns do not depend on ``workers``: with 1, the environments share this process
    (``SyncVectorEnv``: only the acting is batched, the rendering stays sequential); with
    more, each is a subprocess (``AsyncVectorEnv``) and ``workers`` frames render at once,
    which is where the time goes on a CPU. The environments are made once and reused.

    Args:
        make_env: builds one environment (:func:`make_pixel_env` with the run's options).
        episodes: episodes per evaluation.
        workers: environments stepped together (1: in this process).
    """

    def __init__(self, make_env: Callable[[], Any], episodes: int, workers: int = 1) -> None:
        self.episodes = episodes
        # In this process, up to 10 environments; in subprocesses, one per worker.
        self.n = min(episodes, workers if workers > 1 else 10)
        import gymnasium as gym

        fns = [make_env] * self.n
        self.env = (
            gym.vector.AsyncVectorEnv(fns, context="spawn")
            if workers > 1
            else gym.vector.SyncVectorEnv(fns)
        )

    def run(
        self, act: Callable[[np.ndarray], np.ndarray], seed: int, frames: list[np.ndarray] | None
    ) -> np.ndarray:
        """Returns [episodes] of ``act`` (uint8 observations [N, C, H, W] -> actions [N, A]);
        ``frames`` (if given) receives episode 0's newest frame [3, H, W] at each step."""
        returns: list[float] = []
        for first in range(0, self.episodes, self.n):
            seeds = [seed + first + i for i in range(self.n)]
            returns += self._round(act, seeds, frames if first == 0 else None).tolist()
        return np.asarray(returns[: self.episodes])

    def _round(
        self, act: Callable[[np.ndarray], np.ndarray], seeds: list[int], frames: list | None
    ) -> np.ndarray:
        """One episode in each environment: their returns [n] (steps after an environment's
        episode ended, which its auto-reset begins, are not counted)."""
        obs, _ = self.env.reset(seed=list[int | None](seeds))
        total, done = np.zeros(self.n), np.zeros(self.n, bool)
        if frames is not None:
            frames.append(obs[0, -3:])
        while not done.all():
            obs, reward, terminated, truncated, _ = self.env.step(act(obs))
            total += np.where(done, 0.0, reward)
            if frames is not None and not done[0]:
                frames.append(obs[0, -3:])
            done |= terminated | truncated
        return total

    def close(self) -> None:
        self.env.close()
