"""Networks: MLPs, sequence encoders and the momentum (EMA) encoder.

Sequence encoders take ``[B, T, C]`` and return ``[B, T', D]``. They are *causal*: output t depends
on inputs up to t only, so values past a series' end (padding) can never reach a valid output,
and CPC's context c_t cannot peek at the future it must predict. Each has
``output_lengths(lengths)`` giving the valid output steps for given valid input steps.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "POOLS",
    "DilatedConvEncoder",
    "FeatureHead",
    "MomentumEncoder",
    "PerStep",
    "PixelConvTrunk",
    "PixelEncoder",
    "SequenceEncoder",
    "StateEncoder",
    "StridedConvEncoder",
    "check_pool",
    "curl_init",
    "masked_max_pool",
    "masked_mean_pool",
    "mlp",
    "pool_steps",
    "sliding_pool",
    "without_parameter_grads",
]


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


@contextmanager
def without_parameter_grads(*modules: nn.Module) -> Iterator[None]:
    """Within the block, the modules' parameters take no gradient (their ``requires_grad`` is
    restored after): a loss may backpropagate *through* them to their inputs without computing
    weight gradients nobody steps, e.g. an actor's loss through the critic."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


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
        tgt: list[Tensor] = list(self.target.parameters())
        src: list[Tensor] = [p.detach() for p in online.parameters()]
        if len(tgt) != len(src) or any(a.shape != b.shape for a, b in zip(tgt, src, strict=True)):
            raise ValueError("online module does not match the momentum copy's architecture")
        # One fused kernel over all parameters: theta_k += tau * (theta_q - theta_k).
        if tgt:  # a parameter-free module (e.g. nn.Identity) has nothing to mix
            torch._foreach_lerp_(tgt, src, tau)
        for bt, bs in zip(self.target.buffers(), online.buffers(), strict=True):
            bt.copy_(bs)

    @torch.no_grad()
    def forward(self, *args: Tensor, **kwargs: Tensor) -> Tensor:
        """Runs the copy without building a graph."""
        return self.target(*args, **kwargs)


class SequenceEncoder(Protocol):
    """What sequence methods need of an encoder (both encoders below satisfy it)."""

    receptive_field: int  # input steps that reach one output step

    def __call__(self, x: Tensor) -> Tensor:
        """[B, T, C] -> [B, T', D]."""
        ...

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output steps for ``lengths`` valid input steps: [B] -> [B]."""
        ...


def masked_max_pool(h: Tensor, lengths: Tensor) -> Tensor:
    """Max over the valid time steps: [B, T, D], lengths [B] -> [B, D]."""
    valid = torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]
    return h.masked_fill(~valid[:, :, None], float("-inf")).amax(dim=1)


def masked_mean_pool(h: Tensor, lengths: Tensor) -> Tensor:
    """Mean over the valid time steps: [B, T, D], lengths [B] (>= 1) -> [B, D]."""
    valid = torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]
    total = h.masked_fill(~valid[:, :, None], 0.0).sum(dim=1)
    return total / lengths[:, None].to(h.dtype)


POOLS = ("max", "max-mean")


def check_pool(pool: str) -> str:
    """``pool`` if it names one of :data:`POOLS`, else a ValueError saying which exist."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose {', '.join(POOLS)}")
    return pool


def pool_steps(h: Tensor, lengths: Tensor, pool: str = "max") -> Tensor:
    """A series' instance vector from its per-step features, over the valid steps only.

    ``max``: [B, T, D] -> [B, D] (TS2Vec's); ``max-mean``: the max and the mean side by side,
    [B, 2D] (the mean keeps how long a pattern lasts, which the max alone forgets).
    """
    if check_pool(pool) == "max":
        return masked_max_pool(h, lengths)
    return torch.cat([masked_max_pool(h, lengths), masked_mean_pool(h, lengths)], dim=-1)


def sliding_pool(h: Tensor, lengths: Tensor, window: int, pool: str = "max") -> Tensor:
    """Per step t, the steps t - window + 1 .. t (those of the series: a window never reaches
    before the first step or past the last valid one) pooled as :func:`pool_steps`:
    [B, T, D] -> [B, T, D] (max) or [B, T, 2D] (max-mean). Causal: step t uses no later step.
    Steps past a series' length are NaN."""
    check_pool(pool)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    t = h.shape[1]
    valid = torch.arange(t, device=h.device)[None, :] < lengths[:, None]  # [B, T]
    windows = F.pad(h.transpose(1, 2), (window - 1, 0)).unfold(2, window, 1)  # [B, D, T, w]
    inside = F.pad(valid.float(), (window - 1, 0)).unfold(1, window, 1).bool()  # [B, T, w]
    mask = inside[:, None]
    out = [windows.masked_fill(~mask, float("-inf")).amax(-1)]
    if pool == "max-mean":
        count = inside.sum(-1).clamp_min(1)[:, None].to(h.dtype)
        out.append(windows.masked_fill(~mask, 0.0).sum(-1) / count)
    pooled = torch.cat(out, dim=1).transpose(1, 2)  # [B, T, D']
    return pooled.masked_fill(~valid[:, :, None], float("nan"))


