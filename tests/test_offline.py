"""BC and TD3+BC against hand computations; the encoder hook; episode collection."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from seqrep.rl.offline import TD3BC, BehaviourCloning, TD3BCConfig
from transitions import transition_batch


@pytest.mark.parametrize("kind", ["mse", "gaussian"])
def test_bc_losses_match_loops(kind):
    torch.manual_seed(0)
    bc = BehaviourCloning(3, 2, loss=kind, hidden=8)
    data = transition_batch()
    got = bc.loss(data["obs"], data["action"]).item()
    out = bc.policy(data["obs"]).detach()
    total = 0.0
    for i in range(6):
        for j in range(2):
            mu = math.tanh(float(out[i, j]))
            a = float(data["action"][i, j])
            if kind == "mse":
                total += (mu - a) ** 2
            else:
                ls = min(max(float(out[i, 2 + j]), -5.0), 2.0)
                total += 0.5 * ((a - mu) / math.exp(ls)) ** 2 + ls + 0.5 * math.log(2 * math.pi)
    assert math.isclose(got, total / 6, rel_tol=1e-5)


def test_td3bc_target_and_actor_loss_match_hand_computation():
    torch.manual_seed(0)
    agent = TD3BC(3, 2, TD3BCConfig(hidden=8, gamma=0.9, alpha=2.5))
    data = transition_batch(1)
    torch.manual_seed(3)
    got = agent.td_target(data["reward"], data["next_obs"], data["terminal"])
    torch.manual_seed(3)
    with torch.no_grad():
        a = agent.target_actor.target(data["next_obs"])
        a = (a + (torch.randn_like(a) * 0.2).clamp(-0.5, 0.5)).clamp(-1, 1)
        x = torch.cat([data["next_obs"], a], -1)
        tq = agent.target_critic.target
        q = torch.min(tq.q1(x), tq.q2(x)).squeeze(-1)
    torch.testing.assert_close(got, data["reward"] + 0.9 * (1 - data["terminal"]) * q)

    loss = agent.actor_loss(data["obs"], data["action"]).item()
    with torch.no_grad():
        pi = agent.actor(data["obs"])
        q1 = agent.critic.q1(torch.cat([data["obs"], pi], -1)).squeeze(-1)
        lam = 2.5 / q1.abs().mean()
        want = -lam * q1.mean() + ((pi - data["action"]) ** 2).mean()
    assert math.isclose(loss, want.item(), rel_tol=1e-5)


@pytest.mark.parametrize("cls", [BehaviourCloning, TD3BC])
@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_encoder_is_bit_identical(cls, freeze):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
    agent = cls(3, 2, encoder=enc, feature_dim=5, freeze_encoder=freeze)
    before = [p.detach().clone() for p in enc.parameters()]
    for i in range(4):
        agent.update(transition_batch(i))
    same = all(torch.equal(a, b) for a, b in zip(before, enc.parameters(), strict=True))
    assert same == freeze


def test_normaliser_is_applied_before_the_encoder():
    agent = BehaviourCloning(2, 1, hidden=4)
    agent.set_obs_normaliser(torch.tensor([1.0, -2.0]), torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(
        agent.features(torch.tensor([[3.0, -1.0]])), torch.tensor([[1.0, 2.0]])
    )


def test_collect_episodes_bookkeeping():
    pytest.importorskip("gymnasium")
    from seqrep.rl.collect import collect_episodes

    rng = np.random.default_rng(0)
    data = collect_episodes("Pendulum-v1", lambda o: rng.uniform(-1, 1, 1), 450, seed=4)
    assert len(data) == 450 and data.num_episodes == 3  # 200 + 200 + a cut 50
    assert data.episode_lengths.tolist() == [200, 200, 50]
    assert data.timeouts.sum() == 3 and not data.terminals.any()
    # Within an episode the next observation is the following observation.
    ep = data.episode(0)
    np.testing.assert_array_equal(ep["next_observations"][:-1], ep["observations"][1:])


def test_cli_sac_collect_bc_offline_rl(tmp_path, monkeypatch, capsys):
    pytest.importorskip("minari")
    from seqrep.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    sac = tmp_path / "sac"
    main(
        [
            "sac",
            "--total-steps",
            "400",
            "--learning-starts",
            "200",
            "--eval-every",
            "400",
            "--eval-episodes",
            "1",
            "--hidden",
            "16",
            "--batch-size",
            "32",
            "--out",
            str(sac),
            "--quiet",
        ]
    )
    assert (sac / "returns.png").exists() and (sac / "report.md").exists()
    main(
        [
            "collect",
            "--policy",
            str(sac),
            "--steps",
            "400",
            "--noise",
            "0.1",
            "--dataset-id",
            "seqrep/pendulum/test-v0",
        ]
    )
    assert "seqrep/pendulum/test-v0: 2 episodes, 400 steps" in capsys.readouterr().out
    for verb in ("bc", "offline-rl"):
        out = tmp_path / verb
        main(
            [
                verb,
                "--data",
                "seqrep/pendulum/test-v0",
                "--steps",
                "50",
                "--log-every",
                "25",
                "--eval-episodes",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        assert "return" in capsys.readouterr().out
        for name in (
            "config.json",
            "metrics.jsonl",
            "results.json",
            "report.md",
            "checkpoints/last.pt",
        ):
            assert (out / name).exists(), (verb, name)

    with pytest.raises(SystemExit) as exc:
        main(["bc", "--data", "seqrep/nothing/here-v0", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "cannot load Minari data set" in capsys.readouterr().err
    # Every policy run collects (a bc run here), in the environment it was trained in.
    main(
        ["collect", "--policy", str(tmp_path / "bc"), "--steps", "200", "--dataset-id", "a/b/c-v0"]
    )
    assert "a/b/c-v0: 1 episodes, 200 steps" in capsys.readouterr().out


def test_normalized_score_closed_forms():
    from seqrep.rl.scores import normalized_score

    assert normalized_score(-280.178953, "halfcheetah-medium-replay-v2") == pytest.approx(0.0)
    assert normalized_score(3234.3, "hopper") == pytest.approx(100.0)
    assert normalized_score((1.629008 + 4592.3) / 2, "walker2d-expert-v2") == pytest.approx(50.0)
    assert normalized_score(-150.0, reference=(-1100.0, -150.0)) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="no D4RL reference"):
        normalized_score(1.0, "pendulum")


def test_td3bc_bootstraps_through_the_ema_target_encoder():
    torch.manual_seed(0)
    agent = TD3BC(3, 2, encoder=nn.Linear(3, 4), feature_dim=4)
    batch = {
        "reward": torch.randn(5),
        "next_obs": torch.randn(5, 3),
        "terminal": torch.zeros(5),
    }
    torch.manual_seed(1)
    before = agent.td_target(batch["reward"], batch["next_obs"], batch["terminal"])
    with torch.no_grad():
        agent.encoder.weight.add_(1.0)  # the online encoder moves; the target copy must not
    torch.manual_seed(1)
    after = agent.td_target(batch["reward"], batch["next_obs"], batch["terminal"])
    torch.testing.assert_close(before, after)
    agent.target_encoder.update(agent.encoder, tau=1.0)
    torch.manual_seed(1)
    moved = agent.td_target(batch["reward"], batch["next_obs"], batch["terminal"])
    assert not torch.allclose(before, moved)


def _offline_cli(data, out, steps="600", *more):
    args = ["--data", str(data), "--env", "Pendulum-v1", "--steps", steps, "--log-every", "50"]
    args += list(more)
    args += ["--eval-every", "300", "--eval-episodes", "1", "--checkpoint-every", "100"]
    args += ["--batch-size", "64", "--out", str(out), "--quiet"]
    return [sys.executable, "-c", "from seqrep.cli import main; main()", "offline-rl", *args]


@pytest.mark.long
def test_offline_rl_resume_after_sigkill_matches_uninterrupted_run(tmp_path, kill_mid_run):
    pytest.importorskip("gymnasium")
    from seqrep.data.trajectories import save_d4rl_hdf5
    from seqrep.rl.collect import collect_episodes
    from seqrep.rl.zoo import uniform_random_policy

    data = tmp_path / "pendulum-random.hdf5"
    save_d4rl_hdf5(collect_episodes("Pendulum-v1", uniform_random_policy(1, 0), 2000, 0), data)
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_offline_cli(data, full), check=True, capture_output=True, timeout=300)
    board = ("600", "--tensorboard")
    kill_mid_run(_offline_cli(data, cut, *board), (cut / "checkpoints" / "last.pt").exists)
    ckpt = torch.load(cut / "checkpoints" / "last.pt", weights_only=False)
    assert 0 < ckpt["step"] < 600, "the kill must land mid-run"
    subprocess.run(_offline_cli(data, cut, *board), check=True, capture_output=True, timeout=300)

    def records(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    a, b = records(full), records(cut)
    # Every logged loss and evaluation, in order, as if the run had never been interrupted.
    assert [r["step"] for r in a] == [r["step"] for r in b]
    assert [r for r in a if "eval_return_mean" in r][-1]["step"] == 600
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert math.isclose(ra[k], rb[k], rel_tol=1e-6, abs_tol=1e-9), (k, ra, rb)
    report = (cut / "report.md").read_text()
    assert "| 300 |" in report and "| 600 |" in report and (cut / "returns.png").exists()
    # TensorBoard, across the kill, shows what metrics.jsonl holds, once per step.
    from test_tensorboard import metrics_as_scalars, read_events

    scalars, images = read_events(cut / "tensorboard")
    assert scalars == metrics_as_scalars(cut, "step")
    assert "figures/returns" in images


def test_rerun_without_checkpoint_starts_the_metrics_afresh(tmp_path):
    pytest.importorskip("gymnasium")
    from seqrep.loops.offline import train_offline
    from seqrep.loops.runs import Prepared, RunDir
    from seqrep.rl.collect import collect_episodes
    from seqrep.rl.zoo import uniform_random_policy

    data = collect_episodes("Pendulum-v1", uniform_random_policy(1, 0), 400, 0)
    run = RunDir.open(tmp_path / "run", Prepared("bc", {"steps": 20}))
    run.log({"step": 10, "bc_loss": 1.0})  # left by an attempt killed before its checkpoint
    agent = BehaviourCloning(data.obs_dim, data.act_dim, hidden=16)
    train_offline(agent, data, 20, batch_size=32, run=run, log_every=10)
    steps = [r["step"] for r in run.read_metrics()]
    assert steps == [10, 20]
    assert run.read_metrics()[0]["bc_loss"] != 1.0


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    """SAC's squashed Gaussian log-density of given actions equals torch.distributions'
    TanhTransform of a Normal (an independent implementation), float64."""
    from torch.distributions import Normal, TransformedDistribution
    from torch.distributions.transforms import TanhTransform

    from seqrep.rl.sac import SquashedGaussianActor

    torch.manual_seed(0)
    actor = SquashedGaussianActor(5, 3, 16).double()
    feats = torch.randn(7, 5, dtype=torch.float64)
    action = torch.rand(7, 3, dtype=torch.float64) * 1.8 - 0.9
    mean, log_std = actor.gaussian(feats)
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    want = reference.log_prob(action).sum(-1)
    assert torch.allclose(actor.log_prob(feats, action), want, atol=1e-9)


def test_tanh_gaussian_bc_fits_the_expert_and_tunes_its_entropy():
    """BC with the tanh-Gaussian likelihood and learned entropy bonus: the mean action moves to
    the expert's (a fixed, deterministic policy, whose likelihood alone would shrink sigma
    without bound), and the learned weight holds the entropy near the target -|A|."""
    from seqrep.rl.offline import BehaviourCloning

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 2, generator=g) * 0.5
    bc = BehaviourCloning(4, 2, loss="tanh_gaussian", lr=3e-3)
    before = None
    for _ in range(600):
        obs = torch.randn(128, 4, generator=g)
        metrics = bc.update({"obs": obs, "action": torch.tanh(obs @ w)})
        before = before or metrics
    obs = torch.randn(512, 4, generator=g)
    error = (bc.act(obs) - torch.tanh(obs @ w)).abs().mean().item()
    assert error < 0.1, error
    assert metrics["bc_loss"] < before["bc_loss"] - 2.0
    assert abs(metrics["entropy"] - (-2.0)) < 0.75, metrics
