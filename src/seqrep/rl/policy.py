"""A trained agent's policy for use outside seqrep: :meth:`Policy.act` takes one observation
or a batch, numpy or torch, and answers in kind; deterministic by default, as every agent's
``act`` is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Policy"]


class _Acting(Protocol):
    """What every agent seqrep trains offers: ``act(obs [B, ...], deterministic) -> [B, A]``."""

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor: ...


class Policy:
    """The policy of a ``seqrep sac``, ``bc``, ``offline-rl`` or ``curl`` run.

    Args:
        agent: the trained agent (SAC, BehaviourCloning, TD3BC or PixelSAC); its ``act`` maps a
            batch of observations to actions [B, A] in [-1, 1].
        obs_shape: one observation's shape: (obs_dim,) for states, (C, H, W) uint8 pixels.
        env_id: the environment it was trained in (a gymnasium id or a DeepMind Control task).
        kind: the run kind (``sac``, ``bc``, ``offline-rl``, ``curl``).
        env_factory: builds the environment it was trained in (:meth:`make_env`).

    Attributes:
        agent: the torch module, for further training or inspection.
        report: the run's evaluation table (Markdown), where it was trained in this process.
        summary: its training summary (evaluations, seconds, final returns), likewise.
    """

    def __init__(
        self,
        agent: nn.Module,
        obs_shape: tuple[int, ...],
        env_id: str,
        kind: str,
        env_factory: Callable[..., Any] | None = None,
    ):
        self.agent = agent.eval()
        self.obs_shape, self.env_id, self.kind = tuple(obs_shape), env_id, kind
        self._env_factory = env_factory
        self.pixels = kind == "curl"
        self.report = ""
        self.summary: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return next(self.agent.parameters()).device

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """Actions in [-1, 1] for ``obs``: one observation (shape ``obs_shape``) -> [A], or a
        batch [B, *obs_shape] -> [B, A]; a numpy array (or list) gives numpy, a tensor gives a
        tensor on its device. ``deterministic=False`` samples from a stochastic policy (SAC's);
        BC and TD3+BC act deterministically either way.

        Raises:
            ValueError: an observation of another shape than the policy's.
        """
        is_tensor = isinstance(obs, Tensor)
        x = obs if is_tensor else torch.as_tensor(np.asarray(obs))
        single = tuple(x.shape) == self.obs_shape
        if not single and tuple(x.shape[1:]) != self.obs_shape:
            raise ValueError(
                f"the policy acts on observations of shape {self.obs_shape} (or a batch "
                f"[B, {', '.join(map(str, self.obs_shape))}]), got {tuple(x.shape)}"
            )
        dtype = torch.uint8 if self.pixels else torch.float32
        x = x.to(self.device, dtype)
        agent = cast(_Acting, self.agent)
        actions = agent.act(x[None] if single else x, deterministic=deterministic)
        actions = actions[0] if single else actions
        if is_tensor:
            return actions.to(obs.device)
        return actions.cpu().numpy()

    def make_env(self, **options: Any) -> Any:
        """A new ``gymnasium.Env`` like the one the policy was trained and evaluated in (actions
        in [-1, 1]; for ``curl``, the same task, image size, action repeat and frame stack).
        ``options`` go to its factory: ``render_mode="rgb_array"`` for a state task's frames.

        Raises:
            ValueError: the policy was built without an environment (e.g. by hand).
        """
        if self._env_factory is None:
            raise ValueError(
                f"{self!r} has no environment recorded; build one with "
                "seqrep.rl.envs.make_env or seqrep.rl.pixels.make_pixel_env"
            )
        return self._env_factory(**options)

    def __call__(self, obs: Any) -> Any:
        """:meth:`act` deterministically: a policy callable as gymnasium loops and
        ``seqrep collect`` use it."""
        return self.act(obs)

    def __repr__(self) -> str:
        return (
            f"Policy({self.kind} on {self.env_id}: observations {self.obs_shape}, "
            f"{type(self.agent).__name__})"
        )
