"""A random minibatch of transitions in the agents' batch layout, for the hand-computation
tests of SAC, BC and TD3+BC."""

from __future__ import annotations

import torch


def transition_batch(seed: int = 0, b: int = 6, obs_dim: int = 3, act_dim: int = 2):
    """obs [b, obs_dim], action [b, act_dim] in [-1, 1], reward [b], next_obs [b, obs_dim],
    terminal [b] (every third transition is terminal, so both TD branches are exercised)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(b, obs_dim, generator=g),
        "action": torch.rand(b, act_dim, generator=g) * 2 - 1,
        "reward": torch.randn(b, generator=g),
        "next_obs": torch.randn(b, obs_dim, generator=g),
        "terminal": (torch.arange(b) % 3 == 0).float(),
    }
