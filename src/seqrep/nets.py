"""Networks: MLPs and the momentum (EMA) encoder. Sequence and pixel encoders join here."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MomentumEncoder", "mlp"]


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """A plain MLP ``in_dim -> hidden... -> out_dim`` with ``activation`` between layers.

    Input [..., in_dim], output [..., out_dim]; no activation after the last layer.
    """
    dims = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MomentumEncoder(nn.Module):
    """An exponential-moving-average copy of a module (CURL's key encoder, MoCo, BYOL).

    ``update(online)`` sets every parameter ``theta_k <- (1 - tau) theta_k + tau theta_q`` as in
    CURL's ``soft_update_params`` (tau = 0.05 for the encoder there); MoCo's momentum is
    ``m = 1 - tau``. Buffers (e.g. BatchNorm statistics) are copied as they are. The copy never
    receives gradients: its parameters have ``requires_grad=False`` and :meth:`forward` runs
    under ``torch.no_grad()``.

    Args:
        online: the module to track; it is deep-copied once at construction.
        tau: the fraction of the online weights mixed in per update, in [0, 1].
    """

    def __init__(self, online: nn.Module, tau: float = 0.05) -> None:
        super().__init__()
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau must lie in [0, 1], got {tau}")
        self.tau = tau
        self.target = copy.deepcopy(online)
        for p in self.target.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, online: nn.Module, tau: float | None = None) -> None:
        """Move the copy towards ``online`` (same architecture) by ``tau``."""
        tau = self.tau if tau is None else tau
        tgt = list(self.target.parameters())
        src = [p.detach() for p in online.parameters()]
        if len(tgt) != len(src) or any(a.shape != b.shape for a, b in zip(tgt, src, strict=True)):
            raise ValueError("online module does not match the momentum copy's architecture")
        # One fused kernel over all parameters: theta_k += tau * (theta_q - theta_k).
        torch._foreach_lerp_(tgt, src, tau)
        for bt, bs in zip(self.target.buffers(), online.buffers(), strict=True):
            bt.copy_(bs)

    @torch.no_grad()
    def forward(self, *args: Tensor, **kwargs: Tensor) -> Tensor:
        """Runs the copy without building a graph."""
        return self.target(*args, **kwargs)
