"""SAC from pixels with CURL: crops, the contrastive logits and loss, the gradient paths, the
frame replay, the DeepMind Control adapter, resume, and learning on a synthetic pixel task."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from seqrep.loops.runs import training_state
from seqrep.rl.augment import center_crop, random_crop, random_shift
from seqrep.rl.curl import PixelSAC, PixelSACConfig
from seqrep.rl.pixels import FrameReplay

SMALL = PixelSACConfig(crop_size=32, feature_dim=16, hidden=32, batch_size=16)


def _batch(b: int = 16, c: int = 9, size: int = 40, act: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randint(0, 256, (b, c, size, size), generator=g, dtype=torch.uint8),
        "next_obs": torch.randint(0, 256, (b, c, size, size), generator=g, dtype=torch.uint8),
        "action": torch.rand(b, act, generator=g) * 2 - 1,
        "reward": torch.rand(b, generator=g),
        "terminal": torch.zeros(b),
    }


# ------------------------------------------------------------------------------- crops
def test_random_crop_covers_every_offset_with_one_box_for_all_frames():
    h = w = 12
    size = 9
    # pixel value encodes its (row, col); every channel (stacked frame) holds the same grid
    grid = (torch.arange(h)[:, None] * 100 + torch.arange(w)[None, :]).to(torch.int32)
    x = grid.expand(4000, 6, h, w).contiguous()
    out = random_crop(x, size, torch.Generator().manual_seed(0))
    assert out.shape == (4000, 6, size, size)
    top, left = out[:, 0, 0, 0] // 100, out[:, 0, 0, 0] % 100
    # one box for all channels, and the window is the contiguous block at (top, left)
    assert torch.equal(out, out[:, :1].expand_as(out))
    expected = grid[None, :size, :size] + (top * 100 + left)[:, None, None]
    assert torch.equal(out[:, 0], expected)
    seen = set(zip(top.tolist(), left.tolist(), strict=True))
    assert seen == {(t, c) for t in range(h - size + 1) for c in range(w - size + 1)}


def test_center_crop_is_exact():
    x = torch.arange(2 * 3 * 100 * 100).reshape(2, 3, 100, 100)
    assert torch.equal(center_crop(x, 84), x[:, :, 8:92, 8:92])
    with pytest.raises(ValueError, match="exceeds the image"):
        center_crop(x, 101)


def test_random_shift_spans_exactly_four_pixels_each_way_with_replicated_borders():
    h = w = 12
    grid = (torch.arange(h)[:, None] * 100 + torch.arange(w)[None, :]).to(torch.int32)
    x = grid.expand(4000, 3, h, w).contiguous()
    out = random_shift(x, 4, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out, out[:, :1].expand_as(out))
    # The pixel at output (i, j) is input (clamp(i + dy), clamp(j + dx)), dy, dx in -4..4.
    rows = torch.arange(h)
    seen = set()
    for n in range(len(out)):
        top_left = int(out[n, 0, 6, 6])  # an interior pixel: never clamped by a shift of 4
        dy, dx = top_left // 100 - 6, top_left % 100 - 6
        expected = grid[(rows + dy).clamp(0, h - 1)][:, (rows + dx).clamp(0, w - 1)]
        assert torch.equal(out[n, 0], expected)
        seen.add((dy, dx))
    assert seen == {(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)}


# ------------------------------------------------------------------------------- CURL loss
def test_curl_logits_and_loss_match_a_float64_hand_loop():
    torch.manual_seed(0)
    agent = PixelSAC((9, 40, 40), 2, SMALL)
    q, k = torch.randn(8, 16), torch.randn(8, 16)
    W = agent.W.weight.detach().double()
    from seqrep.losses import info_nce_result

    res = info_nce_result(q, k, similarity=agent.W)  # what update() scores CURL with
    logits = res.logits.double()
    logits = logits - logits.max(dim=1, keepdim=True).values  # CURL's max subtraction
    hand = torch.zeros(8, 8, dtype=torch.float64)
    for i in range(8):
        for j in range(8):
            hand[i, j] = sum(
                q[i, a].double() * W[a, b] * k[j, b].double() for a in range(16) for b in range(16)
            )
        hand[i] -= hand[i].max()
    assert torch.allclose(logits, hand, atol=1e-4)
    # the loss: cross-entropy of each query's own key (the diagonal)
    loss = res.loss.double()
    ce = -sum(hand[i, i] - math.log(sum(math.exp(v) for v in hand[i].tolist())) for i in range(8))
    assert abs(loss.item() - ce / 8) < 1e-4


def test_key_path_has_no_gradient_and_ema_is_tau_mix():
    torch.manual_seed(0)
    agent = PixelSAC((9, 40, 40), 2, SMALL)
    assert all(not p.requires_grad for p in agent.target_encoder.parameters())
    online0 = [p.detach().clone() for p in agent.encoder.parameters()]
    target0 = [p.detach().clone() for p in agent.target_encoder.target.parameters()]
    agent.update(_batch())  # update 1: critic + CURL only (targets move every 2 updates)
    assert all(
        torch.equal(a, b)
        for a, b in zip(target0, agent.target_encoder.target.parameters(), strict=True)
    )
    online1 = [p.detach().clone() for p in agent.encoder.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(online0, online1, strict=True))
    target1 = [p.detach().clone() for p in agent.target_encoder.target.parameters()]
    agent.update(_batch(seed=1))  # update 2: actor, alpha, then EMA with the updated online
    tau = SMALL.encoder_tau
    online2 = list(agent.encoder.parameters())
    for t1, o2, t2 in zip(target1, online2, agent.target_encoder.target.parameters(), strict=True):
        assert torch.allclose(t2, tau * o2.detach() + (1 - tau) * t1, atol=1e-6)


def test_actor_update_leaves_the_conv_weights_unchanged():
    """update() on an actor step, with the critic's optimiser frozen (lr 0): whatever still
    moves the conv layers can only be the actor's loss, and nothing may."""
    torch.manual_seed(0)
    agent = PixelSAC((9, 40, 40), 2, SMALL)
    for group in agent.critic_opt.param_groups:
        group["lr"] = 0.0
    agent.update(_batch())
    conv = copy.deepcopy(agent.encoder.trunk.state_dict())
    actor_head = copy.deepcopy(agent.actor_head.state_dict())
    metrics = agent.update(_batch(seed=1))  # the second update runs the actor step
    assert "actor_loss" in metrics
    for k, v in agent.encoder.trunk.state_dict().items():
        assert torch.equal(v, conv[k]), k
    assert any(not torch.equal(v, actor_head[k]) for k, v in agent.actor_head.state_dict().items())