class _CausalConv(nn.Conv1d):
    """Conv1d padded on the left only: [B, C, T] -> [B, C', T], output t sees inputs <= t."""

    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__(cin, cout, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(nn.functional.pad(x, (self.left, 0)))


class _ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = _CausalConv(cin, cout, kernel_size, dilation)
        self.conv2 = _CausalConv(cout, cout, kernel_size, dilation)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(nn.functional.gelu(x))
        h = self.conv2(nn.functional.gelu(h))
        return h + self.skip(x)


class DilatedConvEncoder(nn.Module):
    """Causal dilated residual Conv1d encoder for short series (no down-sampling).

    A linear input projection, then ``depth`` residual blocks of two causal convolutions with
    dilation 1, 2, 4, ... (the TS2Vec backbone, made causal). No normalisation across time or
    batch, so padded steps cannot leak into valid ones.

    Shapes: [B, T, C] -> [B, T, out_dim].
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int = 64,
        out_dim: int = 320,
        depth: int = 10,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.input_proj = nn.Linear(in_channels, hidden)
        widths = [hidden] * depth + [out_dim]
        self.blocks = nn.Sequential(
            *(
                _ResidualBlock(a, b, kernel_size, 2**i)
                for i, (a, b) in enumerate(itertools.pairwise(widths))
            )
        )
        self.receptive_field = 1 + sum(2 * (kernel_size - 1) * 2**i for i in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"expected input [B, T, {self.in_channels}], got {tuple(x.shape)}")
        h = self.input_proj(x).transpose(1, 2)  # [B, hidden, T]
        return self.blocks(h).transpose(1, 2)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return lengths


class StridedConvEncoder(nn.Module):
    """CPC's raw-signal encoder: five strided Conv1d layers, strides [5, 4, 2, 2, 2] and kernels
    [10, 8, 4, 4, 4] (down-sampling 160x, receptive field 465 samples), ReLU, no padding.

    Output j sees inputs [160 j, 160 j + 465): causal in the sense that it never sees past its
    window's end. Shapes: [B, T, C] -> [B, T', out_dim] with T' = (T - 465) // 160 + 1.
    """

    strides = (5, 4, 2, 2, 2)
    kernels = (10, 8, 4, 4, 4)

    def __init__(self, in_channels: int = 1, hidden: int = 512, out_dim: int = 512) -> None:
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        layers: list[nn.Module] = []
        cin = in_channels
        for i, (k, s) in enumerate(zip(self.kernels, self.strides, strict=True)):
            cout = out_dim if i == len(self.kernels) - 1 else hidden
            layers += [nn.Conv1d(cin, cout, k, stride=s), nn.ReLU()]
            cin = cout
        self.net = nn.Sequential(*layers)
        rf, jump = 1, 1
        for k, s in zip(self.kernels, self.strides, strict=True):
            rf, jump = rf + (k - 1) * jump, jump * s
        self.receptive_field, self.downsampling = rf, jump

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"expected input [B, T, {self.in_channels}], got {tuple(x.shape)}")
        if x.shape[1] < self.receptive_field:
            raise ValueError(
                f"series of {x.shape[1]} steps are shorter than the strided encoder's receptive "
                f"field ({self.receptive_field}); use the dilated encoder for short series"
            )
        return self.net(x.transpose(1, 2)).transpose(1, 2)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Outputs whose whole window lies inside the valid input."""
        return ((lengths - self.receptive_field) // self.downsampling + 1).clamp_min(0)


class StateEncoder(nn.Module):
    """phi: observations [..., O] -> features [..., F]: fixed z-scoring, an MLP, LayerNorm.

    The z-score statistics are buffers (set with :meth:`set_statistics` from the pretraining
    data), so a pretrained encoder carries its own input normalisation into downstream agents.
    The output LayerNorm keeps every objective's features on one scale, so a frozen encoder
    from any objective feeds the same downstream heads.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, obs_dim: int, feature_dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.obs_dim, self.feature_dim, self.hidden = obs_dim, feature_dim, hidden
        self.objective = ""  # what it was pretrained with (a saved encoder's), if anything
        self.report = ""  # the pretraining report's table, set by seqrep.pretrain_states
        self.net = nn.Sequential(
            mlp(obs_dim, [hidden, hidden], feature_dim), nn.LayerNorm(feature_dim)
        )
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], prefix: str = "") -> StateEncoder:
        """An encoder of the sizes a saved state dict holds (under ``prefix``, e.g. an agent's
        ``"encoder."``), with those weights loaded."""
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        hidden, obs_dim = own["net.0.0.weight"].shape
        encoder = cls(int(obs_dim), int(own["net.1.weight"].shape[0]), int(hidden))
        encoder.load_state_dict(own)
        return encoder

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Input z-scoring with these per-feature statistics ([O] each; std floored at 1e-3)."""
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-3))

    def normalise(self, obs: Tensor) -> Tensor:
        """(obs - mean) / std: [..., O]."""
        return (obs - self.mean) / self.std

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(self.normalise(obs))


