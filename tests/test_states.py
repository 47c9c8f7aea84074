"""State-representation objectives: known latent structure, brute-force references, momentum."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LinearRegression

from latent_env import latent_control_dataset
from seqrep.loops.pretrain_states import pretrain_state_encoder
from seqrep.methods.states import (
    CONTRASTIVE_OBJECTIVES,
    MODEL_OBJECTIVES,
    STATE_OBJECTIVES,
    AttentiveContrastive,
    GaussianCURL,
    TemporalContrastive,
    TemporalMetric,
    build_state_method,
)
from seqrep.nets import StateEncoder


@pytest.fixture(scope="module")
def latent_data():
    return latent_control_dataset(seed=0), latent_control_dataset(episodes=20, seed=1)


def _probe_r2(encoder, latent_data) -> float:
    (train, c), (test, c_test) = latent_data
    with torch.no_grad():
        f = encoder(torch.from_numpy(train.observations)).numpy()
        f_test = encoder(torch.from_numpy(test.observations)).numpy()
    return LinearRegression().fit(f, c).score(f_test, c_test)


def _pretrain(name, latent_data, steps=500):
    (train, _), _ = latent_data
    method, history = pretrain_state_encoder(
        name, train, steps=steps, batch_size=64, window=8, feature_dim=4, hidden=64, lr=1e-3
    )
    return method, history


@pytest.fixture(scope="module")
def autoencoder_r2(latent_data):
    method, _ = _pretrain("autoencoder", latent_data)
    return _probe_r2(method.encoder, latent_data)


TEMPORAL_OBJECTIVES = [
    n for n in (*CONTRASTIVE_OBJECTIVES, *MODEL_OBJECTIVES) if n not in ("curl", "bert")
]


@pytest.mark.parametrize("name", TEMPORAL_OBJECTIVES)
def test_contrastive_objectives_recover_the_controllable_state(name, latent_data, autoencoder_r2):
    # Observations mix a 2-d controllable state with 8 high-variance i.i.d. distractors; with 4
    # features, reconstruction spends them on the distractors, while predicting the future
    # (or matching temporally close states) can only use the controllable part.
    # The bisimulation metric is recursive: its target is only informative once the latent
    # forward model has been learnt (R^2 0.01 after 500 steps, 0.69 after 3000).
    steps = 3000 if name == "bisimulation" else 500
    method, history = _pretrain(name, latent_data, steps)
    r2 = _probe_r2(method.encoder, latent_data)
    assert autoencoder_r2 < 0.1, autoencoder_r2
    assert r2 > autoencoder_r2 + 0.25, (name, r2, autoencoder_r2)
    assert history[-1]["step"] == steps and np.isfinite(history[-1]["loss"])


def test_every_objective_trains_only_its_own_encoder_and_is_finite(latent_data):
    (train, _), _ = latent_data
    batch = train.sample_sequences(16, 8, torch.Generator().manual_seed(0))
    for name in STATE_OBJECTIVES:
        torch.manual_seed(0)
        method = build_state_method(name, train.obs_dim, train.act_dim, feature_dim=8, hidden=32)
        out = method.loss(batch, torch.Generator().manual_seed(0))
        out.loss.backward()
        assert math.isfinite(out.loss.item()) and out.metrics["loss"] == out.loss.item()
        grads = [p.grad for p in method.encoder.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name
    with pytest.raises(ValueError, match="unknown objective 'simclr'"):
        build_state_method("simclr", 3, 1)


def test_temporal_contrastive_matches_a_loop():
    torch.manual_seed(0)
    method = TemporalContrastive(StateEncoder(5, 6, 16), act_dim=2)
    batch = {"obs": torch.randn(7, 2, 5), "action": torch.rand(7, 2, 2) * 2 - 1}
    out = method.loss(batch)
    with torch.no_grad():
        q = method.query_head(
            torch.cat([method.encoder(batch["obs"][:, 0]), batch["action"][:, 0]], -1)
        )
        k = method.encoder(batch["obs"][:, 1])
        w = method.critic.weight
        losses = []
        for i in range(7):
            scores = [float(q[i] @ w @ k[j]) for j in range(7)]
            m = max(scores)
            losses.append(-(scores[i] - m - math.log(sum(math.exp(s - m) for s in scores))))
    assert out.loss.item() == pytest.approx(sum(losses) / 7, rel=1e-5)
    assert out.metrics["mi_bound"] == pytest.approx(math.log(7) - out.loss.item())


def test_balanced_pairwise_margin_matches_a_loop():
    torch.manual_seed(0)
    method = TemporalMetric(StateEncoder(3, 4, 8), "contrastive", window=3, margin=0.7)
    batch = {"obs": torch.randn(5, 3, 3)}
    gen = torch.Generator().manual_seed(3)
    out = method.loss(batch, gen)
    j = torch.randint(1, 3, (5,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        phi = method.encoder(torch.cat([batch["obs"][:, 0], batch["obs"][torch.arange(5), j]]))
        e = F.normalize(method.head(phi), dim=-1)  # scored through the projection head
    same, diff = [], []
    for a in range(10):
        for b in range(a + 1, 10):
            d = float((e[a] - e[b]).norm())
            if a % 5 == b % 5:
                same.append(0.5 * d**2)  # Hadsell et al. (2006), eq. 4
            else:
                diff.append(0.5 * max(0.0, 0.7 - d) ** 2)
    expected = 0.5 * (np.mean(same) + np.mean(diff))
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    # The head trains with phi; the triplet loss scores phi itself and has none.
    out.loss.backward()
    assert method.head[0].weight.grad.abs().sum() > 0
    assert TemporalMetric(StateEncoder(3, 4, 8), "triplet").head is None


def test_atc_key_encoder_is_an_ema_copy_with_the_input_statistics():
    enc = StateEncoder(3, 4, 8)
    enc.set_statistics(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 2.0]))
    method = TemporalContrastive(enc, 1, horizon=2, use_action=False, momentum=0.1)
    key = method.key_encoder.target
    assert torch.equal(key.mean, enc.mean) and torch.equal(key.std, enc.std)
    before = [p.clone() for p in key.parameters()]
    out = method.loss({"obs": torch.randn(6, 3, 3)})
    out.loss.backward()
    assert all(p.grad is None for p in key.parameters())
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(1.0)
    method.update_targets()
    for b, k, o in zip(before, key.parameters(), enc.parameters(), strict=True):
        torch.testing.assert_close(k, 0.9 * b + 0.1 * o)


def test_acl_rejects_the_wrong_window():
    method = AttentiveContrastive(StateEncoder(3, 8, 8), 1, window=4)
    with pytest.raises(ValueError, match="windows of 4 steps, got 6"):
        method.loss(
            {
                "obs": torch.randn(2, 6, 3),
                "action": torch.randn(2, 6, 1),
                "reward": torch.randn(2, 6),
            }
        )


@pytest.mark.parametrize("objective", ["triplet", "contrastive"])
def test_margin_objectives_draw_positives_from_their_own_window(objective):
    """The study samples windows of 8 for every objective; a margin objective built with
    window 4 must still take its positive from steps 1..3 of each window."""
    torch.manual_seed(0)
    enc = StateEncoder(1, 4, 8)
    method = TemporalMetric(enc, objective, window=4)
    seen: list[torch.Tensor] = []
    enc.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0][16:, 0].clone()))
    obs = torch.arange(8.0).expand(16, 8)[:, :, None]  # the observation is its step in the window
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        method.loss({"obs": obs}, gen)
    steps = torch.cat(seen).long()
    assert set(steps.tolist()) == {1, 2, 3}


def test_gaussian_curl_matches_a_float64_loop_and_its_key_has_no_gradient():
    torch.manual_seed(0)
    enc = StateEncoder(3, 4, 8)
    enc.set_statistics(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.5, 3.0]))
    method = GaussianCURL(enc, noise_std=0.1, momentum=0.05)
    obs = torch.randn(6, 1, 3)
    out = method.loss({"obs": obs}, torch.Generator().manual_seed(4))
    eps = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        q = enc(obs[:, 0]).double()
        # noise of std 0.1 in the standardised space: the key encoder sees z(s) + 0.1 eps
        k = method.key_encoder.target.net(enc.normalise(obs[:, 0]) + 0.1 * eps).double()
    w = method.critic.weight.detach().double()
    total = 0.0
    for i in range(6):
        scores = [
            sum(q[i, a] * w[a, b] * k[j, b] for a in range(4) for b in range(4)) for j in range(6)
        ]
        top = max(scores)
        total -= float(scores[i] - top - math.log(sum(math.exp(float(v - top)) for v in scores)))
    assert out.loss.item() == pytest.approx(total / 6, rel=1e-5)
    out.loss.backward()
    assert all(p.grad is None for p in method.key_encoder.parameters())
    assert all(p.grad is not None for p in enc.parameters())
    before = [p.detach().clone() for p in method.key_encoder.target.parameters()]
    method.update_targets()
    for b, t, o in zip(
        before, method.key_encoder.target.parameters(), enc.parameters(), strict=True
    ):
        assert torch.allclose(t, 0.95 * b + 0.05 * o.detach(), atol=1e-7)


def test_gaussian_curl_learns_noise_invariance_not_the_controllable_state(latent_data):
    """What Gaussian positives buy on states: matching s to s + noise among other states
    (instance discrimination), with no temporal signal, so on the latent task it spends its
    features like reconstruction does, on the high-variance distractors."""
    method, history = _pretrain("curl", latent_data)
    assert history[-1]["accuracy"] > 8 * history[-1]["chance"], history[-1]  # 4 features: 0.19
    assert _probe_r2(method.encoder, latent_data) < 0.1


def test_bisimulation_loss_matches_a_loop():
    """DBC's loss against a per-pair float64 loop: L1 (mean over features) between phi_i and
    phi_perm(i) regressing |r_i - r_j| + gamma W2 / sqrt(F), plus reward MSE and forward NLL."""
    torch.manual_seed(0)
    method = build_state_method("bisimulation", 3, 2, feature_dim=4, hidden=16).double()
    g = torch.Generator().manual_seed(1)
    batch = {
        "obs": torch.randn(6, 2, 3, generator=g, dtype=torch.float64),
        "action": torch.rand(6, 2, 2, generator=g, dtype=torch.float64) * 2 - 1,
        "reward": torch.randn(6, 2, generator=g, dtype=torch.float64),
    }
    out = method.loss(batch, torch.Generator().manual_seed(7))
    pair = torch.randperm(6, generator=torch.Generator().manual_seed(7)).tolist()
    with torch.no_grad():
        z = method.encoder(batch["obs"][:, 0])
        z_next = method.encoder(batch["obs"][:, 1])
        r_hat, mu, std = method.dynamics(z, batch["action"][:, 0])
        r = batch["reward"][:, 0]
        bisim, r_mse, nll = 0.0, 0.0, 0.0
        for i in range(6):
            j = pair[i]
            dist = sum(abs(float(z[i, f] - z[j, f])) for f in range(4)) / 4
            w2 = math.sqrt(
                sum(
                    float(mu[i, f] - mu[j, f]) ** 2 + float(std[i, f] - std[j, f]) ** 2
                    for f in range(4)
                )
            )
            target = abs(float(r[i] - r[j])) + 0.99 * w2 / 2.0
            bisim += (dist - target) ** 2 / 6
            r_mse += float(r_hat[i] - r[i]) ** 2 / 6
            for f in range(4):
                diff = float((z_next[i, f] - mu[i, f]) / std[i, f])
                nll += (0.5 * diff**2 + math.log(float(std[i, f]))) / 24
    assert out.loss.item() == pytest.approx(bisim + r_mse + nll, rel=1e-9)
    assert out.metrics["bisimulation_loss"] == pytest.approx(bisim, rel=1e-9)


def test_pretraining_batches_mix_in_the_requested_share_of_the_other_set():
    from seqrep.data.trajectories import TrajectoryDataset
    from seqrep.loops.pretrain_states import _sample

    def constant(value: float, episodes: int) -> TrajectoryDataset:
        eps = [
            {
                "observations": np.full((20, 2), value, np.float32),
                "next_observations": np.full((20, 2), value, np.float32),
                "actions": np.zeros((20, 1), np.float32),
                "rewards": np.zeros(20, np.float32),
                "terminals": np.zeros(20, bool),
                "timeouts": np.r_[np.zeros(19, bool), True],
            }
            for _ in range(episodes)
        ]
        return TrajectoryDataset.from_episodes(eps)

    batch = _sample(constant(0.0, 5), (constant(1.0, 2), 0.1), 60, 4, torch.Generator())
    from_other = batch["obs"][:, 0, 0] == 1.0
    assert int(from_other.sum()) == 6 and batch["obs"].shape == (60, 4, 2)
    assert not from_other[-6:].all()  # shuffled into the batch, not appended


def test_masked_prediction_learns_a_little_more_than_reconstruction(latent_data, autoencoder_r2):
    """BERT-style regression of masked tokens is a reconstruction objective: after z-scoring,
    the 8 unpredictable distractors carry ~97% of the observation variance, so its loss barely
    rewards the 2-d controllable state (R^2 0.17 after 500 steps, 0.11 after 3000, against
    0.6-0.9 for the predictive and contrastive objectives); it still beats the autoencoder."""
    method, history = _pretrain("bert", latent_data)
    r2 = _probe_r2(method.encoder, latent_data)
    assert autoencoder_r2 + 0.1 < r2 < 0.4, (r2, autoencoder_r2)
    assert np.isfinite(history[-1]["loss"])


@pytest.mark.parametrize("name", ["cpc_momentum", "acl_momentum"])
def test_momentum_variants_score_against_an_ema_copy_without_gradient(name):
    """The keys of CPC's and ACL's momentum variants come from an EMA copy of phi (tau 0.05):
    no gradient reaches it, the loss differs from the online-key objective's, and
    update_targets moves it 5% of the way to phi."""
    torch.manual_seed(0)
    method = build_state_method(name, 3, 2, feature_dim=8, hidden=16, window=8)
    g = torch.Generator().manual_seed(0)
    batch = {
        "obs": torch.randn(8, 8, 3, generator=g),
        "action": torch.rand(8, 8, 2, generator=g),
        "reward": torch.randn(8, 8, generator=g),
    }
    key = method.key_encoder.target
    with torch.no_grad():  # a target that has drifted from phi, as it does during training
        for p in key.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    out = method.loss(batch, torch.Generator().manual_seed(1))
    out.loss.backward()
    assert all(p.grad is None for p in key.parameters())
    assert all(p.grad is not None for p in method.encoder.parameters())
    online = copy.deepcopy(method)
    online.key_encoder = None
    plain = online.loss(batch, torch.Generator().manual_seed(1))
    assert abs(plain.loss.item() - out.loss.item()) > 1e-4
    before = [p.clone() for p in key.parameters()]
    method.update_targets()
    for b, k, o in zip(before, key.parameters(), method.encoder.parameters(), strict=True):
        torch.testing.assert_close(k, 0.95 * b + 0.05 * o)


def test_vpn_loss_matches_a_loop():
    """VPN: a latent rollout from phi(s_0) along the window's actions, reward and value errors
    at every step, value targets = discounted window rewards bootstrapped by the EMA copies at
    the last state, all in (1 - gamma) V units; against a float64 loop."""
    torch.manual_seed(0)
    method = build_state_method("vpn", 3, 2, feature_dim=4, hidden=16, window=5).double()
    g = torch.Generator().manual_seed(2)
    batch = {
        "obs": torch.randn(3, 5, 3, generator=g, dtype=torch.float64),
        "action": torch.rand(3, 5, 2, generator=g, dtype=torch.float64) * 2 - 1,
        "reward": torch.randn(3, 5, generator=g, dtype=torch.float64),
    }
    out = method.loss(batch)
    gamma, reward_sq, value_sq = 0.99, 0.0, 0.0
    with torch.no_grad():
        for b in range(3):
            obs, act, rew = (batch[k][b] for k in ("obs", "action", "reward"))
            boot = float(method.target_value(method.target_encoder(obs[4]))) / (1 - gamma)
            z = method.encoder(obs[0])
            for j in range(4):
                za = torch.cat([z, act[j]])
                ret = sum(gamma ** (i - j) * float(rew[i]) for i in range(j, 4))
                ret += gamma ** (4 - j) * boot
                reward_sq += (float(method.reward(za)) - float(rew[j])) ** 2
                value_sq += (float(method.value(z)) - (1 - gamma) * ret) ** 2
                z = method.transition(za)
    assert out.loss.item() == pytest.approx((reward_sq + value_sq) / 12, rel=1e-9)
    assert out.metrics["value_error"] == pytest.approx(value_sq / 12, rel=1e-9)