def test_actor_step_skips_the_critics_weight_gradients_and_nothing_else(monkeypatch):
    """The actor's loss reaches the critic only for dQ/da: the update with the critic's weight
    gradients switched off during the actor step matches, to the bit, the plain autograd one
    (a copy with the switch a no-op), and leaves on the critic only its own step's gradients."""
    import contextlib

    import seqrep.rl.curl as curl_module

    torch.manual_seed(0)
    agent = PixelSAC((9, 40, 40), 2, SMALL)
    agent.update(_batch())
    plain = copy.deepcopy(agent)
    agent.update(_batch(seed=1))  # the second update runs the actor step
    critic_grads = {n: p.grad.clone() for n, p in agent.critic.named_parameters()}
    monkeypatch.setattr(curl_module, "without_parameter_grads", lambda *m: contextlib.nullcontext())
    plain.update(_batch(seed=1))
    for (n, a), b in zip(agent.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    # Plain autograd adds the actor's share there (to the Q net that is the minimum).
    assert any(not torch.equal(p.grad, critic_grads[n]) for n, p in plain.critic.named_parameters())
    assert all(p.requires_grad for p in agent.critic.parameters())


def test_authors_update_steps_the_encoder_twice_with_the_curl_gradient():
    """curl_update="authors" on the first update (no actor or target step yet), with the
    critic's optimiser frozen (lr 0): the encoder moves by two first Adam steps on CURL's
    gradient (their encoder and CURL optimisers both hold it, MishaLaskin/curl#28), W by one,
    and the Q heads not at all; the joint update leaves W out of every optimiser but one."""
    torch.manual_seed(0)
    cfg = PixelSACConfig(**{**SMALL.__dict__, "curl_update": "authors"})
    agent = PixelSAC((9, 40, 40), 2, cfg)
    for group in agent.critic_opt.param_groups:
        group["lr"] = 0.0
    assert not any(p is agent.W.weight for g in agent.critic_opt.param_groups for p in g["params"])
    enc0 = [p.detach().clone() for p in agent.encoder.parameters()]
    w0 = [p.detach().clone() for p in agent.W.parameters()]
    q0 = copy.deepcopy(agent.critic.state_dict())
    metrics = agent.update(_batch())
    assert {"curl_loss", "curl_accuracy", "critic_loss"} <= set(metrics)
    lr, eps = cfg.lr, 1e-8  # Adam's first step: lr * g / (|g| + eps), bias-corrected
    for p0, p in zip(enc0, agent.encoder.parameters(), strict=True):
        g = p.grad  # CURL's gradient: the last backward, left in place after the steps
        assert g is not None
        assert torch.allclose(p.detach(), p0 - 2 * lr * g / (g.abs() + eps), atol=1e-6)
    for p0, p in zip(w0, agent.W.parameters(), strict=True):
        assert p.grad is not None
        assert torch.allclose(p.detach(), p0 - lr * p.grad / (p.grad.abs() + eps), atol=1e-6)
    for k, v in agent.critic.state_dict().items():
        assert torch.equal(v, q0[k]), k
    state_names = set(training_state(agent))
    assert {"curl_opt", "curl_encoder_opt", "critic_opt"} <= state_names
    joint = PixelSAC((9, 40, 40), 2, SMALL)
    assert not hasattr(joint, "curl_opt")
    assert any(p is joint.W.weight for g in joint.critic_opt.param_groups for p in g["params"])
    with pytest.raises(ValueError, match="unknown --curl-update"):
        PixelSACConfig(curl_update="both").validate()


def test_authors_mlp_init_and_log_std_bound():
    """--mlp-init orthogonal: every actor and critic Linear is orthogonal (W W^T = I on its
    smaller side) with zero bias, and the target critic starts as its copy; --log-std-min -10
    lets the actor's log-std reach -10 (the default stops at CleanRL's -5)."""
    torch.manual_seed(0)
    cfg = PixelSACConfig(**{**SMALL.__dict__, "mlp_init": "orthogonal", "log_std_min": -10.0})
    agent = PixelSAC((9, 40, 40), 2, cfg)
    linears = [m for net in (agent.actor, agent.critic) for m in net.modules()]
    linears = [m for m in linears if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 9  # 3 in the actor, 3 in each Q
    for m in linears:
        w = m.weight.detach().double()
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(len(gram), dtype=torch.float64), atol=1e-5)
        assert torch.count_nonzero(m.bias) == 0
    for k, v in agent.critic.state_dict().items():
        assert torch.equal(v, agent.target_critic.target.state_dict()[k]), k
    default = PixelSAC((9, 40, 40), 2, SMALL)
    assert torch.count_nonzero(default.critic.q1[0].bias) > 0  # PyTorch's init: biases drawn
    for actor, lowest in ((agent.actor, -10.0), (default.actor, -5.0)):
        last = [m for m in actor.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.bias.fill_(-1e4)  # saturate: the log-std sits at its lower bound
        _, log_std = actor.gaussian(torch.zeros(3, SMALL.feature_dim))
        assert torch.allclose(log_std, torch.full_like(log_std, lowest))
    with pytest.raises(ValueError, match="unknown --mlp-init"):
        PixelSACConfig(mlp_init="xavier").validate()
    with pytest.raises(ValueError, match="--log-std-min must be below"):
        PixelSACConfig(log_std_min=3.0).validate()


def test_variants_and_bad_options():
    for aux, augment in (
        ("curl", "crop"),
        ("none", "crop"),
        ("none", "none"),
        ("curl", "gaussian"),
    ):
        cfg = PixelSACConfig(**{**SMALL.__dict__, "aux": aux, "augment": augment})
        agent = PixelSAC((9, 40, 40), 2, cfg)
        metrics = agent.update(_batch())
        assert ("curl_loss" in metrics) == (aux == "curl")
        assert np.isfinite(metrics["critic_loss"])
    with pytest.raises(ValueError, match="two different views"):
        PixelSACConfig(aux="curl", augment="none").validate()
    with pytest.raises(ValueError, match="unknown --augment"):
        PixelSACConfig(augment="flip").validate()


def test_gaussian_positives_have_the_configured_noise():
    cfg = PixelSACConfig(**{**SMALL.__dict__, "augment": "gaussian", "noise_std": 0.1})
    agent = PixelSAC((9, 40, 40), 2, cfg)
    obs = torch.full((64, 9, 40, 40), 128, dtype=torch.uint8)
    a, b = agent.view(obs), agent.view(obs)
    assert abs((a - 128 / 255).std().item() - 0.1) < 0.005  # N(0, 0.1^2) on [0, 1] pixels
    assert abs((a - b).std().item() - 0.1 * math.sqrt(2)) < 0.005  # independent draws


# ------------------------------------------------------------------------------- replay
def _naive_episode(frames: list[np.ndarray], k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """CURL's frame stack by hand: observation t holds frames t-k+1..t, the reset frame
    repeated before the episode's start."""
    stacks = [
        np.concatenate([frames[max(0, t - j)] for j in range(k - 1, -1, -1)])
        for t in range(len(frames))
    ]
    return stacks[:-1], stacks[1:]


def test_frame_replay_rebuilds_stacks_exactly_and_never_across_episodes():
    rng = np.random.default_rng(0)
    k, lengths = 3, [5, 1, 7, 4]
    replay = FrameReplay(capacity=100, frame_shape=(3, 4, 4), act_dim=1, stack=k)
    expected_obs, expected_next = [], []
    for n in lengths:
        frames = [rng.integers(0, 256, (3, 4, 4), dtype=np.uint8) for _ in range(n + 1)]
        replay.start_episode(frames[0])
        for t in range(n):
            replay.add(np.zeros(1), float(t), frames[t + 1], terminal=False)
        o, nx = _naive_episode(frames, k)
        expected_obs += o
        expected_next += nx
    obs, nxt = replay.stacks(np.arange(replay.size))
    assert replay.size == sum(lengths)
    assert np.array_equal(obs, np.stack(expected_obs))
    assert np.array_equal(nxt, np.stack(expected_next))
    assert replay.frames_written == sum(lengths) + len(lengths)  # each frame stored once


def test_frame_replay_ring_keeps_stacks_right_after_wrapping():
    rng = np.random.default_rng(1)
    replay = FrameReplay(
        capacity=10, frame_shape=(3, 2, 2), act_dim=1, stack=3, min_episode_steps=4
    )
    all_obs, all_next = [], []
    for _ in range(6):  # 24 transitions through a ring of 10
        frames = [rng.integers(0, 256, (3, 2, 2), dtype=np.uint8) for _ in range(5)]
        replay.start_episode(frames[0])
        for t in range(4):
            replay.add(np.zeros(1), 0.0, frames[t + 1], terminal=False)
        o, nx = _naive_episode(frames, 3)
        all_obs += o
        all_next += nx
    assert replay.size == 10
    order = [(replay.pos + i) % 10 for i in range(10)]  # oldest first
    obs, nxt = replay.stacks(np.array(order))
    assert np.array_equal(obs, np.stack(all_obs[-10:]))
    assert np.array_equal(nxt, np.stack(all_next[-10:]))


def test_replay_state_roundtrip():
    rng = np.random.default_rng(2)
    replay = FrameReplay(capacity=20, frame_shape=(3, 2, 2), act_dim=1)
    replay.start_episode(rng.integers(0, 256, (3, 2, 2), dtype=np.uint8))
    for _ in range(6):
        replay.add(rng.normal(size=1), 1.0, rng.integers(0, 256, (3, 2, 2), dtype=np.uint8), False)
    copy_ = FrameReplay(capacity=20, frame_shape=(3, 2, 2), act_dim=1)
    copy_.load_state_dict(replay.state_dict())
    a = replay.sample(8, torch.Generator().manual_seed(0))
    b = copy_.sample(8, torch.Generator().manual_seed(0))
    assert all(torch.equal(a[key], b[key]) for key in a)


# ------------------------------------------------------------------------------- DMC adapter
@pytest.fixture(scope="module")
def dmc():
    pytest.importorskip("dm_control")
    from seqrep.rl.pixels import make_pixel_env

    env = make_pixel_env("cartpole-swingup", size=64)
    yield env
    env.close()


def test_dmc_pixels_frames_action_repeat_and_time_limit(dmc):
    import gymnasium as gym

    assert isinstance(dmc, gym.Env)
    first, _ = dmc.reset(seed=3)
    assert first.shape == (9, 64, 64) and first.dtype == np.uint8 and first.std() > 0
    # at a reset the first frame fills every slot
    assert np.array_equal(first[:3], first[3:6]) and np.array_equal(first[3:6], first[6:])
    # The same seed renders the same frame; a reference env stepped one simulator step at a
    # time gives the summed reward of one repeated step (CURL's repeat for cartpole: 8) and the
    # frame rendered after it.
    assert np.array_equal(dmc.reset(seed=3)[0], first)
    ref = gym.make(
        "dm_control/cartpole-swingup-v0",
        render_mode="rgb_array",
        render_kwargs={"height": 64, "width": 64, "camera_id": 0},
    )
    ref.reset(seed=3)
    action = np.array([0.3], np.float32)
    obs, reward, terminated, truncated, _ = dmc.step(action)
    total = sum(float(ref.step(action)[1]) for _ in range(8))
    assert reward == pytest.approx(total, rel=1e-12)
    assert np.array_equal(obs[6:], ref.render().transpose(2, 0, 1))
    assert np.array_equal(obs[:6], first[:6])  # older slots: the reset frame, then the new one
    # 1000 simulator steps: the episode ends by the time limit, as truncated, never terminated
    steps, done = 1, truncated
    while not done:
        _, _, terminated, truncated, _ = dmc.step(action)
        assert not terminated
        steps, done = steps + 1, truncated
    assert steps == 125 and truncated
    ref.close()


def test_the_replay_rebuilds_exactly_the_stacks_the_environment_showed():
    """The pixel environment's frame stacks (gymnasium's FrameStackObservation) and the
    replay's, rebuilt from one stored frame per step, agree over episode boundaries."""
    from seqrep.rl.pixels import TOY_TASK, make_pixel_env

    env = make_pixel_env(TOY_TASK, size=12, frame_stack=3)
    replay = FrameReplay(capacity=200, frame_shape=(3, 12, 12), act_dim=2, stack=3)
    rng = np.random.default_rng(0)
    seen_obs, seen_next = [], []
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        replay.start_episode(obs[-3:])
        done = False
        while not done:
            action = rng.uniform(-1, 1, 2).astype(np.float32)
            nxt, reward, terminated, truncated, _ = env.step(action)
            replay.add(action, reward, nxt[-3:], terminated)
            seen_obs.append(obs)
            seen_next.append(nxt)
            obs, done = nxt, terminated or truncated
    obs, nxt = replay.stacks(np.arange(replay.size))
    assert replay.size == 150
    assert np.array_equal(obs, np.stack(seen_obs)) and np.array_equal(nxt, np.stack(seen_next))


def test_unknown_task_is_a_clear_error():
    pytest.importorskip("dm_control")
    from seqrep.rl.pixels import make_pixel_env

    with pytest.raises(ValueError, match="unknown DeepMind Control task 'cartpole-fly'"):
        make_pixel_env("cartpole-fly")
    with pytest.raises(ValueError, match="is not DOMAIN-TASK"):
        make_pixel_env("cartpole")


# ------------------------------------------------------------------------------- the loop
TOY_ARGS = [
    "curl",
    "--task",
    "seqrep-dot",
    "--image-size",
    "40",
    "--crop-size",
    "32",
    "--batch-size",
    "32",
    "--hidden",
    "64",
    "--feature-dim",
    "16",
    "--quiet",
]


@pytest.mark.long
def test_resumed_run_gives_the_same_metrics(tmp_path, kill_mid_run):
    """Uninterrupted, killed (SIGKILL after a checkpoint) and resumed runs, each its own
    process with the same thread count (float sums depend on it), log identical metrics."""
    import os
    import subprocess
    import sys

    args = [*TOY_ARGS, "--env-steps", "300", "--init-steps", "60", "--eval-every", "150"]
    args += ["--eval-episodes", "2", "--log-every", "50", "--checkpoint-every", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(out):
        return [
            sys.executable,
            "-c",
            "from seqrep.cli import main; main()",
            *args,
            "--out",
            str(out),
        ]

    subprocess.run(
        command(tmp_path / "full"), env=env, check=True, capture_output=True, timeout=600
    )
    killed = tmp_path / "killed"

    def past_first_checkpoint() -> bool:
        lines = (
            (killed / "metrics.jsonl").read_text() if (killed / "metrics.jsonl").exists() else ""
        )
        return (killed / "checkpoints" / "last.pt").exists() and lines.count('"episode"') >= 3

    kill_mid_run(command(killed), past_first_checkpoint, env=env)
    subprocess.run(command(killed), env=env, check=True, capture_output=True, timeout=600)
    full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    drop = ("seconds", "update_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in again] == [
        {k: v for k, v in r.items() if k not in drop} for r in full
    ]
    for name in ("report.md", "returns.png", "views.png", "config.json"):
        assert (killed / name).exists(), name


@pytest.mark.long
def test_curl_learns_the_dot_task(tmp_path):
    """Pixels of a 2-d point: CURL's accuracy climbs far above chance (1/32) and the policy's
    return above the untrained one's."""
    from seqrep.cli import main

    out = tmp_path / "toy"
    main(
        [
            *TOY_ARGS,
            "--env-steps",
            "1000",
            "--init-steps",
            "250",
            "--eval-every",
            "500",
            "--eval-episodes",
            "4",
            "--log-every",
            "250",
            "--out",
            str(out),
        ]
    )
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval_return_mean"] for r in records if "eval_return_mean" in r]
    accuracy = [r["curl_accuracy"] for r in records if "curl_accuracy" in r]
    assert max(accuracy[-3:]) > 5 / 32, accuracy
    assert max(evals[1:]) > evals[0] + 5, evals  # random start: about 33 of at most 50


def test_bf16_autocast_tracks_the_float32_update():
    """--precision bf16 runs the convolutions in bfloat16; over a few updates from the same
    start, its losses stay within 2% of float32's, and the weights stay float32."""
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        agent = PixelSAC(
            (9, 40, 40), 2, PixelSACConfig(**{**SMALL.__dict__, "precision": precision})
        )
        runs[precision] = [agent.update(_batch(seed=i)) for i in range(4)]
        assert all(p.dtype == torch.float32 for p in agent.parameters())
    for a, b in zip(runs["fp32"], runs["bf16"], strict=True):
        for key in ("critic_loss", "curl_loss"):
            assert b[key] == pytest.approx(a[key], rel=0.02), key


def test_state_sac_reference_runs_on_the_dmc_state(tmp_path):
    """The bench's state-SAC reference: `seqrep sac` on a dm_control task's flattened state."""
    pytest.importorskip("dm_control")
    from seqrep.cli import main
    from seqrep.rl.envs import make_env

    env = make_env("dm_control/cartpole-swingup-v0", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,)  # position (3) and velocity (2), flattened from the named dict
    env.close()
    out = tmp_path / "state"
    main(
        [
            "sac",
            "--env",
            "dm_control/cartpole-swingup-v0",
            "--total-steps",
            "1100",
            "--learning-starts",
            "1000",
            "--eval-every",
            "1100",
            "--eval-episodes",
            "1",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if "eval_return_mean" in r] == [1100]


def test_bench_report_of_finished_and_unfinished_runs(tmp_path):
    """bench/curl.py report: mean and std over the finished seeds at the budget; runs still
    going show their latest evaluation; state SAC (first evaluation after step 0) gets '-'
    where it has none, instead of crashing the report."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    def write(name, records):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def pixel(returns, **extra):  # one evaluation every 50 env steps, from step 0
        return [
            {"env_step": 50 * i, "eval_return_mean": r, "seconds": float(i), **extra}
            for i, r in enumerate(returns)
        ]

    write("cartpole-swingup-curl-crop-s0", pixel([20.0, 100.0, 300.0]))
    write("cartpole-swingup-curl-crop-s1", pixel([30.0, 200.0, 800.0]))
    write("cartpole-swingup-none-crop-s0", pixel([25.0, 150.0, 310.0], device="cpu"))
    write("cartpole-swingup-none-crop-s1", pixel([35.0]))  # just started
    write("cartpole-swingup-state-s0", [{"step": 50, "eval_return_mean": 500.0, "seconds": 1.0}])
    write("cartpole-swingup-curl-crop-authors-s0", pixel([20.0, 200.0, 400.0]))
    write("cartpole-swingup-none-crop-authors-s0", pixel([20.0, 100.0, 250.0]))
    for variant, device in (("curl-crop", "cuda"), ("none-crop", "auto")):
        for seed in (0, 1):  # where each run ran, as its config says
            config = {"kind": "PixelRunConfig", "device": device, "batch_size": 128}
            (tmp_path / "runs" / f"cartpole-swingup-{variant}-s{seed}" / "config.json").write_text(
                json.dumps(config)
            )
    bench = Path(__file__).resolve().parents[1] / "bench" / "curl.py"
    done = subprocess.run(
        [sys.executable, str(bench), "report", "--runs", str(tmp_path / "runs"), "--seeds",
         "0,1", "--env-steps", "100", "--results", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["variant"]: r for r in json.loads((tmp_path / "out" / "curl.json").read_text())}
    curl = rows["curl-crop"]
    assert curl["mean_at_budget"] == 550.0 and curl["std_at_budget"] == 250.0  # 300 and 800
    assert rows["none-crop"]["finished_seeds"] == [0] and rows["none-crop"]["shared_step"] == 0
    assert rows["none-crop"]["mean_at_shared"] == 30.0  # 25 and 35 at step 0
    assert rows["state"]["mean_at_shared"] is None  # no state evaluation at step 0
    table = (tmp_path / "out" / "curl.md").read_text()
    assert "| 310, 35 (at 0) |" in table and "| - at 0 |" in table
    assert "| 300, 800 | cuda, batch 128 |" in table
    # --device auto: where the evaluations say it ran (seed 1's record predates that field)
    assert "| 310, 35 (at 0) | auto, batch 128; cpu, batch 128 |" in table
    # paired by seed, finished seeds of both only (seed 0): 300 - 310 at the budget; curve
    # means after step 0: (100 + 300) / 2 - (150 + 310) / 2
    assert (
        "| cartpole-swingup | CURL | crop-only SAC (RAD) | 1 | -10 ± 0 (-10) | 0 of 1 | "
        "-30 ± 0 (-30) |" in table
    )
    # and the same with the authors' details, its own pair: 400 - 250; 300 - 175
    authors = (
        "| cartpole-swingup | CURL, the authors' code details | crop-only SAC, the authors' code "
        "details | 1 | +150 ± 0 (+150) | 1 of 1 |"
    )
    assert authors + " +125 ± 0 (+125) |" in table
    assert (tmp_path / "out" / "curl_curves_cartpole-swingup.png").stat().st_size > 1000


# ------------------------------------------------------------------------------- DrQ
DRQ = PixelSACConfig(crop_size=32, feature_dim=16, hidden=32, batch_size=16, aux="none")


def test_drq_with_one_copy_each_is_crop_only_sac_on_the_same_draws():
    """K = M = 1 with the shift: each update equals crop-only SAC's on frames padded
    beforehand, whose random 32 x 32 crops are the same draws as the shift's."""
    import dataclasses

    torch.manual_seed(0)
    shift = PixelSAC((9, 32, 32), 2, dataclasses.replace(DRQ, augment="shift"), seed=3)
    torch.manual_seed(0)
    crop = PixelSAC((9, 40, 40), 2, dataclasses.replace(DRQ, augment="crop"), seed=3)
    pad = torch.nn.ReplicationPad2d(4)
    for step in range(4):  # two actor and target updates
        batch = _batch(size=32, seed=step)
        padded = {
            **batch,
            "obs": pad(batch["obs"].float()).to(torch.uint8),
            "next_obs": pad(batch["next_obs"].float()).to(torch.uint8),
        }
        assert shift.update(batch) == pytest.approx(crop.update(padded), rel=0, abs=0)
    for (name, a), b in zip(shift.state_dict().items(), crop.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_drq_target_is_the_mean_over_copies_computed_one_copy_at_a_time():
    torch.manual_seed(0)
    agent = PixelSAC((9, 32, 32), 2, dataclasses_replace(DRQ, augment="shift", drq_k=3))
    g = torch.Generator().manual_seed(1)
    k, b = 3, 5
    z_next = torch.randn(k * b, 16, generator=g)
    action = torch.rand(k * b, 2, generator=g) * 2 - 1
    log_prob = torch.randn(k * b, generator=g)
    reward, terminal = torch.randn(b, generator=g), torch.tensor([0.0, 1, 0, 0, 1])
    batched = agent.soft_target(z_next, action, log_prob, reward, terminal)
    one_at_a_time = []
    for c in range(k):
        rows = slice(c * b, (c + 1) * b)
        q1, q2 = agent.target_critic(z_next[rows], action[rows])
        v = torch.min(q1, q2) - agent.alpha * log_prob[rows]
        one_at_a_time.append(reward + agent.cfg.gamma * (1 - terminal) * v)
    torch.testing.assert_close(batched, torch.stack(one_at_a_time).mean(0))


def test_drq_critic_loss_is_the_mean_of_each_copys_loss():
    torch.manual_seed(0)
    agent = PixelSAC((9, 32, 32), 2, dataclasses_replace(DRQ, augment="shift", drq_m=2))
    g = torch.Generator().manual_seed(1)
    z, action, target = (
        torch.randn(10, 16, generator=g),
        torch.randn(5, 2, generator=g),
        torch.randn(5, generator=g),
    )
    loss, _ = agent.critic_loss(z, action, target)
    per_copy = []
    for rows in (slice(0, 5), slice(5, 10)):
        q1, q2 = agent.critic(z[rows], action)
        per_copy.append(((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean())
    torch.testing.assert_close(loss, torch.stack(per_copy).mean())


def test_drq_update_sees_k_and_m_distinct_views_and_composes_with_curl():
    """K = M = 2 with CURL: the critic's encoder sees 2B shifted views of the observations,
    the target encoder 2B of the next ones plus B keys, and every view differs from its twin."""
    torch.manual_seed(0)
    cfg = dataclasses_replace(DRQ, aux="curl", augment="shift", drq_k=2, drq_m=2)
    agent = PixelSAC((9, 32, 32), 2, cfg)
    seen: dict[str, list[torch.Tensor]] = {"online": [], "target": []}
    agent.encoder.trunk.register_forward_hook(lambda m, i, o: seen["online"].append(i[0]))
    agent.target_encoder.register_forward_hook(lambda m, i, o: seen["target"].append(i[0]))
    metrics = agent.update(_batch(size=32))
    assert "curl_accuracy" in metrics
    anchors, next_for_actor = seen["online"][:2]
    assert anchors.shape[0] == 32 and next_for_actor.shape[0] == 32
    assert seen["target"][0].shape[0] == 48  # 2 x 16 next views + 16 CURL keys
    assert not torch.equal(anchors[:16], anchors[16:])
    assert not torch.equal(next_for_actor[:16], next_for_actor[16:])


def test_drq_options_are_checked():
    with pytest.raises(ValueError, match="--augment none makes"):
        PixelSACConfig(aux="none", augment="none", drq_k=2).validate()
    with pytest.raises(ValueError, match="--drq-m must be >= 1"):
        PixelSACConfig(drq_m=0).validate()
    from seqrep.loops.curl import PixelRunConfig

    with pytest.raises(ValueError, match="--crop-size 84 must equal --image-size 100"):
        PixelRunConfig(augment="shift").validate()
    PixelRunConfig(augment="shift", image_size=84, drq_k=2, drq_m=2).validate()


def test_drq_encoder_tanh_and_temperature_betas():
    cfg = dataclasses_replace(DRQ, augment="shift", encoder_tanh=True, alpha_beta1=0.9)
    agent = PixelSAC((9, 32, 32), 2, cfg)
    x = torch.rand(4, 9, 32, 32) * 50  # large inputs: LayerNorm output beyond +-1 before tanh
    assert (
        agent.encoder(x).abs().max() < 1
        and agent.actor_head(agent.encoder.trunk(x)).abs().max() < 1
    )
    assert agent.alpha_opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert PixelSAC((9, 32, 32), 2, DRQ).alpha_opt.param_groups[0]["betas"] == (0.5, 0.999)


def dataclasses_replace(cfg: PixelSACConfig, **changes: object) -> PixelSACConfig:
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def test_the_six_task_protocol_runs_curl_crop_drq_and_state_with_valid_options():
    """`bench/curl.py run --tasks all`: the DMControl100k table's jobs, each pixel job's options
    accepted by `seqrep curl` and valid together; DrQ keeps its learning rate on cheetah."""
    import argparse
    import importlib.util
    from pathlib import Path

    from seqrep.cli import cli
    from seqrep.loops.curl import PixelRunConfig

    path = Path(__file__).resolve().parents[1] / "bench" / "curl.py"
    spec = importlib.util.spec_from_file_location("bench_curl", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(
        tasks="all",
        variants=None,
        seeds="0,1,2",
        env_steps=100_000,
        batch_size=512,
        device="cpu",
        checkpoint_every=50_000,
        state=True,
        runs=Path("runs"),
    )
    jobs = bench._jobs(args)
    assert len(jobs) == 6 * 3 * 4
    names = [name for name, _ in jobs]
    for task in bench.SIX_TASKS:
        for variant in ("curl-crop", "none-crop", "drq"):
            assert f"{task} {variant} seed 2" in names
    for name, cmd in jobs:
        if cmd[0] != "curl":
            assert cmd[0] == "sac" and "dm_control/" in cmd[cmd.index("--env") + 1]
            continue
        ctx = cli.commands["curl"].make_context("curl", cmd[1:])
        fields = set(PixelRunConfig.__dataclass_fields__)
        cfg = PixelRunConfig(**{k: v for k, v in ctx.params.items() if k in fields})
        cfg.validate()
        assert cfg.batch_size == 512
        if " drq " in name:
            assert (cfg.augment, cfg.drq_k, cfg.drq_m, cfg.image_size) == ("shift", 2, 2, 84)
            assert cfg.encoder_tanh and cfg.lr == 1e-3
        elif name.startswith("cheetah-run"):
            assert cfg.lr == 2e-4  # CURL's rate for cheetah


# ------------------------------------------------------------------------------- evaluation, video
def _toy_policy(obs: np.ndarray) -> np.ndarray:
    """A deterministic policy of the newest frame, row by row (so batching cannot change it):
    move towards the canvas centre from the dot's brightest column and row."""
    frame = obs[:, -3:].astype(np.float64).mean(1)  # [N, H, W]
    rows, cols = frame.mean(2).argmax(1), frame.mean(1).argmax(1)
    centre = (frame.shape[-1] - 1) / 2
    return np.stack([centre - cols, centre - rows], 1).clip(-1, 1).astype(np.float32)


def test_vector_evaluation_returns_each_seeds_episode_whatever_the_workers():
    from functools import partial

    from seqrep.rl.pixels import TOY_TASK, PixelEvaluation, make_pixel_env

    make = partial(make_pixel_env, TOY_TASK, 24)
    env, expected = make(), []
    for e in range(5):  # one episode at a time, seeds 7 .. 11
        obs, _ = env.reset(seed=7 + e)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(_toy_policy(obs[None])[0])
            total, done = total + reward, terminated or truncated
        expected.append(total)
    frames: list[np.ndarray] = []
    in_process = PixelEvaluation(make, episodes=5, workers=1)
    np.testing.assert_allclose(in_process.run(_toy_policy, 7, frames), expected, rtol=1e-12)
    in_process.close()
    assert len(frames) == 51 and frames[0].shape == (3, 24, 24)  # the reset frame + 50 steps
    two = PixelEvaluation(make, episodes=5, workers=2)  # subprocesses, 3 rounds of 2
    np.testing.assert_allclose(two.run(_toy_policy, 7, None), expected, rtol=1e-12)
    two.close()


def test_capture_video_writes_playable_mp4s_linked_from_the_report(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    from seqrep.cli import main

    out = tmp_path / "toy"
    args = [*TOY_ARGS, "--env-steps", "100", "--init-steps", "60", "--eval-every", "50"]
    main([*args, "--eval-episodes", "2", "--capture-video", "--out", str(out)])
    videos = sorted(p.name for p in (out / "videos").iterdir())
    assert videos == ["step-0.mp4", "step-100.mp4", "step-50.mp4"]
    reader = imageio.get_reader(out / "videos" / "step-100.mp4")
    shapes = [frame.shape for frame in reader]
    assert len(shapes) == 51 and set(shapes) == {(80, 80, 3)}  # 40 px frames, twice as large
    report = (out / "report.md").read_text()
    assert "(videos/step-0.mp4)" in report and "(videos/step-100.mp4)" in report
    assert "(videos/step-50.mp4)" not in report


def test_sac_capture_video_records_the_rendered_evaluation_episode(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    from seqrep.cli import main
    from seqrep.rl.envs import evaluate_policy

    # evaluate_policy hands over the first episode's frames: the reset frame and one per step
    steps = []

    def policy(obs: np.ndarray) -> np.ndarray:
        steps.append(1)
        return np.zeros(1, np.float32)

    frames: list[np.ndarray] = []
    evaluate_policy("InvertedPendulum-v5", policy, episodes=1, seed=0, frames=frames)
    assert len(frames) == len(steps) + 1 and frames[0].shape == (480, 480, 3)
    assert frames[0].std() > 0 and not np.array_equal(frames[0], frames[-1])

    out = tmp_path / "sac"
    args = ["sac", "--env", "InvertedPendulum-v5", "--total-steps", "300"]
    args += ["--learning-starts", "200", "--eval-every", "300", "--eval-episodes", "1"]
    main([*args, "--batch-size", "32", "--hidden", "16", "--capture-video", "--out", str(out)])
    video = [frame for frame in imageio.get_reader(out / "videos" / "step-300.mp4")]
    assert len(video) >= 2 and video[0].shape == (480, 480, 3)
    assert "(videos/step-300.mp4)" in (out / "report.md").read_text()
