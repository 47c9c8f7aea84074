"""Representation-learning methods: encoder(s) + critic + objective.

Each sequence method exposes ``encoder``, ``loss(x, lengths, generator) -> (loss, metrics)`` and
``represent(x, lengths) -> [B, D]`` (the frozen instance vector that probes consume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seqrep.methods.base import LossOutput, SeriesMethod
from seqrep.methods.cpc import CPC, BidirectionalCPC, sample_negatives
from seqrep.methods.registry import Registry
from seqrep.methods.windows import WindowMetricLearning, crop_windows
from seqrep.nets import DilatedConvEncoder, StridedConvEncoder

__all__ = [
    "CPC",
    "SERIES_METHODS",
    "BidirectionalCPC",
    "LossOutput",
    "SeriesMethod",
    "SeriesOptions",
    "WindowMetricLearning",
    "build_series_encoder",
    "build_series_method",
    "crop_windows",
    "sample_negatives",
]

# Every sequence method, registered once below with its constructor.
SERIES_METHODS = Registry("method")


def build_series_encoder(
    kind: str, in_channels: int, hidden: int, depth: int, z_dim: int
) -> DilatedConvEncoder | StridedConvEncoder:
    """``"dilated"`` (causal dilated residual convs) or ``"strided"`` (CPC's audio encoder)."""
    if kind == "dilated":
        return DilatedConvEncoder(in_channels, hidden=hidden, out_dim=z_dim, depth=depth)
    if kind == "strided":
        return StridedConvEncoder(in_channels, hidden=hidden, out_dim=z_dim)
    raise ValueError(f"unknown encoder {kind!r}; choose 'dilated' or 'strided'")


@dataclass(frozen=True)
class SeriesOptions:
    """The options of :func:`build_series_method` that a method's constructor reads."""

    encoder: str = "dilated"
    hidden: int = 64
    depth: int = 6
    z_dim: int = 128
    context_dim: int = 128
    steps: int = 8
    negatives: str = "both"
    num_negatives: int = 32
    max_queries: int = 512
    margin: float = 0.5
    mining: str = "all"
    bidirectional: bool = False
    pool: str = "max"

    def encoder_for(self, in_channels: int) -> DilatedConvEncoder | StridedConvEncoder:
        return build_series_encoder(self.encoder, in_channels, self.hidden, self.depth, self.z_dim)


@SERIES_METHODS.register("cpc", family="predictive")
def _cpc(name: str, in_channels: int, o: SeriesOptions) -> SeriesMethod:
    def one() -> CPC:
        return CPC(
            o.encoder_for(in_channels),
            o.z_dim,
            o.context_dim,
            o.steps,
            o.negatives,  # type: ignore[arg-type]
            o.num_negatives,
            o.max_queries,
            pool=o.pool,
        )

    return BidirectionalCPC(one(), one()) if o.bidirectional else one()


@SERIES_METHODS.register("triplet", "contrastive", family="metric")
def _window_metric(name: str, in_channels: int, o: SeriesOptions) -> SeriesMethod:
    return WindowMetricLearning(
        o.encoder_for(in_channels),
        name,  # type: ignore[arg-type]
        margin=o.margin,
        mining=o.mining,  # type: ignore[arg-type]
        pool=o.pool,
    )


def build_series_method(name: str, in_channels: int, **options: Any) -> SeriesMethod:
    """A sequence pretraining method by name (see :data:`SERIES_METHODS`); all share the same
    encoder architecture. ``options`` are :class:`SeriesOptions`' fields: ``bidirectional``
    (CPC only) adds a second CPC on the reversed series (:class:`BidirectionalCPC`); ``pool``
    is how ``represent`` pools a series' steps (``max`` or ``max-mean``).

    Raises:
        ValueError: an unknown name, or an option the method does not have.
    """
    SERIES_METHODS.entry(name)  # an unknown name fails first
    opts = SeriesOptions(**options)
    if opts.bidirectional and name != "cpc":
        raise ValueError(f"--bidirectional is a CPC option; {name!r} has no direction")
    return SERIES_METHODS.create(name, in_channels, opts)  # type: ignore[no-any-return]
