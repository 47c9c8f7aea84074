"""Learning from a fixed data set: behaviour cloning and TD3+BC.

TD3+BC (Fujimoto & Gu 2021) is the offline-RL algorithm: TD3 with a behaviour-cloning term,
lambda = alpha / mean|Q| (alpha = 2.5), states z-scored with the data set's statistics. It was
chosen over IQL because it is one small change to an actor-critic that seqrep already has (the
twin critic and target copies are shared with SAC), it has no extra value network or expectile
to tune, and its published D4RL scores on medium-replay locomotion are strong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrep.nets import MomentumEncoder, mlp
from seqrep.rl.base import EncodedAgent
from seqrep.rl.sac import LOG_STD_MAX, LOG_STD_MIN, SquashedGaussianActor, TwinQ

__all__ = ["BC_LOSSES", "TD3BC", "BehaviourCloning", "TD3BCConfig"]

BC_LOSSES = ("mse", "gaussian", "tanh_gaussian")


class BehaviourCloning(EncodedAgent):
    """pi(s) by supervised learning on (s, a) pairs; actions in [-1, 1].

    Args:
        loss: ``"mse"`` (deterministic, ||tanh(mu(s)) - a||^2), ``"gaussian"`` (negative
            log-likelihood of a under N(tanh(mu(s)), sigma(s)^2), sigma learned per state), or
            ``"tanh_gaussian"`` (Representation Matters' BC: the likelihood of a under SAC's
            tanh-squashed Gaussian, plus an entropy bonus whose weight is learned towards a
            target entropy of -|A|, as SAC's temperature).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        loss: str = "mse",
        hidden: int = 256,
        lr: float = 1e-3,
        encoder: nn.Module | None = None,
        feature_dim: int | None = None,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__(obs_dim, encoder, feature_dim, freeze_encoder)
        if loss not in BC_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(BC_LOSSES)}, got {loss!r}")
        self.kind = loss
        self.policy: nn.Module
        if loss == "tanh_gaussian":
            self.policy = SquashedGaussianActor(self.feature_dim, act_dim, hidden)
            self.log_alpha = nn.Parameter(torch.zeros(()))
            self.target_entropy = -float(act_dim)
            self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr)
        else:
            out = act_dim if loss == "mse" else 2 * act_dim
            self.policy = mlp(self.feature_dim, [hidden, hidden], out)
        self.opt = torch.optim.Adam(
            list(self.policy.parameters()) + self.encoder_parameters(), lr=lr
        )

    def _head(self, obs: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.kind == "tanh_gaussian":
            return self.policy(self.features(obs))[2], None  # the mean action
        out = self.policy(self.features(obs))
        if self.kind == "mse":
            return torch.tanh(out), None
        mean, log_std = out.chunk(2, dim=-1)
        return torch.tanh(mean), log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def loss(self, obs: Tensor, action: Tensor) -> Tensor:
        """Mean over the batch of the per-sample loss (the negative log-likelihood for the
        tanh-Gaussian, without its entropy bonus); obs [B, O], action [B, A]."""
        if isinstance(self.policy, SquashedGaussianActor):
            return -self.policy.log_prob(self.features(obs), action).mean()
        mean, log_std = self._head(obs)
        if log_std is None:
            return (mean - action).pow(2).sum(-1).mean()
        nll = 0.5 * ((action - mean) / log_std.exp()).pow(2) + log_std + 0.5 * math.log(2 * math.pi)
        return nll.sum(-1).mean()

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self._head(obs)[0]

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        if self.kind == "tanh_gaussian":
            return self._tanh_gaussian_update(batch["obs"], batch["action"])
        loss = self.loss(batch["obs"], batch["action"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"bc_loss": loss.item()}

    def _tanh_gaussian_update(self, obs: Tensor, action: Tensor) -> dict[str, float]:
        """-E[log pi(a|s)] - alpha * H(pi(.|s)), H estimated by -log pi of a reparameterised
        sample; then alpha towards the target entropy."""
        policy = self.policy
        assert isinstance(policy, SquashedGaussianActor)
        feats = self.features(obs)
        nll = -policy.log_prob(feats, action).mean()
        _, sample_log_prob, _ = policy(feats)
        entropy = -sample_log_prob.mean()
        alpha = self.log_alpha.exp().detach()
        loss = nll - alpha * entropy
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        alpha_loss = self.log_alpha * (entropy.detach() - self.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"bc_loss": nll.item(), "entropy": entropy.item(), "alpha": alpha.item()}


@dataclass
class TD3BCConfig:
    """TD3+BC hyper-parameters (the paper's / CORL's defaults)."""

    alpha: float = field(default=2.5, metadata={"help": "BC weight: lambda = alpha / mean|Q|"})
    gamma: float = field(default=0.99, metadata={"help": "discount"})
    tau: float = field(default=0.005, metadata={"help": "target update rate"})
    policy_noise: float = field(default=0.2, metadata={"help": "target policy smoothing noise"})
    noise_clip: float = field(default=0.5, metadata={"help": "clip of that noise"})
    policy_frequency: int = field(default=2, metadata={"help": "actor update every N steps"})
    lr: float = field(default=3e-4, metadata={"help": "actor and critic learning rate"})
    hidden: int = field(default=256, metadata={"help": "hidden units (2 layers)"})


class TD3BC(EncodedAgent):
    """TD3+BC with the shared encoder hook; deterministic tanh actor in [-1, 1]."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        cfg: TD3BCConfig | None = None,
        encoder: nn.Module | None = None,
        feature_dim: int | None = None,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__(obs_dim, encoder, feature_dim, freeze_encoder)
        self.cfg = cfg = cfg or TD3BCConfig()
        self.actor = nn.Sequential(
            mlp(self.feature_dim, [cfg.hidden, cfg.hidden], act_dim), nn.Tanh()
        )
        self.critic = TwinQ(self.feature_dim, act_dim, cfg.hidden)
        self.target_actor = MomentumEncoder(self.actor, cfg.tau)
        self.target_critic = MomentumEncoder(self.critic, cfg.tau)
        # As in SAC: s' is encoded by an EMA copy of the encoder, so fine-tuning the encoder
        # does not move the bootstrap target within a step.
        self.target_encoder = MomentumEncoder(self.encoder, cfg.tau)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.q_opt = torch.optim.Adam(
            list(self.critic.parameters()) + self.encoder_parameters(), lr=cfg.lr
        )
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(self.features(obs))

    @torch.no_grad()
    def td_target(self, reward: Tensor, next_obs: Tensor, terminal: Tensor) -> Tensor:
        """y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + clip(eps, -c, c), -1, 1)). [B]."""
        feats = self.target_encoder(self.normalise(next_obs))
        action = self.target_actor.target(feats)
        noise = (torch.randn_like(action) * self.cfg.policy_noise).clamp(
            -self.cfg.noise_clip, self.cfg.noise_clip
        )
        q1, q2 = self.target_critic.target(feats, (action + noise).clamp(-1.0, 1.0))
        return reward + self.cfg.gamma * (1.0 - terminal) * torch.min(q1, q2)

    def actor_loss(self, feats: Tensor, action: Tensor) -> Tensor:
        """-lambda Q1(s, pi(s)) + ||pi(s) - a||^2 (mean), lambda = alpha / mean|Q1| (detached)."""
        pi = self.actor(feats)
        q = self.critic(feats, pi)[0]
        lmbda = self.cfg.alpha / q.abs().mean().detach()
        return -lmbda * q.mean() + F.mse_loss(pi, action)

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        target = self.td_target(batch["reward"], batch["next_obs"], batch["terminal"])
        q1, q2 = self.critic(self.features(batch["obs"]), batch["action"])
        q_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        metrics = {"q_loss": q_loss.item(), "q": q1.mean().item()}
        self.updates += 1
        if self.updates % self.cfg.policy_frequency == 0:
            a_loss = self.actor_loss(self.features(batch["obs"]).detach(), batch["action"])
            self.actor_opt.zero_grad(set_to_none=True)
            a_loss.backward()
            self.actor_opt.step()
            self.target_actor.update(self.actor)
            self.target_critic.update(self.critic)
            if not self.freeze_encoder:
                self.target_encoder.update(self.encoder)
            metrics["actor_loss"] = a_loss.item()
        return metrics
