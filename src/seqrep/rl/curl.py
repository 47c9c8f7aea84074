"""SAC from pixels with CURL's contrastive auxiliary (Srinivas, Laskin & Abbeel 2020).

One agent gives every variant a user needs to tell what does the work:

- ``aux="curl", augment="crop"``: CURL. The query is the critic's encoder on one random crop
  of the stacked frames, the key the momentum (EMA) critic-target encoder on an independent
  crop of the same frames; logits q^T W k with a learned W (U[0, 1) init), cross-entropy of
  each query's own key against the batch's keys.
- ``aux="none", augment="crop"``: crop-only SAC (RAD).
- ``aux="none", augment="none"``: pixel SAC on the centre crop.
- ``aux="curl", augment="gaussian"``: Gaussian-perturbation positives: the [0, 1]-scaled
  centre crop plus N(0, noise_std^2), two independent draws for query and key.
- ``aux="none", augment="shift", drq_k=2, drq_m=2``: DrQ (Kostrikov, Yarats & Fergus 2021).
  Shift: the rendered frames (84 x 84) replicate-padded by 4 pixels and randomly cropped back
  to 84. The critic's target averages over K shifted copies of the next observation, and the
  critic's loss over M shifted copies of the observation, each set in one batched pass; the
  actor (and CURL's query, so ``aux="curl"`` composes with DrQ) uses the first copy. K = M = 1
  is crop-only SAC with the shift as its augmentation (DrQ's K=1, M=1 ablation, close to RAD).
  DrQ's own settings where they differ from CURL's are options: ``encoder_tanh``,
  ``encoder_tau=0.01``, ``alpha_lr=1e-3`` with ``alpha_beta1=0.9``, batch 512.

Architecture and hyper-parameters follow CURL's Table 3 and code: a 4-layer conv trunk shared
by actor and critic, each with its own linear + LayerNorm head; the actor's loss never reaches
the trunk (its input is detached); critic and actor MLPs 1024 wide; learned temperature
(initial 0.1, Adam lr 1e-4, beta1 0.5); critic target tau 0.01, encoder target tau 0.05, actor
and targets updated every 2 steps.

Where this departs from the authors' code, it is to avoid encoder passes the math does not
need (the update is compute-bound on a CPU):

- the critic loss and CURL's loss are summed (equal weight) and share one forward pass of the
  query crop and one optimiser step, instead of a critic step followed by a second encoder pass
  for CURL (the authors' critic and CURL optimisers both have lr 1e-3);
- the key crop and the next observation go through the target encoder in one batched pass;
- the actor update reuses this step's trunk features (detached), computed before the critic
  step, instead of encoding the observation again after it.

``curl_update="authors"`` restores the authors' order for CURL instead of the first point: after
the critic, actor and target steps, a fresh query pass on the same anchor crop and keys from the
just-updated target encoder, and CURL's gradient applied to the encoder by two Adam optimisers
(their encoder optimiser and their CURL optimiser, which also holds the encoder:
MishaLaskin/curl#28), so the encoder takes CURL's step twice, each normalised on its own, where
the joint update weighs CURL's raw gradient against the critic's. One more encoder
forward/backward per update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrep.critics import BilinearCritic
from seqrep.losses import info_nce_result
from seqrep.nets import (
    FeatureHead,
    MomentumEncoder,
    PixelConvTrunk,
    PixelEncoder,
    curl_init,
    without_parameter_grads,
)
from seqrep.rl.augment import center_crop, random_crop, random_shift
from seqrep.rl.sac import LOG_STD_MAX, LOG_STD_MIN, SquashedGaussianActor, TwinQ

__all__ = ["AUGMENTS", "AUXILIARIES", "PixelSAC", "PixelSACConfig"]

AUXILIARIES = ("curl", "none")
AUGMENTS = ("crop", "shift", "none", "gaussian")
CURL_UPDATES = ("joint", "authors")
MLP_INITS = ("default", "orthogonal")


@dataclass
class PixelSACConfig:
    """SAC from pixels, with or without CURL (defaults: CURL's Table 3 and code)."""

    aux: str = field(default="curl", metadata={"help": "auxiliary loss: curl or none"})
    augment: str = field(
        default="crop", metadata={"help": "crop (random 84x84), none (centre crop) or gaussian"}
    )
    noise_std: float = field(
        default=0.1, metadata={"help": "--augment gaussian: std on [0, 1]-scaled pixels"}
    )
    shift_pad: int = field(
        default=4, metadata={"help": "--augment shift: pixels of replicate padding (DrQ: 4)"}
    )
    drq_k: int = field(
        default=1,
        metadata={
            "help": "DrQ's K: augmented copies of the next observation averaged in the target"
        },
    )
    drq_m: int = field(
        default=1,
        metadata={"help": "DrQ's M: augmented copies of the observation in the critic's loss"},
    )
    encoder_tanh: bool = field(
        default=False,
        metadata={
            "help": "tanh after the encoder heads' LayerNorm (DrQ's encoder; CURL's has none)"
        },
    )
    crop_size: int = field(default=84, metadata={"help": "crop side (renders are 100x100)"})
    feature_dim: int = field(default=50, metadata={"help": "encoder output size"})
    hidden: int = field(default=1024, metadata={"help": "actor and critic MLP width"})
    batch_size: int = field(default=128, metadata={"help": "minibatch (paper 512, scripts 128)"})
    lr: float = field(default=1e-3, metadata={"help": "actor, critic, encoder and W rate"})
    alpha_lr: float = field(default=1e-4, metadata={"help": "temperature learning rate"})
    alpha_beta1: float = field(
        default=0.5,
        metadata={"help": "the temperature's Adam beta1 (CURL: 0.5; DrQ: PyTorch's 0.9)"},
    )
    init_alpha: float = field(default=0.1, metadata={"help": "initial temperature"})
    gamma: float = field(default=0.99, metadata={"help": "discount"})
    critic_tau: float = field(default=0.01, metadata={"help": "Q target update rate"})
    encoder_tau: float = field(default=0.05, metadata={"help": "encoder target (key) rate"})
    update_every: int = field(
        default=2, metadata={"help": "actor and target updates every N critic updates"}
    )
    mlp_init: str = field(
        default="default",
        metadata={
            "help": "actor and critic MLPs: default (PyTorch's) or orthogonal (CURL's code: "
            "orthogonal weights, zero biases)"
        },
    )
    log_std_min: float = field(
        default=LOG_STD_MIN,
        metadata={"help": "the actor's lowest log-std (CleanRL's -5; CURL's code: -10)"},
    )
    curl_update: str = field(
        default="joint",
        metadata={
            "help": "joint (CURL's loss summed with the critic's, one step) or authors (a "
            "separate CURL step after the critic's, the encoder stepped by two optimisers)"
        },
    )
    precision: str = field(
        default="fp32",
        metadata={"help": "fp32, or bf16: the conv layers under bfloat16 autocast (CPU/GPU)"},
    )

    def validate(self) -> None:
        if self.aux not in AUXILIARIES:
            raise ValueError(f"unknown --aux {self.aux!r}; choose {', '.join(AUXILIARIES)}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"unknown --augment {self.augment!r}; choose {', '.join(AUGMENTS)}")
        if self.aux == "curl" and self.augment == "none":
            raise ValueError(
                "--aux curl needs two different views of an observation: --augment crop or "
                "gaussian (with --augment none query and key see the same pixels)"
            )
        for name in (
            "crop_size",
            "feature_dim",
            "hidden",
            "batch_size",
            "update_every",
            "drq_k",
            "drq_m",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("lr", "alpha_lr", "init_alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0")
        if self.mlp_init not in MLP_INITS:
            raise ValueError(f"unknown --mlp-init {self.mlp_init!r}; choose {', '.join(MLP_INITS)}")
        if not self.log_std_min < LOG_STD_MAX:
            raise ValueError(f"--log-std-min must be below the upper bound {LOG_STD_MAX}")
        if self.curl_update not in CURL_UPDATES:
            raise ValueError(
                f"unknown --curl-update {self.curl_update!r}; choose {', '.join(CURL_UPDATES)}"
            )
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown --precision {self.precision!r}; choose fp32, bf16")
        if self.noise_std < 0:
            raise ValueError(f"--noise-std must be >= 0, got {self.noise_std}")
        if self.shift_pad < 0:
            raise ValueError(f"--shift-pad must be >= 0, got {self.shift_pad}")
        if max(self.drq_k, self.drq_m) > 1 and self.augment == "none":
            raise ValueError(
                "--drq-k and --drq-m average over augmented copies, which --augment none makes "
                "identical: use --augment shift (DrQ's) or crop"
            )
        if not 0 <= self.alpha_beta1 < 1:
            raise ValueError(f"--alpha-beta1 is an Adam beta in [0, 1), got {self.alpha_beta1}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"--gamma is a discount in [0, 1], got {self.gamma}")
        for name in ("critic_tau", "encoder_tau"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"--{name.replace('_', '-')} must lie in (0, 1]")


class PixelSAC(nn.Module):
    """The agent: shared conv trunk, critic and actor heads, twin Q, targets, CURL's W.

    Args:
        obs_shape: one stacked observation, e.g. (9, 100, 100) uint8.
        act_dim: action size; actions in [-1, 1].
        cfg: hyper-parameters.
        device: where every module, generator and batch lives.
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        act_dim: int,
        cfg: PixelSACConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.cfg = cfg = cfg or PixelSACConfig()
        cfg.validate()
        self.device = torch.device(device)
        trunk = PixelConvTrunk(obs_shape[0], cfg.crop_size)
        # the critic's (and CURL's query)
        self.encoder = PixelEncoder(trunk, cfg.feature_dim, tanh=cfg.encoder_tanh)
        self.actor_head = FeatureHead(trunk.out_dim, cfg.feature_dim, tanh=cfg.encoder_tanh)
        self.actor = SquashedGaussianActor(cfg.feature_dim, act_dim, cfg.hidden, cfg.log_std_min)
        self.critic = TwinQ(cfg.feature_dim, act_dim, cfg.hidden)
        if cfg.mlp_init == "orthogonal":  # before the target critic copies it
            self.actor.apply(curl_init)
            self.critic.apply(curl_init)
        self.target_encoder = MomentumEncoder(self.encoder, tau=cfg.encoder_tau)  # CURL's keys
        self.target_critic = MomentumEncoder(self.critic, tau=cfg.critic_tau)
        self.W = BilinearCritic(cfg.feature_dim)  # q^T W k, W ~ U[0, 1)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.target_entropy = -float(act_dim)
        self.to(self.device)
        critic_params = [*self.critic.parameters(), *self.encoder.parameters()]
        self.joint_curl = cfg.aux == "curl" and cfg.curl_update == "joint"
        if self.joint_curl:
            critic_params += list(self.W.parameters())
        self.critic_opt = torch.optim.Adam(critic_params, lr=cfg.lr)
        if cfg.aux == "curl" and not self.joint_curl:
            # The authors' two optimisers; both hold the encoder (MishaLaskin/curl#28).
            self.curl_encoder_opt = torch.optim.Adam(self.encoder.parameters(), lr=cfg.lr)
            self.curl_opt = torch.optim.Adam(
                [*self.W.parameters(), *self.encoder.parameters()], lr=cfg.lr
            )
        self.actor_opt = torch.optim.Adam(
            [*self.actor.parameters(), *self.actor_head.parameters()], lr=cfg.lr
        )
        self.alpha_opt = torch.optim.Adam(
            [self.log_alpha], lr=cfg.alpha_lr, betas=(cfg.alpha_beta1, 0.999)
        )
        # Crops, Gaussian positives and the actor's noise draw from this generator (on device),
        # so that a resumed run continues the same random stream.
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.updates = 0

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp().detach()

    def encode(self, module: nn.Module, pixels: Tensor) -> Tensor:
        """``module(pixels)`` in float32, or with its convolutions under bfloat16 autocast when
        ``precision`` is bf16 (weights, optimiser state and the losses stay float32)."""
        if self.cfg.precision == "fp32":
            return module(pixels)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return module(pixels).float()

    # ------------------------------------------------------------------ views of observations
    def crop(self, obs: Tensor) -> Tensor:
        """uint8 [B, C, H, W] -> uint8 [B, C, S, S]: a random crop (``crop``), a random shift
        of the centre crop (``shift``), or the centre crop."""
        if self.cfg.augment == "crop":
            return random_crop(obs, self.cfg.crop_size, self.generator)
        centre = center_crop(obs, self.cfg.crop_size)
        if self.cfg.augment == "shift":
            return random_shift(centre, self.cfg.shift_pad, self.generator)
        return centre

    @staticmethod
    def scale(crops: Tensor) -> Tensor:
        """uint8 crops -> float in [0, 1], channels-last (the trunk's layout; converted while
        still uint8, a quarter of the copy cost)."""
        return crops.contiguous(memory_format=torch.channels_last).float().div_(255.0)

    def to_input(self, crops: Tensor) -> Tensor:
        """uint8 crops -> float in [0, 1], plus N(0, noise_std^2) for ``gaussian``."""
        x = self.scale(crops)
        if self.cfg.augment == "gaussian":
            x = x + self.cfg.noise_std * torch.randn(
                x.shape, generator=self.generator, device=x.device
            )
        return x

    def view(self, obs: Tensor) -> Tensor:
        """One augmented view for training: uint8 [B, C, H, W] -> float [B, C, S, S]."""
        return self.to_input(self.crop(obs))

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions [B, A] in [-1, 1] for uint8 observations [B, C, H, W] (centre crop)."""
        x = self.scale(center_crop(obs.to(self.device), self.cfg.crop_size))
        action, _, mean = self.actor(
            self.actor_head(self.encode(self.encoder.trunk, x)), self.generator
        )
        return mean if deterministic else action

    # ------------------------------------------------------------------ losses
    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One step on obs, next_obs (uint8 [B, C, H, W]), action [B, A], reward [B],
        terminal [B]: critic (+ CURL), then every ``update_every`` steps actor, temperature
        and targets. Returns scalar metrics."""
        cfg = self.cfg
        obs, next_obs, b = batch["obs"], batch["next_obs"], len(batch["obs"])
        k, m = cfg.drq_k, cfg.drq_m
        use_curl = self.joint_curl  # CURL inside the critic step; "authors": a step of its own
        # DrQ's M views of the observation (the first is the actor's and CURL's query) and K
        # of the next observation, each drawn as one batch: [M * B] and [K * B] rows.
        anchor = self.view(obs.repeat(m, 1, 1, 1))
        # The next observations and CURL's positive go through the target encoder together;
        # joined as uint8, before the (4x larger) float conversion.
        next_crop = self.crop(next_obs.repeat(k, 1, 1, 1))
        targets_in = self.to_input(
            torch.cat([next_crop, self.crop(obs)]) if use_curl else next_crop
        )
        nxt = targets_in[: k * b]

        trunk_a = self.encode(self.encoder.trunk, anchor)
        z_a = self.encoder.head(trunk_a)  # critic features; the first B rows are CURL's query
        with torch.no_grad():
            next_action, next_log_prob, _ = self.actor(
                self.actor_head(self.encode(self.encoder.trunk, nxt)), self.generator
            )
            keys = self.encode(self.target_encoder, targets_in)
            z_next, z_pos = (keys[: k * b], keys[k * b :]) if use_curl else (keys, None)
            target = self.soft_target(
                z_next, next_action, next_log_prob, batch["reward"], batch["terminal"]
            )
        critic_loss, q1 = self.critic_loss(z_a, batch["action"], target)
        loss = critic_loss
        metrics: dict[str, float] = {}
        if use_curl:
            assert z_pos is not None
            # q^T W k against the batch's keys; the authors' per-row max subtraction leaves the
            # cross-entropy unchanged, and log-softmax is stable without it.
            res = info_nce_result(z_a[:b], z_pos, similarity=self.W)
            loss = loss + res.loss
            metrics |= {"curl_loss": res.loss.item(), "curl_accuracy": res.accuracy.item()}
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        metrics |= {"critic_loss": critic_loss.item(), "q": q1.mean().item()}

        self.updates += 1
        if self.updates % cfg.update_every == 0:
            metrics |= self._actor_and_targets_step(trunk_a[:b].detach())
        if cfg.aux == "curl" and not use_curl:
            metrics |= self._separate_curl_step(anchor[:b], obs)
        return metrics

    def _actor_and_targets_step(self, trunk_d: Tensor) -> dict[str, float]:
        """The actor and temperature steps on the query's trunk features [B, F] (detached: the
        actor's loss must not reach the conv layers), then the targets' EMA step."""
        action, log_prob, _ = self.actor(self.actor_head(trunk_d), self.generator)
        # Through the critic to the action only: its weight gradients would be discarded.
        with without_parameter_grads(self.encoder.head, self.critic):
            qa1, qa2 = self.critic(self.encoder.head(trunk_d), action)
        actor_loss = (self.alpha * log_prob - torch.min(qa1, qa2)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = (self.log_alpha.exp() * (-log_prob.detach() - self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        self.target_critic.update(self.critic)
        self.target_encoder.update(self.encoder)
        return {
            "actor_loss": actor_loss.item(),
            "alpha": self.alpha.item(),
            "entropy": -log_prob.mean().item(),
        }

    def soft_target(
        self,
        z_next: Tensor,
        next_action: Tensor,
        next_log_prob: Tensor,
        reward: Tensor,
        terminal: Tensor,
    ) -> Tensor:
        """The critic's target [B]: r + gamma (1 - terminal) (min Q' - alpha log pi), averaged
        over the K copies of the next observation whose target features ``z_next`` [K * B, F],
        sampled actions [K * B, A] and log-probabilities [K * B] come copy after copy."""
        k, b = len(z_next) // len(reward), len(reward)
        q1_t, q2_t = self.target_critic(z_next, next_action)
        soft_v = torch.min(q1_t, q2_t) - self.alpha * next_log_prob  # [K * B]
        done = (1.0 - terminal).repeat(k)
        return (reward.repeat(k) + self.cfg.gamma * done * soft_v).view(k, b).mean(0)

    def critic_loss(self, z: Tensor, action: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Both Q heads' squared error against ``target`` [B], averaged over the M copies of
        the observation whose features ``z`` [M * B, F] come copy after copy; and Q1 [M * B].

        The mean over copies: DrQ's code sums them, which is the same step under Adam, and the
        mean keeps CURL's weight against the critic's loss whatever M is."""
        m = len(z) // len(target)
        q1, q2 = self.critic(z, action.repeat(m, 1))
        targets = target.repeat(m)
        return F.mse_loss(q1, targets) + F.mse_loss(q2, targets), q1

    def _separate_curl_step(self, anchor: Tensor, obs: Tensor) -> dict[str, float]:
        """The authors' CURL step (``curl_update="authors"``): the query from the updated
        encoder on the critic's anchor crop [B, C, S, S], the key from the updated target
        encoder on a fresh view of ``obs`` [B, C, H, W]; both optimisers step the encoder."""
        with torch.no_grad():
            z_pos = self.encode(self.target_encoder, self.view(obs))
        z_a = self.encoder.head(self.encode(self.encoder.trunk, anchor))
        res = info_nce_result(z_a, z_pos, similarity=self.W)
        self.curl_encoder_opt.zero_grad(set_to_none=True)
        self.curl_opt.zero_grad(set_to_none=True)
        res.loss.backward()
        self.curl_encoder_opt.step()
        self.curl_opt.step()
        return {"curl_loss": res.loss.item(), "curl_accuracy": res.accuracy.item()}
