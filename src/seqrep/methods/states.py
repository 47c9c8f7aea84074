"""State-representation objectives on offline trajectories ("Representation Matters").

Every objective trains the same :class:`seqrep.nets.StateEncoder` phi(s) on the same batches
(``batch`` sub-sequences of ``window`` steps from a TrajectoryDataset: obs [B, L, O],
action [B, L, A], reward [B, L]), so that only the objective differs:

* ``cpc`` - CPC over state sequences: GRU context over phi(s_<=t), bilinear W_k, InfoNCE over
  k = 1..K (reuses :class:`seqrep.methods.CPC` with phi applied per step).
* ``temporal`` - one-step temporal contrastive (the paper's "contrastive"): InfoNCE between
  g(phi(s_t), a_t) and phi(s_{t+1}) with in-batch negatives, bilinear critic.
* ``atc`` - multi-step, momentum-target variant (ATC): g(phi(s_t)) against an EMA encoder's
  phi'(s_{t+k}), k = window - 1.
* ``acl`` - attentive contrastive learning: a small transformer over (s, a, r) token
  sub-sequences; masked state and action tokens are predicted contrastively against the batch.
* ``curl`` - CURL on states (the seed papers' Gaussian-perturbation positives): the query is
  phi(s_t), the key an EMA encoder's phi'(s_t + noise) with N(0, 0.1^2) noise in the encoder's
  standardised state space, scored q^T W k (W ~ U[0, 1)) against the batch's keys.
* ``triplet`` / ``contrastive`` - margin losses; positives are two states of one window
  (temporally close), negatives the other windows' states.
* ``vpn`` - value prediction network: an action-conditional latent rollout from phi(s_0)
  predicts each step's reward and value (bootstrapped n-step targets);
* ``bert`` - BERT-style masked prediction: ACL's transformer and masking, regressing the
  masked states (z-scored) and actions;
* ``deepmdp`` - DeepMDP (Gelada et al. 2019): regress r_t and fit a Gaussian latent forward
  model of phi(s_{t+1}) (target without gradient) from (phi(s_t), a_t);
* ``bisimulation`` - DBC (Zhang et al. 2021): the L1 distance of phi between random pairs of the
  batch regresses |r_i - r_j| + gamma W2 of their latent forward models (trained as in
  ``deepmdp``), so phi keeps what reward and dynamics can tell apart;
* ``forward`` - predict s_{t+1} (z-scored) from (phi(s_t), a_t); ``inverse`` - predict a_t from
  (phi(s_t), phi(s_{t+1})); ``autoencoder`` - reconstruct s_t from phi(s_t); ``vae`` - the
  same through a Gaussian posterior with mean phi(s_t) and a KL term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrep.critics import BilinearCritic
from seqrep.distributed import (
    all_gather_rows,
    average_over_ranks,
    draw_for_batch,
    gather_with_grad,
    rank_rows,
    world_size,
)
from seqrep.losses import Mining, batch_contrastive_margin, batch_triplet, info_nce_from_logits
from seqrep.methods.base import LossOutput
from seqrep.methods.cpc import CPC
from seqrep.methods.registry import Registry
from seqrep.nets import MomentumEncoder, PerStep, StateEncoder, mlp

__all__ = [
    "CONTRASTIVE_OBJECTIVES",
    "STATE_OBJECTIVES",
    "AttentiveContrastive",
    "Autoencoder",
    "Bisimulation",
    "DeepMDP",
    "ForwardModel",
    "GaussianCURL",
    "InverseModel",
    "MaskedPrediction",
    "ObjectiveSpec",
    "StateCPC",
    "StateMethod",
    "TemporalContrastive",
    "TemporalMetric",
    "ValuePrediction",
    "build_state_method",
]

# Every objective, registered once below with its constructor (in this order: the command
# line's choices and the study's grid list them so).
STATE_OBJECTIVES = Registry("objective")

Batch = dict[str, Tensor]


class StateMethod(nn.Module):
    """``encoder`` (phi, what downstream agents consume) + ``loss(batch, generator)``.

    ``window`` is the sub-sequence length the objective needs (the study samples
    max(window) for every objective, so batches are identical across objectives).
    """

    encoder: StateEncoder
    window: int = 2

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        raise NotImplementedError

    def update_targets(self) -> None:
        """After each optimiser step (momentum targets); nothing by default."""


def _in_batch(query: Tensor, key: Tensor, critic: BilinearCritic) -> LossOutput:
    """InfoNCE of query i [B, D] against key i among the B keys [B, D] (in-batch negatives);
    under torch.distributed, of every rank's queries against every rank's keys."""
    query, key = gather_with_grad(critic.embed_query(query))[0], gather_with_grad(key)[0]
    res = info_nce_from_logits(query @ key.T, torch.arange(len(query), device=query.device))
    return LossOutput(
        res.loss,
        {
            "loss": res.loss.item(),
            "accuracy": res.accuracy.item(),
            "chance": 1.0 / len(query),
            "mi_bound": math.log(len(query)) - res.loss.item(),
        },
    )


class StateCPC(StateMethod):
    """CPC over state sequences; phi is applied per step and the GRU reads phi(s_<=t).

    ``momentum``: the future states' features (positives and negatives) come from an EMA copy
    of phi with this rate, without gradient (the momentum-target variant)."""

    def __init__(
        self,
        encoder: StateEncoder,
        steps: int = 4,
        context_dim: int = 128,
        momentum: float | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.window = steps + 4
        self.cpc = CPC(PerStep(encoder), encoder.feature_dim, context_dim, steps, "both", 32, 1024)
        self.key_encoder = MomentumEncoder(encoder, momentum) if momentum is not None else None

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs = batch["obs"]
        lengths = torch.full((obs.shape[0],), obs.shape[1], dtype=torch.long, device=obs.device)
        keys = self.key_encoder(obs) if self.key_encoder is not None else None
        return self.cpc.loss(obs, lengths, generator, keys=keys)

    def update_targets(self) -> None:
        if self.key_encoder is not None:
            self.key_encoder.update(self.encoder)


class TemporalContrastive(StateMethod):
    """InfoNCE between g(phi(s_t)[, a_t]) and phi(s_{t+k}) (or an EMA target's), in-batch.

    Args:
        horizon: k; with ``use_action`` (one step only) the query sees a_t too.
        momentum: EMA rate of the key encoder (ATC); ``None`` uses phi itself.
    """

    def __init__(
        self,
        encoder: StateEncoder,
        act_dim: int,
        horizon: int = 1,
        use_action: bool = True,
        momentum: float | None = None,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        if use_action and horizon != 1:
            raise ValueError("use_action needs horizon = 1 (a_t alone does not reach s_{t+k})")
        f = encoder.feature_dim
        self.encoder, self.horizon, self.use_action = encoder, horizon, use_action
        self.window = horizon + 1
        self.query_head = mlp(f + (act_dim if use_action else 0), [hidden], f)
        self.critic = BilinearCritic(f, init="xavier")
        self.key_encoder = MomentumEncoder(encoder, momentum) if momentum is not None else None

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs, k = batch["obs"], self.horizon
        z = self.encoder(obs[:, 0])
        if self.use_action:
            z = torch.cat([z, batch["action"][:, 0]], dim=-1)
        query = self.query_head(z)
        if self.key_encoder is not None:
            with torch.no_grad():
                key = self.key_encoder(obs[:, k])
        else:
            key = self.encoder(obs[:, k])
        return _in_batch(query, key, self.critic)

    def update_targets(self) -> None:
        if self.key_encoder is not None:
            self.key_encoder.update(self.encoder)


class GaussianCURL(StateMethod):
    """CURL with Gaussian-perturbation positives on states: query phi(s) [B, F], key
    phi'(s + std * N(0, noise^2)) [B, F] from an EMA copy (no gradient), logits q^T W k.

    The noise is drawn in the encoder's standardised state space: adding ``std * eps`` to s is
    adding ``eps`` after the encoder's z-scoring.
    """

    def __init__(self, encoder: StateEncoder, noise_std: float = 0.1, momentum: float = 0.05):
        super().__init__()
        self.encoder, self.noise_std, self.window = encoder, noise_std, 1
        self.key_encoder = MomentumEncoder(encoder, momentum)
        self.critic = BilinearCritic(encoder.feature_dim, init="curl")

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        s = batch["obs"][:, 0]
        query = self.encoder(s)
        eps = draw_for_batch(
            lambda n: torch.randn((n, *s.shape[1:]), generator=generator, device=s.device),
            s.shape[0],
        )
        key = self.key_encoder(s + self.noise_std * self.encoder.std * eps)  # no graph
        return _in_batch(query, key, self.critic)

    def update_targets(self) -> None:
        self.key_encoder.update(self.encoder)


class AttentiveContrastive(StateMethod):
    """ACL: a transformer over interleaved (phi(s_t), a_t, r_t) tokens with random masking; each
    masked state (action) token's output is scored against every masked state (action) token's
    input embedding in the batch (InfoNCE), so the context must identify the missing token."""

    may_skip_parameters = True  # a batch with < 2 masked action tokens leaves out_action unused

    def __init__(
        self,
        encoder: StateEncoder,
        act_dim: int,
        window: int = 8,
        mask_prob: float = 0.15,
        layers: int = 2,
        heads: int = 4,
        momentum: float | None = None,
    ) -> None:
        super().__init__()
        f = encoder.feature_dim
        self.encoder, self.window, self.mask_prob = encoder, window, mask_prob
        # momentum: masked state tokens are identified among an EMA copy's phi(s), no gradient
        self.key_encoder = MomentumEncoder(encoder, momentum) if momentum is not None else None
        self.action_embed = nn.Linear(act_dim, f)
        self.reward_embed = nn.Linear(1, f)
        self.position = nn.Parameter(torch.zeros(3 * window, f))
        nn.init.normal_(self.position, std=0.02)
        self.mask_token = nn.Parameter(torch.zeros(f))
        layer = nn.TransformerEncoderLayer(f, heads, 2 * f, dropout=0.0, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_state, self.out_action = nn.Linear(f, f), nn.Linear(f, f)
        self.critic = BilinearCritic(f, init="identity")

    def _masked(
        self, batch: Batch, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Token inputs [B, 3L, F], transformer outputs [B, 3L, F], this rank's mask [B, 3L],
        the global batch's mask [W * B, 3L] and each token's kind [3L] (0 s, 1 a, 2 r)."""
        obs, act, rew = batch["obs"], batch["action"], batch["reward"]
        b, t = obs.shape[:2]
        if t != self.window:
            raise ValueError(f"ACL was built for windows of {self.window} steps, got {t}")
        tokens = torch.stack(
            [self.encoder(obs), self.action_embed(act), self.reward_embed(rew[..., None])], dim=2
        ).reshape(b, 3 * t, -1)  # s_0, a_0, r_0, s_1, ...
        kind = torch.arange(3 * t, device=obs.device) % 3
        # The mask of the global batch (see seqrep.distributed): every rank must agree on
        # which token kinds have enough masked tokens to score.
        u = torch.rand(b * world_size(), 3 * t, generator=generator, device=obs.device)
        every_mask = u < self.mask_prob
        every_mask &= kind < 2
        every_mask[:, 0] |= ~every_mask.any(1)  # at least one masked state per sequence
        mask = rank_rows(every_mask)
        inputs = torch.where(mask[..., None], self.mask_token.expand_as(tokens), tokens)
        return tokens, self.transformer(inputs + self.position), mask, every_mask, kind

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        tokens, out, mask, every_mask, kind = self._masked(batch, generator)
        if self.key_encoder is not None:  # state keys from the EMA copy
            t = batch["obs"].shape[1]
            keys = tokens.view(tokens.shape[0], t, 3, -1).clone()
            keys[:, :, 0] = self.key_encoder(batch["obs"])
            tokens = keys.view_as(tokens)
        terms, acc = [], []
        for k, head in ((0, self.out_state), (1, self.out_action)):
            sel = mask & (kind == k)
            if int((every_mask & (kind == k)).sum()) < 2:
                continue
            r = _in_batch(head(out[sel]), tokens[sel], self.critic)
            terms.append(r.loss)
            acc.append(r.metrics["accuracy"])
        loss = torch.stack(terms).mean()
        return LossOutput(loss, {"loss": loss.item(), "accuracy": sum(acc) / len(acc)})

    def update_targets(self) -> None:
        if self.key_encoder is not None:
            self.key_encoder.update(self.encoder)


class MaskedPrediction(AttentiveContrastive):
    """BERT-style masked prediction: ACL's tokens, masking and transformer, but each masked
    state token regresses the z-scored state and each masked action token the action (MSE), in
    place of ACL's contrastive identification. Reward tokens stay as unmasked context in both,
    so that the two differ only in the target."""

    def __init__(self, encoder: StateEncoder, act_dim: int, window: int = 8) -> None:
        super().__init__(encoder, act_dim, window)
        f = encoder.feature_dim
        self.out_state, self.out_action = nn.Linear(f, encoder.obs_dim), nn.Linear(f, act_dim)
        del self.critic  # ACL's contrastive critic: regression has no use for it

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        _, out, mask, every_mask, kind = self._masked(batch, generator)
        targets = (self.encoder.normalise(batch["obs"]), batch["action"])
        terms, errors = [], {}
        for k, head, target in ((0, self.out_state, targets[0]), (1, self.out_action, targets[1])):
            sel = mask & (kind == k)
            count = int((every_mask & (kind == k)).sum())  # the global batch's masked tokens
            if count == 0:
                continue
            # [B, 3L] token mask -> the steps whose token k is masked: [B, L]
            steps = sel.view(sel.shape[0], -1, 3)[:, :, k]
            squared = (head(out[sel]) - target[steps]).pow(2).mean(-1)
            # W times this rank's share of the global mean (see seqrep.distributed)
            terms.append(squared.sum() * (world_size() / count))
            errors[("state" if k == 0 else "action") + "_error"] = squared.mean().item()
        loss = torch.stack(terms).sum()
        metrics = {"loss": loss.item(), "prediction_error": sum(errors.values()), **errors}
        return LossOutput(loss, average_over_ranks(metrics))


class TemporalMetric(StateMethod):
    """Triplet (semi-hard mining, FaceNet) on L2-normalised phi, or the pairwise-margin loss
    (Hadsell) on an L2-normalised projection head over phi: the positive of s_{b,0} is s_{b,j}
    (j uniform in 1..window-1), negatives are the other windows' states."""

    def __init__(
        self,
        encoder: StateEncoder,
        objective: str,
        window: int = 4,
        margin: float = 0.5,
        mining: Mining = "semi_hard",
    ) -> None:
        super().__init__()
        self.mining = mining
        if objective not in ("triplet", "contrastive"):
            raise ValueError(f"objective must be 'triplet' or 'contrastive', got {objective!r}")
        self.encoder, self.objective, self.window, self.margin = encoder, objective, window, margin
        # The pairwise-margin loss on phi itself collapsed it: effective rank 12 of 64 on
        # HalfCheetah's expert states (21-35 for the other objectives) with any margin from 0.5
        # to 1.4, since pulling every positive pair together is cheapest along a few
        # directions. Scored through a projection head (SimCLR's remedy for dimensional
        # collapse), phi keeps rank 29 and probes better; downstream tasks get phi, not the head.
        f = encoder.feature_dim
        self.head = mlp(f, [4 * f], f) if objective == "contrastive" else None

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs = batch["obs"]
        b, t = obs.shape[:2]
        if t < 2:
            raise ValueError(f"{self.objective} needs windows of at least 2 steps, got {t}")
        # Positives come from this objective's own window, not the (longer) batch window that
        # the study samples for every objective.
        j = draw_for_batch(
            lambda n: torch.randint(
                1, min(t, self.window), (n,), generator=generator, device=obs.device
            ),
            b,
        )
        pair = torch.cat([obs[:, 0], obs[torch.arange(b, device=obs.device), j]])
        phi = self.encoder(pair)
        emb = F.normalize(phi if self.head is None else self.head(phi), dim=-1).reshape(2, b, -1)
        # Every rank's anchors, then every rank's positives (one process's layout at W * B).
        emb = gather_with_grad(emb.transpose(0, 1), equal_rows=True)[0]
        emb = emb.transpose(0, 1).reshape(-1, emb.shape[-1])
        b = emb.shape[0] // 2
        labels = torch.arange(b, device=obs.device).repeat(2)
        if self.objective == "triplet":
            loss = batch_triplet(emb, labels, self.margin, mining=self.mining)
        else:
            # Balance the B positive pairs against the ~2B^2 negative ones: a plain mean over
            # pairs is dominated by negatives already beyond the margin and never aligns pairs.
            per_pair = batch_contrastive_margin(emb, labels, self.margin, reduction="none")
            i, j = torch.triu_indices(2 * b, 2 * b, 1)
            same = labels[i] == labels[j]
            loss = 0.5 * (per_pair[same].mean() + per_pair[~same].mean())
        with torch.no_grad():
            d = torch.cdist(emb[:b], emb[b:])
            acc = (d.argmin(1) == torch.arange(b, device=obs.device)).float().mean()
        return LossOutput(loss, {"loss": loss.item(), "accuracy": acc.item()})


class LatentDynamics(nn.Module):
    """Reward head r(z, a) and a Gaussian latent forward model N(mu(z, a), sigma(z, a)^2) of
    the next state's features (DeepMDP's and DBC's models): [B, F], [B, A] -> [B], [B, F] x 2."""

    def __init__(self, feature_dim: int, act_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.reward = mlp(feature_dim + act_dim, [hidden], 1)
        self.forward_model = mlp(feature_dim + act_dim, [hidden], 2 * feature_dim)

    def forward(self, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        za = torch.cat([z, action], dim=-1)
        mu, log_std = self.forward_model(za).chunk(2, dim=-1)
        return self.reward(za).squeeze(-1), mu, log_std.clamp(-5.0, 2.0).exp()

    def losses(
        self, z: Tensor, action: Tensor, reward: Tensor, next_z: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Reward MSE and the forward model's Gaussian NLL of ``next_z`` (no gradient into
        it: the target must not collapse to please the model), with mu and sigma [B, F]."""
        r_hat, mu, std = self(z, action)
        nll = (0.5 * ((next_z.detach() - mu) / std) ** 2 + std.log()).mean()
        return F.mse_loss(r_hat, reward), nll, mu, std


class DeepMDP(StateMethod):
    """DeepMDP: phi must predict the reward and (through a latent Gaussian model) phi(s')."""

    def __init__(self, encoder: StateEncoder, act_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.encoder, self.window = encoder, 2
        self.dynamics = LatentDynamics(encoder.feature_dim, act_dim, hidden)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs = batch["obs"]
        z = self.encoder(obs[:, :2])
        r_loss, nll, _, _ = self.dynamics.losses(
            z[:, 0], batch["action"][:, 0], batch["reward"][:, 0], z[:, 1]
        )
        loss = r_loss + nll
        metrics = {
            "loss": loss.item(),
            "prediction_error": r_loss.item(),
            "forward_nll": nll.item(),
        }
        return LossOutput(loss, average_over_ranks(metrics))


class Bisimulation(StateMethod):
    """DBC's bisimulation metric loss: for pairs (i, j) of the batch, ||phi_i - phi_j||_1 (mean
    over features) regresses |r_i - r_j| + gamma * W2(N(mu_i, sigma_i), N(mu_j, sigma_j)) / sqrt(F)
    (the 2-Wasserstein distance of the forward models, per feature like the L1 side; targets
    without gradient), plus the reward and forward-model losses that define them. Under
    torch.distributed the pairs are drawn over the global batch."""

    def __init__(
        self, encoder: StateEncoder, act_dim: int, hidden: int = 256, gamma: float = 0.99
    ) -> None:
        super().__init__()
        self.encoder, self.window, self.gamma = encoder, 2, gamma
        self.dynamics = LatentDynamics(encoder.feature_dim, act_dim, hidden)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs, reward = batch["obs"], batch["reward"][:, 0]
        z = self.encoder(obs[:, :2])
        r_loss, nll, mu, std = self.dynamics.losses(z[:, 0], batch["action"][:, 0], reward, z[:, 1])
        # Every rank's rows (one process's batch at W * B), then a random pairing of them.
        z0, mu, std = (gather_with_grad(t)[0] for t in (z[:, 0], mu, std))
        reward = all_gather_rows(reward)
        pair = torch.randperm(len(z0), generator=generator, device=z0.device)
        distance = (z0 - z0[pair]).abs().mean(-1)
        with torch.no_grad():
            w2 = ((mu - mu[pair]).pow(2) + (std - std[pair]).pow(2)).sum(-1).sqrt()
            target = (reward - reward[pair]).abs() + self.gamma * w2 / math.sqrt(mu.shape[-1])
        bisim = F.mse_loss(distance, target)
        loss = bisim + r_loss + nll
        metrics = {
            "loss": loss.item(),
            "bisimulation_loss": bisim.item(),
            "prediction_error": r_loss.item(),
            "forward_nll": nll.item(),
        }
        return LossOutput(loss, average_over_ranks(metrics))


class ValuePrediction(StateMethod):
    """VPN (Oh et al. 2017) as a pretraining objective: from z_0 = phi(s_0) an action-conditional
    latent model z_{j+1} = T(z_j, a_j) is rolled along the window's actions, and at every step
    predicts the reward r_j and the value V(z_j). Value targets are the window's discounted
    rewards from step j, bootstrapped at its last state by EMA copies of phi and V (tau 0.05,
    no gradient): V(s_j) ~ sum_{i=j}^{L-2} gamma^{i-j} r_i + gamma^{L-1-j} V'(phi'(s_{L-1})).
    The value head predicts (1 - gamma) V, on the rewards' scale, so that the value error does
    not drown the reward error by a factor 1 / (1 - gamma)^2. Only reward and value errors
    train phi and T (no latent-matching term), as in VPN."""

    def __init__(
        self, encoder: StateEncoder, act_dim: int, window: int = 8, hidden: int = 256
    ) -> None:
        super().__init__()
        if window < 2:
            raise ValueError(f"VPN needs windows of at least 2 steps, got {window}")
        f = encoder.feature_dim
        self.encoder, self.window, self.gamma = encoder, window, 0.99
        self.transition = mlp(f + act_dim, [hidden], f)
        self.reward = mlp(f + act_dim, [hidden], 1)
        self.value = mlp(f, [hidden], 1)
        self.target_encoder = MomentumEncoder(encoder, 0.05)
        self.target_value = MomentumEncoder(self.value, 0.05)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs, act, rew = batch["obs"], batch["action"], batch["reward"]
        steps = obs.shape[1] - 1  # rollout depth: the window's transitions but the last
        scale = 1.0 - self.gamma  # the value head's unit: (1 - gamma) V
        with torch.no_grad():
            g = self.target_value(self.target_encoder(obs[:, -1])).squeeze(-1) / scale
            targets = []
            for j in reversed(range(steps)):  # G_j = r_j + gamma G_{j+1}, G_{L-1} = V'(s_{L-1})
                g = rew[:, j] + self.gamma * g
                targets.append(scale * g)
            value_target = torch.stack(targets[::-1], dim=1)  # [B, L-1], in (1 - gamma) V
        z = self.encoder(obs[:, 0])
        rewards, values = [], []
        for j in range(steps):
            za = torch.cat([z, act[:, j]], dim=-1)
            rewards.append(self.reward(za).squeeze(-1))
            values.append(self.value(z).squeeze(-1))
            z = self.transition(za)
        reward_loss = F.mse_loss(torch.stack(rewards, 1), rew[:, :steps])
        value_loss = F.mse_loss(torch.stack(values, 1), value_target)
        loss = reward_loss + value_loss
        metrics = {
            "loss": loss.item(),
            "prediction_error": reward_loss.item(),
            "value_error": value_loss.item(),
        }
        return LossOutput(loss, average_over_ranks(metrics))

    def update_targets(self) -> None:
        self.target_encoder.update(self.encoder)
        self.target_value.update(self.value)


class ForwardModel(StateMethod):
    """Predict the z-scored s_{t+1} from (phi(s_t), a_t); MSE per dimension."""

    def __init__(self, encoder: StateEncoder, act_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = mlp(encoder.feature_dim + act_dim, [hidden], encoder.obs_dim)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs = batch["obs"]
        pred = self.head(torch.cat([self.encoder(obs[:, 0]), batch["action"][:, 0]], dim=-1))
        loss = F.mse_loss(pred, self.encoder.normalise(obs[:, 1]))
        metrics = {"loss": loss.item(), "prediction_error": loss.item()}
        return LossOutput(loss, average_over_ranks(metrics))


class InverseModel(StateMethod):
    """Predict a_t from (phi(s_t), phi(s_{t+1})); MSE per action dimension."""

    def __init__(self, encoder: StateEncoder, act_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = mlp(2 * encoder.feature_dim, [hidden], act_dim)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs = batch["obs"]
        z = self.encoder(obs[:, :2])
        pred = torch.tanh(self.head(z.flatten(1)))
        loss = F.mse_loss(pred, batch["action"][:, 0])
        metrics = {"loss": loss.item(), "prediction_error": loss.item()}
        return LossOutput(loss, average_over_ranks(metrics))


class Autoencoder(StateMethod):
    """Reconstruct the z-scored s_t from phi(s_t); ``variational`` samples z ~ N(phi(s),
    sigma(s)^2) and adds beta * KL(q(z|s) || N(0, I)) (per dimension)."""

    def __init__(
        self,
        encoder: StateEncoder,
        variational: bool = False,
        beta: float = 1e-3,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.encoder, self.variational, self.beta = encoder, variational, beta
        self.decoder = mlp(encoder.feature_dim, [hidden, hidden], encoder.obs_dim)
        self.log_var = nn.Linear(encoder.feature_dim, encoder.feature_dim) if variational else None

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> LossOutput:
        obs = batch["obs"][:, 0]
        mu = self.encoder(obs)
        z, kl = mu, torch.zeros((), device=mu.device)
        if self.log_var is not None:
            log_var = self.log_var(mu).clamp(-10.0, 5.0)
            eps = draw_for_batch(
                lambda n: torch.randn((n, *mu.shape[1:]), generator=generator, device=mu.device),
                mu.shape[0],
            )
            z = mu + (0.5 * log_var).exp() * eps
            kl = 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).mean()
        recon = F.mse_loss(self.decoder(z), self.encoder.normalise(obs))
        loss = recon + self.beta * kl
        metrics = {"loss": loss.item(), "prediction_error": recon.item(), "kl": kl.item()}
        return LossOutput(loss, average_over_ranks(metrics))


@dataclass(frozen=True)
class ObjectiveSpec:
    """What an objective's constructor needs besides the encoder: the action size, the width of
    its own networks, and the window length of the batches it will see."""

    act_dim: int
    hidden: int
    window: int


@STATE_OBJECTIVES.register("cpc", "cpc_momentum", family="contrastive")
def _cpc(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    momentum = 0.05 if name == "cpc_momentum" else None
    return StateCPC(enc, max(1, spec.window // 2), momentum=momentum)


@STATE_OBJECTIVES.register("temporal", family="contrastive")
def _temporal(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return TemporalContrastive(enc, spec.act_dim, horizon=1, use_action=True)


@STATE_OBJECTIVES.register("atc", family="contrastive")
def _atc(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    horizon = min(3, spec.window - 1)
    return TemporalContrastive(enc, spec.act_dim, horizon=horizon, use_action=False, momentum=0.01)


@STATE_OBJECTIVES.register("acl", "acl_momentum", family="contrastive")
def _acl(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    momentum = 0.05 if name == "acl_momentum" else None
    return AttentiveContrastive(enc, spec.act_dim, window=spec.window, momentum=momentum)


@STATE_OBJECTIVES.register("curl", family="contrastive")
def _curl(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return GaussianCURL(enc, noise_std=0.1, momentum=0.05)


@STATE_OBJECTIVES.register("triplet", "contrastive", family="contrastive")
def _metric(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return TemporalMetric(enc, name, window=min(4, spec.window))  # type: ignore[arg-type]


# Objectives that fit a model of the data (reward and dynamics, or masked tokens) rather than
# a contrastive or margin criterion.
@STATE_OBJECTIVES.register("deepmdp", family="model")
def _deepmdp(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return DeepMDP(enc, spec.act_dim, spec.hidden)


@STATE_OBJECTIVES.register("bisimulation", family="model")
def _bisimulation(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return Bisimulation(enc, spec.act_dim, spec.hidden)


@STATE_OBJECTIVES.register("vpn", family="model")
def _vpn(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return ValuePrediction(enc, spec.act_dim, window=spec.window, hidden=spec.hidden)


@STATE_OBJECTIVES.register("bert", family="model")
def _bert(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return MaskedPrediction(enc, spec.act_dim, window=spec.window)


@STATE_OBJECTIVES.register("forward", family="prediction")
def _forward(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return ForwardModel(enc, spec.act_dim, spec.hidden)


@STATE_OBJECTIVES.register("inverse", family="prediction")
def _inverse(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return InverseModel(enc, spec.act_dim, spec.hidden)


@STATE_OBJECTIVES.register("autoencoder", "vae", family="reconstruction")
def _autoencoder(name: str, enc: StateEncoder, spec: ObjectiveSpec) -> StateMethod:
    return Autoencoder(enc, variational=name == "vae", hidden=spec.hidden)


CONTRASTIVE_OBJECTIVES = STATE_OBJECTIVES.names("contrastive")
MODEL_OBJECTIVES = STATE_OBJECTIVES.names("model")


def build_state_method(
    name: str,
    obs_dim: int,
    act_dim: int,
    *,
    feature_dim: int = 64,
    hidden: int = 256,
    window: int = 8,
    obs_mean: Tensor | None = None,
    obs_std: Tensor | None = None,
) -> StateMethod:
    """An objective by name (see :data:`STATE_OBJECTIVES`) around a fresh StateEncoder.

    ``obs_mean`` / ``obs_std`` ([O]) set the encoder's input z-scoring before any copy is made
    (momentum targets copy it at construction).

    Raises:
        ValueError: an unknown name, with every registered one.
    """
    STATE_OBJECTIVES.entry(name)  # an unknown name fails before anything is built
    enc = StateEncoder(obs_dim, feature_dim, hidden)
    if obs_mean is not None and obs_std is not None:
        enc.set_statistics(obs_mean, obs_std)
    return STATE_OBJECTIVES.create(name, enc, ObjectiveSpec(act_dim, hidden, window))  # type: ignore[no-any-return]
