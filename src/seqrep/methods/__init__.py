"""Representation-learning methods: encoder(s) + critic + objective.

Each sequence method exposes ``encoder``, ``loss(x, lengths, generator) -> (loss, metrics)`` and
``represent(x, lengths) -> [B, D]`` (the frozen instance vector that probes consume).
"""

from __future__ import annotations

from seqrep.methods.base import LossOutput, SeriesMethod
from seqrep.methods.cpc import CPC, BidirectionalCPC, sample_negatives
from seqrep.methods.windows import WindowMetricLearning, crop_windows
from seqrep.nets import DilatedConvEncoder, StridedConvEncoder

__all__ = [
    "CPC",
    "SERIES_METHODS",
    "BidirectionalCPC",
    "LossOutput",
    "SeriesMethod",
    "WindowMetricLearning",
    "build_series_encoder",
    "build_series_method",
    "crop_windows",
    "sample_negatives",
]

SERIES_METHODS = ("cpc", "triplet", "contrastive")


def build_series_encoder(
    kind: str, in_channels: int, hidden: int, depth: int, z_dim: int
) -> DilatedConvEncoder | StridedConvEncoder:
    """``"dilated"`` (causal dilated residual convs) or ``"strided"`` (CPC's audio encoder)."""
    if kind == "dilated":
        return DilatedConvEncoder(in_channels, hidden=hidden, out_dim=z_dim, depth=depth)
    if kind == "strided":
        return StridedConvEncoder(in_channels, hidden=hidden, out_dim=z_dim)
    raise ValueError(f"unknown encoder {kind!r}; choose 'dilated' or 'strided'")


def build_series_method(
    name: str,
    in_channels: int,
    *,
    encoder: str = "dilated",
    hidden: int = 64,
    depth: int = 6,
    z_dim: int = 128,
    context_dim: int = 128,
    steps: int = 8,
    negatives: str = "both",
    num_negatives: int = 32,
    max_queries: int = 512,
    margin: float = 0.5,
    mining: str = "all",
    bidirectional: bool = False,
    pool: str = "max",
) -> SeriesMethod:
    """A sequence pretraining method by name; all share the same encoder architecture.
    ``bidirectional`` (CPC only): a second CPC on the reversed series (:class:`BidirectionalCPC`).
    ``pool``: how ``represent`` pools a series' steps (``max`` or ``max-mean``)."""

    def cpc() -> CPC:
        enc = build_series_encoder(encoder, in_channels, hidden, depth, z_dim)
        return CPC(
            enc,
            z_dim,
            context_dim,
            steps,
            negatives,  # type: ignore[arg-type]
            num_negatives,
            max_queries,
            pool=pool,
        )

    if bidirectional and name != "cpc":
        raise ValueError(f"--bidirectional is a CPC option; {name!r} has no direction")
    if name == "cpc":
        return BidirectionalCPC(cpc(), cpc()) if bidirectional else cpc()
    enc = build_series_encoder(encoder, in_channels, hidden, depth, z_dim)
    if name in ("triplet", "contrastive"):
        return WindowMetricLearning(enc, name, margin=margin, mining=mining, pool=pool)  # type: ignore[arg-type]
    raise ValueError(f"unknown method {name!r}; choose {', '.join(SERIES_METHODS)}")
