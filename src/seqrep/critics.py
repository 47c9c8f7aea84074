"""Critics: scoring functions f(query, key) used by contrastive losses and MI bounds.

A critic maps a query batch and a key batch to scores. Two shapes of call cover every
negative-sampling layout in :mod:`seqrep.losses`:

* ``critic.pairwise(q [B, Dq], k [N, Dk]) -> [B, N]``: every query against every key;
* ``critic.paired(q [B, Dq], k [B, M, Dk]) -> [B, M]``: each query against its own M keys.

Most critics are *separable*, ``f(q, k) = <embed_query(q), embed_key(k)>``, so both calls are a
single matrix product (memory O(B x N)). :class:`ConcatCritic` is the non-separable
``f(q, k) = MLP([q, k])`` of Poole et al. 2019, which must evaluate all B x N pairs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BilinearCritic",
    "BilinearPredictors",
    "ConcatCritic",
    "CosineCritic",
    "Critic",
    "DotCritic",
    "SeparableCritic",
    "SeparableMLPCritic",
]


class Critic(nn.Module):
    """Base class: subclasses implement :meth:`pairwise` and :meth:`paired`."""

    def pairwise(self, query: Tensor, key: Tensor) -> Tensor:
        """Scores of every query against every key: [B, Dq], [N, Dk] -> [B, N]."""
        raise NotImplementedError

    def paired(self, query: Tensor, key: Tensor) -> Tensor:
        """Scores of each query against its own keys: [B, Dq], [B, M, Dk] -> [B, M]."""
        raise NotImplementedError

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        """Alias of :meth:`pairwise`: [B, Dq], [N, Dk] -> [B, N]."""
        return self.pairwise(query, key)


class SeparableCritic(Critic):
    """f(q, k) = <embed_query(q), embed_key(k)>; subclasses override the two embeddings.

    ``scale`` multiplies the query embedding (not the [B, N] score matrix) so that a temperature
    costs O(B x D), not O(B x N).
    """

    def embed_query(self, query: Tensor) -> Tensor:
        """[..., Dq] -> [..., D]."""
        return query

    def embed_key(self, key: Tensor) -> Tensor:
        """[..., Dk] -> [..., D]."""
        return key

    def pairwise(self, query: Tensor, key: Tensor, scale: float = 1.0) -> Tensor:
        q = self.embed_query(query)
        if scale != 1.0:
            q = q * scale
        return q @ self.embed_key(key).transpose(-1, -2)

    def paired(self, query: Tensor, key: Tensor, scale: float = 1.0) -> Tensor:
        q = self.embed_query(query)
        if scale != 1.0:
            q = q * scale
        # [B, M, D] @ [B, D, 1] -> [B, M]: a batched matrix-vector product, no [B, M, D] temporary.
        return torch.bmm(self.embed_key(key), q.unsqueeze(-1)).squeeze(-1)


class DotCritic(SeparableCritic):
    """f(q, k) = q^T k (CPC, SimCLR without normalisation)."""


class CosineCritic(SeparableCritic):
    """f(q, k) = cos(q, k) / temperature (SimCLR / NT-Xent).

    Args:
        temperature: divides the cosine; must be > 0.
        learnable: learn log(1/temperature) as a parameter (CLIP-style), clamped to [0, log 100].
    """

    def __init__(self, temperature: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        log_inv_t = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_inv_temperature = nn.Parameter(log_inv_t)
        else:
            self.register_buffer("log_inv_temperature", log_inv_t)

    @property
    def temperature(self) -> float:
        return float(torch.exp(-self.log_inv_temperature.detach()))

    def embed_query(self, query: Tensor) -> Tensor:
        inv_t = self.log_inv_temperature.clamp(0.0, math.log(100.0)).exp()
        return F.normalize(query, dim=-1) * inv_t.to(query.dtype)

    def embed_key(self, key: Tensor) -> Tensor:
        return F.normalize(key, dim=-1)


class BilinearCritic(SeparableCritic):
    """f(q, k) = q^T W k with a learnable W [Dq, Dk] (CURL, CPC's W_k).

    Args:
        query_dim: Dq.
        key_dim: Dk (defaults to Dq).
        init: ``"curl"`` draws W ~ U[0, 1) as CURL's reference code does; ``"identity"``
            starts from the dot product (square only); ``"xavier"`` uses Glorot-uniform.
    """

    def __init__(self, query_dim: int, key_dim: int | None = None, init: str = "curl") -> None:
        super().__init__()
        key_dim = query_dim if key_dim is None else key_dim
        weight = torch.empty(query_dim, key_dim)
        if init == "curl":
            nn.init.uniform_(weight, 0.0, 1.0)
        elif init == "identity":
            if query_dim != key_dim:
                raise ValueError("init='identity' needs query_dim == key_dim")
            nn.init.eye_(weight)
        elif init == "xavier":
            nn.init.xavier_uniform_(weight)
        else:
            raise ValueError(f"unknown init {init!r}; choose 'curl', 'identity' or 'xavier'")
        self.weight = nn.Parameter(weight)

    def embed_query(self, query: Tensor) -> Tensor:
        if query.shape[-1] != self.weight.shape[0]:
            raise ValueError(
                f"query has {query.shape[-1]} features but W expects {self.weight.shape[0]}"
            )
        return query @ self.weight


class SeparableMLPCritic(SeparableCritic):
    """f(x, y) = g(x)^T h(y) with two networks (Poole et al.'s separable critic)."""

    def __init__(self, query_net: nn.Module, key_net: nn.Module) -> None:
        super().__init__()
        self.query_net = query_net
        self.key_net = key_net

    def embed_query(self, query: Tensor) -> Tensor:
        return self.query_net(query)

    def embed_key(self, key: Tensor) -> Tensor:
        return self.key_net(key)


class ConcatCritic(Critic):
    """f(x, y) = net([x, y]) (Poole et al.'s concat critic): evaluates every pair.

    ``net`` maps [..., Dq + Dk] to [..., 1]. Memory is O(B x N x hidden): use it for the small
    batches of MI estimation, not for large-batch contrastive training.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def pairwise(self, query: Tensor, key: Tensor) -> Tensor:
        b, n = query.shape[0], key.shape[0]
        pairs = torch.cat(
            [query[:, None, :].expand(b, n, -1), key[None, :, :].expand(b, n, -1)], dim=-1
        )
        return self.net(pairs).squeeze(-1)

    def paired(self, query: Tensor, key: Tensor) -> Tensor:
        pairs = torch.cat([query[:, None, :].expand(-1, key.shape[1], -1), key], dim=-1)
        return self.net(pairs).squeeze(-1)


class BilinearPredictors(nn.Module):
    """CPC's K step-specific maps: predictions W_k c_t for k = 1..K in one matmul.

    ``forward(context [..., C]) -> [..., K, Z]``; the CPC score of a candidate z is then
    ``z^T W_k c_t``, i.e. a dot product between z and prediction k.
    """

    def __init__(self, context_dim: int, z_dim: int, steps: int) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps, self.z_dim = steps, z_dim
        # One Linear(C, K*Z) is K bilinear maps stacked; no bias, as in the CPC paper.
        self.proj = nn.Linear(context_dim, steps * z_dim, bias=False)

    def forward(self, context: Tensor) -> Tensor:
        out = self.proj(context)
        return out.unflatten(-1, (self.steps, self.z_dim))
