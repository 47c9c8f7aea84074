"""Soft Actor-Critic (Haarnoja et al. 2018), state-based, readable top to bottom (CleanRL style).

Twin Q networks with target copies (:class:`seqrep.nets.MomentumEncoder`, tau = 0.005), a
tanh-squashed Gaussian actor, and a learned temperature with target entropy -|A|. Actions live in
[-1, 1]; wrap the environment in gymnasium's ``RescaleAction`` (see :mod:`seqrep.rl.envs`).

Every agent takes an optional observation ``encoder`` (any module mapping observations to
features, e.g. a pretrained representation) and ``freeze_encoder``: frozen, it never changes;
otherwise the critic's loss fine-tunes it while the actor sees detached features (as in SAC-AE
and CURL, so the actor's loss does not pull the representation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrep.nets import MomentumEncoder, mlp
from seqrep.rl.base import EncodedAgent

__all__ = ["SAC", "SACConfig", "SquashedGaussianActor", "TwinQ"]

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # CleanRL's bounds


@dataclass
class SACConfig:
    """SAC hyper-parameters (CleanRL's sac_continuous_action defaults)."""

    gamma: float = field(default=0.99, metadata={"help": "discount"})
    tau: float = field(default=0.005, metadata={"help": "target network update rate"})
    batch_size: int = field(default=256, metadata={"help": "minibatch size"})
    policy_lr: float = field(default=3e-4, metadata={"help": "actor learning rate"})
    q_lr: float = field(default=1e-3, metadata={"help": "critic and temperature learning rate"})
    hidden: int = field(default=256, metadata={"help": "hidden units (2 layers)"})
    policy_frequency: int = field(
        default=2, metadata={"help": "actor updates every N critic updates"}
    )
    init_alpha: float = field(default=1.0, metadata={"help": "initial temperature"})
    autotune: bool = field(default=True, metadata={"help": "learn the temperature"})


class SquashedGaussianActor(nn.Module):
    """pi(a|s): a = tanh(u), u ~ N(mu(s), sigma(s)); features [B, F] -> actions [B, A]."""

    def __init__(
        self, feature_dim: int, act_dim: int, hidden: int, log_std_min: float = LOG_STD_MIN
    ) -> None:
        super().__init__()
        if not log_std_min < LOG_STD_MAX:
            raise ValueError(f"log_std_min {log_std_min} must be below {LOG_STD_MAX}")
        self.net = mlp(feature_dim, [hidden, hidden], 2 * act_dim)
        self.log_std_min = log_std_min

    def gaussian(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """The pre-tanh Gaussian's mean and log-std [B, A] (log-std squashed into bounds)."""
        mean, log_std = self.net(features).chunk(2, dim=-1)
        lo = self.log_std_min
        return mean, lo + 0.5 * (LOG_STD_MAX - lo) * (torch.tanh(log_std) + 1)

    @staticmethod
    def _log_prob(u: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
        # log N(u; mean, std) minus the tanh change of variables, in a stable form: [B].
        log_prob = (
            -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        ).sum(-1)
        return log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)

    def forward(
        self, features: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns a sampled action [B, A], its log-probability [B], and the mean action [B, A]."""
        mean, log_std = self.gaussian(features)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        u = mean + log_std.exp() * noise  # reparameterised
        return torch.tanh(u), self._log_prob(u, mean, log_std), torch.tanh(mean)

    def log_prob(self, features: Tensor, action: Tensor) -> Tensor:
        """log pi(a|s) of given actions [B, A] in [-1, 1] (clipped just inside): [B]."""
        mean, log_std = self.gaussian(features)
        edge = 1.0 - 1e-6
        u = torch.atanh(action.clamp(-edge, edge))
        return self._log_prob(u, mean, log_std)


class TwinQ(nn.Module):
    """Two Q networks on [features, action]: ([B, F], [B, A]) -> ([B], [B])."""

    def __init__(self, feature_dim: int, act_dim: int, hidden: int) -> None:
        super().__init__()
        self.q1 = mlp(feature_dim + act_dim, [hidden, hidden], 1)
        self.q2 = mlp(feature_dim + act_dim, [hidden, hidden], 1)

    def forward(self, features: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([features, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class SAC(EncodedAgent):
    """The agent: ``encoder`` -> (actor, twin critic), targets, temperature, optimisers.

    Args:
        obs_dim: observation size (the encoder's input).
        act_dim: action size; actions in [-1, 1].
        encoder: observations [B, obs_dim] -> features [B, feature_dim]; identity when None.
        feature_dim: the encoder's output size (obs_dim when there is no encoder).
        freeze_encoder: keep the encoder's parameters fixed.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: SACConfig | None = None,
        encoder: nn.Module | None = None,
        feature_dim: int | None = None,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__(obs_dim, encoder, feature_dim, freeze_encoder)
        self.cfg = cfg = cfg or SACConfig()
        feature_dim = self.feature_dim
        self.actor = SquashedGaussianActor(feature_dim, act_dim, cfg.hidden)
        self.critic = TwinQ(feature_dim, act_dim, cfg.hidden)
        self.target_critic = MomentumEncoder(self.critic, tau=cfg.tau)
        self.target_encoder = MomentumEncoder(self.encoder, tau=cfg.tau)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.target_entropy = -float(act_dim)
        critic_params = list(self.critic.parameters()) + self.encoder_parameters()
        self.q_opt = torch.optim.Adam(critic_params, lr=cfg.q_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr)
        # CleanRL tunes the temperature at the critic's rate (its a_optimizer uses q_lr).
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.q_lr)
        self.updates = 0

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp().detach()

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions for observations [B, obs_dim] -> [B, act_dim] in [-1, 1]: the policy's
        mean, or (``deterministic=False``) a sample, as exploration uses."""
        action, _, mean = self.actor(self.features(obs))
        return mean if deterministic else action

    @torch.no_grad()
    def td_target(self, reward: Tensor, next_obs: Tensor, terminal: Tensor) -> Tensor:
        """y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(s'). [B]."""
        next_action, next_log_prob, _ = self.actor(self.features(next_obs))
        q1, q2 = self.target_critic.target(
            self.target_encoder(self.normalise(next_obs)), next_action
        )
        soft_v = torch.min(q1, q2) - self.alpha * next_log_prob
        return reward + self.cfg.gamma * (1.0 - terminal) * soft_v

    def alpha_loss(self, log_prob: Tensor) -> Tensor:
        """-(alpha * (log pi + target entropy)).mean(), gradients to log alpha only (CleanRL)."""
        return (-self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)).mean()

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One SAC step on obs, action, reward, next_obs, terminal ([B, ...] each)."""
        target = self.td_target(batch["reward"], batch["next_obs"], batch["terminal"])
        q1, q2 = self.critic(self.features(batch["obs"]), batch["action"])
        q_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        metrics = {"q_loss": q_loss.item(), "q": q1.mean().item()}

        self.updates += 1
        if self.updates % self.cfg.policy_frequency == 0:
            # TD3-style delayed actor; CleanRL compensates with policy_frequency actor steps.
            for _ in range(self.cfg.policy_frequency):
                feats = self.features(batch["obs"]).detach()
                action, log_prob, _ = self.actor(feats)
                qa1, qa2 = self.critic(feats, action)
                actor_loss = (self.alpha * log_prob - torch.min(qa1, qa2)).mean()
                self.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                self.actor_opt.step()
                if self.cfg.autotune:
                    a_loss = self.alpha_loss(log_prob)
                    self.alpha_opt.zero_grad(set_to_none=True)
                    a_loss.backward()
                    self.alpha_opt.step()
            metrics |= {
                "actor_loss": actor_loss.item(),
                "alpha": self.alpha.item(),
                "entropy": -log_prob.mean().item(),
            }
        self.target_critic.update(self.critic)
        if not self.freeze_encoder:
            self.target_encoder.update(self.encoder)
        return metrics
