"""SAC against hand computations; frozen / fine-tuned encoders; resume after SIGKILL; Pendulum."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("gymnasium")

from seqrep.rl.envs import evaluate_policy
from seqrep.rl.sac import SAC, SACConfig
from transitions import transition_batch


def test_td_target_matches_hand_computation():
    torch.manual_seed(0)
    agent = SAC(3, 2, SACConfig(hidden=8, init_alpha=0.3, gamma=0.9))
    batch = transition_batch()
    torch.manual_seed(7)
    got = agent.td_target(batch["reward"], batch["next_obs"], batch["terminal"])

    # By hand: the actor's Gaussian, the same noise, the textbook tanh log-density.
    torch.manual_seed(7)
    with torch.no_grad():
        out = agent.actor.net(batch["next_obs"])
        mean, raw = out.chunk(2, dim=-1)
        log_std = -5 + 0.5 * 7 * (torch.tanh(raw) + 1)
        u = mean + log_std.exp() * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
        logp -= torch.log(1 - a.pow(2) + 1e-12).sum(-1)
        q_in = torch.cat([batch["next_obs"], a], -1)
        tq = agent.target_critic.target
        soft_v = torch.min(tq.q1(q_in), tq.q2(q_in)).squeeze(-1) - 0.3 * logp
    want = batch["reward"] + 0.9 * (1 - batch["terminal"]) * soft_v
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # Terminal transitions are exactly the reward.
    torch.testing.assert_close(got[batch["terminal"] == 1], batch["reward"][batch["terminal"] == 1])


def test_temperature_gradient_matches_closed_form():
    agent = SAC(3, 2, SACConfig(hidden=8, init_alpha=0.5))
    log_prob = torch.tensor([-1.0, 0.5, 2.0])
    agent.alpha_loss(log_prob).backward()
    # d/d(log a) of -(a (logp + H)).mean() = -a * mean(logp + H), H = -|A| = -2.
    want = -0.5 * float((log_prob + -2.0).mean())
    assert math.isclose(agent.log_alpha.grad.item(), want, rel_tol=1e-6)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("freeze", [False, True])
def test_every_parameter_learns_and_frozen_means_frozen(freeze):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(3, 6), nn.Tanh())
    agent = SAC(
        3,
        2,
        SACConfig(hidden=8, policy_frequency=2),
        encoder=encoder,
        feature_dim=6,
        freeze_encoder=freeze,
    )
    before = snapshot(agent)
    grads: dict[str, bool] = {}
    for i in range(2):  # the actor and temperature update on the second step
        agent.update(transition_batch(seed=i))
        for name, p in agent.named_parameters():
            grads[name] = grads.get(name, False) or (
                p.grad is not None and bool(p.grad.abs().sum() > 0)
            )
    after = snapshot(agent)
    for key in before:
        if key in ("obs_mean", "obs_std"):  # set from data, not learned
            continue
        changed = not torch.equal(before[key], after[key])
        if key.startswith(("encoder.", "target_encoder.")):
            assert changed != freeze, key  # frozen: bit-identical; fine-tuned: changed
        else:
            assert changed, f"{key} did not change"
    for name, p in agent.named_parameters():
        if p.requires_grad:
            assert grads[name], f"{name} received no gradient"


def test_pendulum_sac_beats_random(pendulum_expert):
    _, trained, random_mean, _ = pendulum_expert
    # Random is about -1100 to -1300; a few thousand SAC steps reach a few hundred at worst.
    assert trained > random_mean + 400, (trained, random_mean)


def test_bc_on_ten_expert_episodes_is_near_the_expert(pendulum_expert):
    from seqrep.loops.offline import train_offline
    from seqrep.rl.collect import collect_episodes
    from seqrep.rl.offline import BehaviourCloning

    policy, expert, random_mean, _ = pendulum_expert  # deterministic actions
    data = collect_episodes("Pendulum-v1", policy.act, 2000, seed=500)
    assert data.num_episodes == 10
    torch.manual_seed(0)
    bc = BehaviourCloning(3, 1)
    train_offline(bc, data, 1500)
    returns = evaluate_policy(
        "Pendulum-v1",
        lambda o: bc.act(torch.as_tensor(o, dtype=torch.float32)[None])[0].numpy(),
        5,
        seed=10_000,
    )
    normalised = 100 * (returns.mean() - random_mean) / (expert - random_mean)
    assert normalised > 80, (returns.mean(), expert, random_mean)


def test_zoo_built_from_a_run_reproduces_its_recorded_returns(pendulum_expert, tmp_path):
    from seqrep.loops.zoo import build_zoo_entry
    from seqrep.rl.zoo import load_zoo_policy, zoo_index, zoo_reference

    *_, run_path = pendulum_expert
    entry = build_zoo_entry(run_path, episodes=3, candidates=2, ladder_size=2, root=tmp_path)
    assert zoo_index(tmp_path)["Pendulum-v1"] == entry
    pol = entry["policies"]
    # Stored in half precision, small, and the expert is the best measured candidate.
    state = torch.load(tmp_path / pol["expert"]["file"], weights_only=True)
    assert all(v.dtype == torch.float16 for v in state["actor"].values())
    assert pol["medium"]["step"] < pol["expert"]["step"]
    assert [pol[n]["step"] for n in entry["ladder"]] == sorted(
        pol[n]["step"] for n in entry["ladder"]
    )
    assert all(pol[n]["step"] < pol["medium"]["step"] for n in entry["ladder"])
    random_ret, expert_ret = zoo_reference("Pendulum-v1", tmp_path)
    assert expert_ret == pol["expert"]["return_mean"] > random_ret + 400
    # The recorded returns are those of the shipped (rounded) weights: re-measure them.
    for name in ("expert", "medium"):
        policy = load_zoo_policy("Pendulum-v1", name, seed=0, root=tmp_path)
        again = evaluate_policy("Pendulum-v1", policy, 3, seed=20_000)
        assert again.mean() == pytest.approx(pol[name]["return_mean"], abs=1e-6)
    # medium-replay draws one policy per episode from [random, ladder..., medium], and every
    # declared member is drawn (D4RL's medium-replay holds the run's policies up to medium).
    mix = load_zoo_policy("Pendulum-v1", "medium-replay", seed=1, root=tmp_path)
    assert len(mix.policies) == len(entry["ladder"]) + 2
    picked = set()
    for e in range(60):
        mix.start_episode(e)
        picked.add(id(mix.current))
    assert picked == {id(p) for p in mix.policies}
    for member, name in zip(mix.policies[1:], [*entry["ladder"], "medium"], strict=True):
        stored = torch.load(tmp_path / pol[name]["file"], weights_only=True)["actor"]
        for k, v in member.actor.state_dict().items():
            assert torch.equal(v, stored[k].float()), (name, k)
    with pytest.raises(ValueError, match="no policies for 'Hopper-v5'"):
        load_zoo_policy("Hopper-v5", "expert", root=tmp_path)
    with pytest.raises(ValueError, match="unknown zoo level"):
        load_zoo_policy("Pendulum-v1", "novice", root=tmp_path)


def _cli(out, extra=()):
    args = [
        "--total-steps",
        "800",
        "--learning-starts",
        "200",
        "--eval-every",
        "800",
        "--eval-episodes",
        "2",
        "--checkpoint-every",
        "200",
        "--hidden",
        "32",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]
    return [sys.executable, "-c", "from seqrep.cli import main; main()", "sac", *args]


def _episodes(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if '"episode"' in x]


@pytest.mark.long
def test_sac_resume_after_sigkill_matches_uninterrupted_run(tmp_path, kill_mid_run):
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_cli(full), check=True, capture_output=True, timeout=300)
    kill_mid_run(_cli(cut), (cut / "checkpoints" / "last.pt").exists)  # a real kill, mid-run
    subprocess.run(_cli(cut), check=True, capture_output=True, timeout=300)  # resume
    a, b = _episodes(full), _episodes(cut)
    assert [r["episode"] for r in a] == [r["episode"] for r in b] == [0, 1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        assert math.isclose(ra["return"], rb["return"], rel_tol=1e-6), (ra, rb)


def test_cli_collects_medium_replay_from_the_zoo(pendulum_zoo, tmp_path, monkeypatch, capsys):
    from seqrep.cli import main
    from seqrep.data.trajectories import load_minari
    from seqrep.rl.zoo import zoo_reference

    monkeypatch.setenv("SEQREP_ZOO", str(pendulum_zoo))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    args = ["--env", "Pendulum-v1", "--steps", "4000", "--seed", "3"]
    main(["collect", "--policy", "medium-replay", *args, "--dataset-id", "seqrep/pd/mr-v0"])
    main(["collect", "--policy", "expert", *args, "--dataset-id", "seqrep/pd/expert-v0"])
    assert "seqrep/pd/mr-v0: 20 episodes, 4000 steps" in capsys.readouterr().out
    mixed = load_minari("seqrep/pd/mr-v0").episode_returns()
    expert = load_minari("seqrep/pd/expert-v0").episode_returns()
    random_ret, expert_ret = zoo_reference("Pendulum-v1", pendulum_zoo)
    # A mixture of random-to-medium policies: spread out, and below what the expert collects.
    assert mixed.std() > 100 and random_ret - 300 < mixed.mean() < expert.mean() - 100
    assert abs(expert.mean() - expert_ret) < 150
    with pytest.raises(SystemExit):
        main(["collect", "--policy", "expert", "--env", "Hopper-v5", "--dataset-id", "x/y/z-v0"])


def test_cached_zoo_data_is_reused_only_when_todays_zoo_would_collect_it(
    pendulum_zoo, tmp_path, monkeypatch
):
    import h5py

    from seqrep.rl.collect import zoo_dataset
    from seqrep.rl.zoo import zoo_index, zoo_recipe

    monkeypatch.setenv("SEQREP_ZOO", str(pendulum_zoo))
    entry = zoo_index()["Pendulum-v1"]
    steps = [entry["policies"][n]["step"] for n in (*entry["ladder"], "medium")]
    names = [*entry["ladder"], "medium"]
    assert zoo_recipe("Pendulum-v1", "medium-replay") == "; ".join(
        ["random"] + [f"{n}@{s}" for n, s in zip(names, steps, strict=True)]
    )
    first = zoo_dataset("Pendulum-v1", "medium-replay", tmp_path, steps=400, seed=2)
    path = tmp_path / "Pendulum-v1-medium-replay-400-s2.hdf5"
    again = zoo_dataset("Pendulum-v1", "medium-replay", tmp_path, steps=400, seed=2)
    np.testing.assert_array_equal(first.observations, again.observations)  # the cache, reused
    # A collection by another mixture (here: one from before the medium policy was a member,
    # which recorded no recipe) is refused with what to do, and left in place.
    with h5py.File(path, "a") as f:
        del f.attrs["recipe"]
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"recorded: none, collected before .* today: random; "):
        zoo_dataset("Pendulum-v1", "medium-replay", tmp_path, steps=400, seed=2)
    assert path.read_bytes() == before
    with h5py.File(path, "a") as f:
        f.attrs["recipe"] = "random; medium@1"
    with pytest.raises(ValueError, match="move the file away or pass another data folder"):
        zoo_dataset("Pendulum-v1", "medium-replay", tmp_path, steps=400, seed=2)
    # A single policy's data from before recipes were recorded is still what it was.
    expert = zoo_dataset("Pendulum-v1", "expert", tmp_path, episodes=1)
    with h5py.File(tmp_path / "Pendulum-v1-expert-1ep-s0.hdf5", "a") as f:
        del f.attrs["recipe"]
    np.testing.assert_array_equal(
        zoo_dataset("Pendulum-v1", "expert", tmp_path, episodes=1).actions, expert.actions
    )
    (tmp_path / "Pendulum-v1-expert-1ep-s0.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"cannot be read .* delete it to collect it again"):
        zoo_dataset("Pendulum-v1", "expert", tmp_path, episodes=1)


def test_replay_buffer_dataset_replays_exactly_in_the_environment(pendulum_expert):
    """The run's first 1000 steps, re-simulated: every episode starts at the reset the run
    used (seed + e), and each stored action reproduces the stored reward and next state."""
    import numpy as np

    from seqrep.loops.sac import replay_buffer_dataset
    from seqrep.rl.envs import make_env

    data, env_id = replay_buffer_dataset(pendulum_expert[3], 1000)
    assert env_id == "Pendulum-v1"
    assert data.episode_starts.tolist() == [0, 200, 400, 600, 800, 1000]
    assert data.timeouts.sum() == 5 and not data.terminals.any()
    env = make_env(env_id)
    for e in range(data.num_episodes):
        ep = data.episode(e)
        obs, _ = env.reset(seed=e)
        np.testing.assert_array_equal(ep["observations"][0], obs)
        for t in range(len(ep["rewards"])):
            nxt, reward, *_ = env.step(ep["actions"][t])
            np.testing.assert_allclose(ep["next_observations"][t], nxt, rtol=1e-6)
            assert ep["rewards"][t] == pytest.approx(reward, rel=1e-5)
    env.close()
    with pytest.raises(ValueError, match="steps must be in"):
        replay_buffer_dataset(pendulum_expert[3], 10**6)


def test_replay_buffer_dataset_splits_at_terminals_and_resets(tmp_path):
    """A hand-made buffer: a terminal at step 2, a reset (next_obs != following obs) after
    step 6, and a cut at step 9 give exactly three episodes with the expected end flags."""
    import numpy as np

    from seqrep.loops.runs import Prepared, RunDir
    from seqrep.loops.sac import SACRunConfig, replay_buffer_dataset
    from seqrep.rl.replay import ReplayBuffer

    buf = ReplayBuffer(10, 1, 1)
    obs, resets_after = 0.0, {6}
    for t in range(10):
        terminal = t == 2
        nxt = obs + 1.0
        buf.add(np.array([obs]), np.array([t / 10]), float(t), np.array([nxt]), terminal)
        obs = 100.0 * (t + 1) if terminal or t in resets_after else nxt
    run = RunDir.open(tmp_path / "run", Prepared("sac", SACRunConfig(total_steps=10)))
    run.save_checkpoint({"buffer": buf.state_dict(), "step": 10})
    data = replay_buffer_dataset(run.path)[0]
    assert data.episode_starts.tolist() == [0, 3, 7, 10]
    assert np.flatnonzero(data.terminals).tolist() == [2]
    assert np.flatnonzero(data.timeouts).tolist() == [6, 9]
    np.testing.assert_array_equal(data.rewards, np.arange(10))
    assert replay_buffer_dataset(run.path, 5)[0].episode_starts.tolist() == [0, 3, 5]
    run.save_checkpoint({"buffer": buf.state_dict(), "step": 25})  # a wrapped ring buffer
    with pytest.raises(ValueError, match="overwritten"):
        replay_buffer_dataset(run.path)


def test_cli_exports_a_sac_runs_replay_buffer(pendulum_expert, tmp_path, monkeypatch, capsys):
    from seqrep.cli import main
    from seqrep.data.trajectories import load_minari
    from seqrep.loops.sac import replay_buffer_dataset

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    run = str(pendulum_expert[3])
    main(
        [
            "collect",
            "--policy",
            run,
            "--from-replay",
            "--steps",
            "600",
            "--dataset-id",
            "seqrep/pd/replay-v0",
        ]
    )
    assert "seqrep/pd/replay-v0: 3 episodes, 600 steps" in capsys.readouterr().out
    loaded, direct = load_minari("seqrep/pd/replay-v0"), replay_buffer_dataset(run, 600)[0]
    for name in ("observations", "actions", "rewards", "next_observations", "timeouts"):
        assert (getattr(loaded, name) == getattr(direct, name)).all(), name
    with pytest.raises(SystemExit):
        main(["collect", "--policy", "expert", "--from-replay", "--dataset-id", "seqrep/pd/x-v0"])
    for extra in (["--noise", "0.1"], ["--seed", "3"], ["--env", "Hopper-v5"]):
        with pytest.raises(SystemExit):
            main(["collect", "--policy", run, "--from-replay", "--dataset-id", "xx/yy-v0", *extra])
        assert f"{extra[0]} cannot apply with --from-replay" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a run's policy only acts in the run's environment
        main(["collect", "--policy", run, "--env", "Hopper-v5", "--dataset-id", "xx/yy-v0"])
    assert "differs from the environment" in capsys.readouterr().err


def test_hidden_dimensions_are_zero_and_redrawn_every_step_reproducibly():
    """--hide-dims 1: exactly one coordinate reads 0 at each step, not always the same one,
    the rest is the true observation, and a seeded reset replays the same draws."""
    from seqrep.rl.envs import make_env

    def rollout(hide: int) -> np.ndarray:
        env = make_env("Pendulum-v1", hide_dims=hide)
        obs, _ = env.reset(seed=3)
        out = [obs]
        for _ in range(30):
            obs, *_ = env.step(np.zeros(1, np.float32))
            out.append(obs)
        return np.asarray(out)

    full, hidden, again = rollout(0), rollout(1), rollout(1)
    zeroed = hidden == 0
    assert (zeroed.sum(1) == 1).all()
    assert len({int(np.flatnonzero(z)[0]) for z in zeroed}) > 1  # redrawn, not fixed
    assert np.array_equal(hidden[~zeroed], full[~zeroed])
    assert np.array_equal(hidden, again)
    with pytest.raises(ValueError, match="hide between 1 and 2"):
        make_env("Pendulum-v1", hide_dims=3)
