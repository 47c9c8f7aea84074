"""A uniform replay buffer (numpy ring) whose whole state can be checkpointed."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Stores (obs, action, reward, next_obs, terminal); samples uniform minibatches.

    ``terminal`` is gymnasium's ``terminated`` (not ``truncated``): a time-limit cut still
    bootstraps from next_obs.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminal = np.zeros(capacity, np.float32)

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminal: bool,
    ) -> None:
        i = self.pos
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.terminal[i] = next_obs, float(terminal)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        idx = torch.randint(self.size, (batch,), generator=generator).numpy()
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "action": torch.from_numpy(self.action[idx]),
            "reward": torch.from_numpy(self.reward[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "terminal": torch.from_numpy(self.terminal[idx]),
        }

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "size": n,
            "pos": self.pos,
            "obs": self.obs[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "action": self.action[:n].copy(),
            "reward": self.reward[:n].copy(),
            "terminal": self.terminal[:n].copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        for k in ("obs", "next_obs", "action", "reward", "terminal"):
            getattr(self, k)[:n] = state[k]
        self.size, self.pos = n, state["pos"]
