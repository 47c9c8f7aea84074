"""The encoder hook every agent shares: observations -> (normalise) -> encoder -> features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqrep.nets import StateEncoder

__all__ = ["EncodedAgent", "saved_encoder"]


def saved_encoder(agent_state: dict[str, Tensor], freeze: bool) -> dict[str, Any]:
    """The encoder options to rebuild an agent from its saved state dict: a
    :class:`~seqrep.nets.StateEncoder` of the saved sizes and weights under ``encoder``, and
    ``freeze_encoder``; nothing for an agent trained without an encoder."""
    if not any(k.startswith("encoder.") for k in agent_state):
        return {}
    encoder = StateEncoder.from_state_dict(agent_state, "encoder.")
    return {"encoder": encoder, "freeze_encoder": freeze}


def _output_size(encoder: nn.Module | None, obs_dim: int) -> int:
    """The feature size ``encoder`` gives on [1, obs_dim] observations (obs_dim for none)."""
    if encoder is None:
        return obs_dim
    size = getattr(encoder, "feature_dim", None)
    if isinstance(size, int):
        return size
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    with torch.no_grad():
        return int(encoder(torch.zeros(1, obs_dim, device=device)).shape[-1])


class EncodedAgent(nn.Module):
    """Holds the optional observation encoder and its freeze flag.

    Args:
        obs_dim: observation size.
        encoder: observations [B, obs_dim] -> features [B, feature_dim]; identity when None.
        feature_dim: the encoder's output size; by default the encoder's ``feature_dim``
            attribute (a :class:`~seqrep.nets.StateEncoder` has one), else measured on one
            zero observation; obs_dim without an encoder.
        freeze_encoder: the encoder's parameters never change (no gradients, no optimiser).
    """

    obs_mean: Tensor
    obs_std: Tensor

    def __init__(
        self,
        obs_dim: int,
        encoder: nn.Module | None = None,
        feature_dim: int | None = None,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else nn.Identity()
        self.feature_dim = (
            feature_dim if feature_dim is not None else _output_size(encoder, obs_dim)
        )
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)
        # Observation normalisation (identity until set_obs_normaliser), applied before encoding.
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    @property
    def device(self) -> torch.device:
        """Where the agent's tensors live (move it with ``.to(device)``)."""
        return self.obs_mean.device

    def set_obs_normaliser(self, mean: Tensor, std: Tensor) -> None:
        """z-score observations with these statistics (e.g. of an offline data set)."""
        self.obs_mean.copy_(mean)
        self.obs_std.copy_(std.clamp_min(1e-3))

    def normalise(self, obs: Tensor) -> Tensor:
        """(obs - mean) / std with the statistics of :meth:`set_obs_normaliser`: [B, O]."""
        return (obs - self.obs_mean) / self.obs_std

    def features(self, obs: Tensor) -> Tensor:
        """[B, obs_dim] -> [B, feature_dim]; no graph through a frozen encoder."""
        obs = self.normalise(obs)
        if self.freeze_encoder:
            with torch.no_grad():
                return self.encoder(obs)
        return self.encoder(obs)

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions [B, A] in [-1, 1] for observations [B, obs_dim]; each agent defines it."""
        raise NotImplementedError

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One gradient step on a batch of transitions (obs [B, O], action [B, A], reward [B],
        next_obs [B, O], terminal [B]); returns scalar metrics. Each agent defines it."""
        raise NotImplementedError

    def numpy_policy(self, deterministic: bool = True) -> Callable[[np.ndarray], np.ndarray]:
        """The agent as an environment policy: one observation [O] -> one action [A] (numpy)."""

        def policy(obs: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None]
            return self.act(x, deterministic=deterministic)[0].cpu().numpy()

        return policy

    def encoder_parameters(self) -> list[nn.Parameter]:
        """What an optimiser may update: none when frozen."""
        return [] if self.freeze_encoder else list(self.encoder.parameters())