class PerStep(nn.Module):
    """Apply a per-step encoder along time: [B, T, O] -> [B, T, F] (a causal SequenceEncoder)."""

    receptive_field = 1  # one step in, one step out

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return lengths


def curl_init(module: nn.Module) -> None:
    """CURL's (and SAC-AE's) initialisation: orthogonal linear weights, delta-orthogonal convs
    (only the kernel's centre tap is non-zero, orthogonal with ReLU gain), zero biases."""
    if isinstance(module, nn.Linear | nn.Conv2d) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
    elif isinstance(module, nn.Conv2d):
        nn.init.zeros_(module.weight)
        mid = module.weight.shape[2] // 2
        nn.init.orthogonal_(module.weight[:, :, mid, mid], gain=nn.init.calculate_gain("relu"))


class PixelConvTrunk(nn.Module):
    """CURL's convolutional layers: [B, C, S, S] pixels scaled to [0, 1] -> [B, out_dim].

    ``layers`` 3x3 convolutions of ``filters`` channels, the first with stride 2 and the rest
    with stride 1, ReLU after each, flattened (CURL Table 3: 4 layers, 32 filters; at S = 84 the
    output is 32 x 35 x 35).
    """

    def __init__(self, in_channels: int, image_size: int = 84, filters: int = 32, layers: int = 4):
        super().__init__()
        # In-place ReLUs: the activations are the largest tensors of a pixel agent's update.
        convs: list[nn.Module] = [nn.Conv2d(in_channels, filters, 3, stride=2), nn.ReLU(True)]
        for _ in range(layers - 1):
            convs += [nn.Conv2d(filters, filters, 3, stride=1), nn.ReLU(True)]
        self.net = nn.Sequential(*convs)
        side = (image_size - 3) // 2 + 1 - 2 * (layers - 1)
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {layers} conv layers")
        self.out_dim = filters * side * side
        self.apply(curl_init)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, pixels: Tensor) -> Tensor:
        """[B, C, S, S] in [0, 1] -> [B, out_dim]."""
        # channels-last lets oneDNN (CPU) and cuDNN pick their fastest convolution kernels
        # (measured on 2 CPU cores: forward + backward 0.16 s instead of 0.23 s at B = 128), and
        # flattening in (H, W, C) order is then a free view rather than a copy back to NCHW.
        h = self.net(pixels.contiguous(memory_format=torch.channels_last))
        return h.permute(0, 2, 3, 1).flatten(1)


class FeatureHead(nn.Module):
    """Linear then LayerNorm, optionally then tanh: [B, in_dim] -> [B, feature_dim] (CURL's
    encoder head has no tanh after the LayerNorm, DrQ's has one)."""

    def __init__(self, in_dim: int, feature_dim: int = 50, tanh: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, feature_dim)
        self.norm = nn.LayerNorm(feature_dim)
        self.tanh = tanh
        curl_init(self.linear)

    def forward(self, x: Tensor) -> Tensor:
        """[B, in_dim] -> [B, feature_dim]."""
        h = self.norm(self.linear(x))
        return torch.tanh(h) if self.tanh else h


class PixelEncoder(nn.Module):
    """Pixels -> features: :class:`PixelConvTrunk` then :class:`FeatureHead`.

    [B, C, S, S] in [0, 1] -> [B, feature_dim]. ``trunk`` may be shared with another head (the
    actor's, in CURL) while the head stays this encoder's own.
    """

    def __init__(self, trunk: PixelConvTrunk, feature_dim: int = 50, tanh: bool = False) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = FeatureHead(trunk.out_dim, feature_dim, tanh)
        self.feature_dim = feature_dim

    def forward(self, pixels: Tensor) -> Tensor:
        """[B, C, S, S] -> [B, feature_dim]."""
        return self.head(self.trunk(pixels))
