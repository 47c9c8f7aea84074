"""The study's configuration (:class:`StudyConfig`) and its named profiles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from seqrep.loops.sac import SACRunConfig
from seqrep.methods.states import (
    STATE_OBJECTIVES,
)
from seqrep.options import check_options
from seqrep.rl.offline import BC_LOSSES

__all__ = ["PAPER_SIZED_COMMAND", "PROFILES", "SETTINGS", "StudyConfig", "profile_config"]


SETTINGS = ("imitation", "offline", "online")


@dataclass
class StudyConfig:
    """One study grid; ``seqrep study --profile quick|full|low-data`` starts from
    :data:`PROFILES`."""

    envs: tuple[str, ...] = field(
        default=("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"),
        metadata={"help": "gymnasium ids with a zoo entry"},
    )
    objectives: tuple[str, ...] = field(
        default=("none", *STATE_OBJECTIVES),
        metadata={"help": "objectives pretrained and run with BC ('none': no pretraining)"},
    )
    settings: tuple[str, ...] = field(
        default=("imitation", "offline", "online"), metadata={"help": "imitation, offline, online"}
    )
    modes: tuple[str, ...] = field(
        default=("frozen", "finetune"), metadata={"help": "encoder frozen / fine-tuned in BC"}
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "training seeds"})
    pretrain_data: str = field(
        default="medium-replay", metadata={"help": "zoo level of the pretraining set"}
    )
    pretrain_transitions: int = field(default=100_000, metadata={"help": "pretraining set size"})
    expert_episodes: int = field(default=10, metadata={"help": "expert episodes for BC"})
    bc_episodes: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "the data-efficiency axis: imitation cells for each of these numbers of "
            "expert episodes (the first N of the expert set), e.g. 1,2,5,10; empty: "
            "--expert-episodes alone"
        },
    )
    pretrain_steps: int = field(default=3000, metadata={"help": "pretraining gradient steps"})
    batch_size: int = field(default=64, metadata={"help": "pretraining windows per batch"})
    window: int = field(default=8, metadata={"help": "steps per pretraining window"})
    feature_dim: int = field(
        default=64, metadata={"help": "representation size (the paper's code: 256)"}
    )
    pretrain_expert_fraction: float = field(
        default=0.0,
        metadata={
            "help": "share of each pretraining batch drawn from the expert set (the paper's "
            "code: about 0.1)"
        },
    )
    bc_loss: str = field(
        default="mse",
        metadata={"help": "BC loss: mse, gaussian, or tanh_gaussian (the paper's, + entropy)"},
    )
    hidden: int = field(default=256, metadata={"help": "encoder hidden units"})
    lr: float = field(default=3e-4, metadata={"help": "pretraining learning rate"})
    bc_steps: int = field(default=5000, metadata={"help": "behaviour-cloning steps"})
    offline_steps: int = field(default=10_000, metadata={"help": "TD3+BC steps"})
    online_steps: int = field(default=30_000, metadata={"help": "SAC environment steps"})
    offline_objectives: tuple[str, ...] = field(
        default=("none", "cpc", "temporal", "acl", "autoencoder"),
        metadata={"help": "objectives run with TD3+BC"},
    )
    offline_modes: tuple[str, ...] = field(
        default=("finetune",), metadata={"help": "encoder modes with TD3+BC"}
    )
    online_envs: tuple[str, ...] = field(
        default=("Hopper-v5",), metadata={"help": "environments run online (SAC is costly)"}
    )
    online_objectives: tuple[str, ...] = field(
        default=("none", "temporal", "acl"), metadata={"help": "objectives run online"}
    )
    online_modes: tuple[str, ...] = field(
        default=("finetune",), metadata={"help": "encoder modes with SAC"}
    )
    online_hide_dims: int = field(
        default=0,
        metadata={
            "help": "online: zero N random state dimensions every step, also in evaluation "
            "(the paper's partial observability: 1)"
        },
    )
    eval_episodes: int = field(default=10, metadata={"help": "evaluation episodes per cell"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})

    def validate(self) -> None:
        """Every option in range, every name known, and the grid consistent (one line each)."""
        self._check_names()
        self._check_envs()
        check_options(
            self,
            positive=(
                "pretrain_transitions",
                "expert_episodes",
                "pretrain_steps",
                "batch_size",
                "window",
                "feature_dim",
                "hidden",
                "lr",
                "bc_steps",
                "offline_steps",
                "online_steps",
                "eval_episodes",
            ),
            non_negative=("online_hide_dims",),
            choices={"bc_loss": BC_LOSSES},
        )
        if not 0 <= self.pretrain_expert_fraction < 1:
            raise ValueError(
                "--pretrain-expert-fraction is the expert share of a pretraining batch, in "
                f"[0, 1); got {self.pretrain_expert_fraction}"
            )
        if not self.seeds:
            raise ValueError("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2")
        if any(not 1 <= n <= self.expert_episodes for n in self.bc_episodes):
            raise ValueError(
                f"--bc-episodes {','.join(map(str, self.bc_episodes))}: each must lie in "
                f"[1, --expert-episodes {self.expert_episodes}] (the expert set they are cut from)"
            )
        if self.pretrain_expert_fraction and (
            min(self.bc_episodes, default=self.expert_episodes) < self.expert_episodes
        ):
            raise ValueError(
                "--pretrain-expert-fraction mixes all --expert-episodes into pretraining, so "
                "an imitation cell with fewer --bc-episodes would be pretrained on expert data "
                "its BC is not given; use one or the other"
            )

    def _check_names(self) -> None:
        unknown = set(self.objectives + self.offline_objectives + self.online_objectives) - {
            "none",
            *STATE_OBJECTIVES,
        }
        if unknown:
            raise ValueError(
                f"unknown objectives {sorted(unknown)}; choose from none, "
                + ", ".join(STATE_OBJECTIVES)
            )
        if set(self.settings) - set(SETTINGS):
            raise ValueError(f"settings must be among {', '.join(SETTINGS)}: {self.settings}")
        for modes in (self.modes, self.offline_modes, self.online_modes):
            if set(modes) - {"frozen", "finetune"}:
                raise ValueError(f"modes must be among frozen, finetune: {modes}")

    def _check_envs(self) -> None:
        from seqrep.rl.zoo import zoo_index

        zoo_envs = sorted(zoo_index())
        missing = [e for e in self.envs if e not in zoo_envs]
        if missing:
            raise ValueError(
                f"--envs {','.join(missing)}: the study needs the behaviour zoo's policies and "
                f"the zoo has none for it; choose among {', '.join(zoo_envs) or '(empty zoo)'} "
                "or build a zoo of your own (SEQREP_ZOO, see README)"
            )
        if "online" in self.settings and set(self.online_envs) - set(self.envs):
            raise ValueError(
                f"--online-envs {','.join(self.online_envs)} must be among --envs "
                f"{','.join(self.envs)}; pass --online-envs too"
            )

    def online_run_config(self, env_id: str, seed: int) -> SACRunConfig:
        """The ``seqrep sac`` config of an online cell: ``online_steps`` with CleanRL's 5000
        random steps first (a quarter of the steps when fewer), ten evaluations, and a
        checkpoint (replay included) at every tenth of the steps: a 100k-step cell takes hours
        on a CPU core, and a rerun of the study resumes it exactly."""
        tenth = max(1, self.online_steps // 10)
        return SACRunConfig(
            env=env_id,
            total_steps=self.online_steps,
            learning_starts=min(5000, self.online_steps // 4),
            eval_every=tenth,
            eval_episodes=self.eval_episodes,
            checkpoint_every=tenth,
            seed=seed,
            device=self.device,
            hide_dims=self.online_hide_dims,
        )


# What the full profile cuts to fit about 16 CPU-hours, put back: 200k pretraining steps and a
# 256-d representation (the paper's code), its tanh-Gaussian BC, 1M downstream steps.


PAPER_SIZED_COMMAND = (
    "seqrep study --profile full --pretrain-steps 200000 --feature-dim 256 "
    "--bc-loss tanh_gaussian --bc-steps 1000000 --offline-steps 1000000 "
    "--online-steps 1000000 --device cuda --jobs 8 --out runs/study-paper"
)


PROFILES: dict[str, StudyConfig] = {
    # The regime the paper's claim is about is the main axis: imitation at 1, 2, 5 and 10 expert
    # episodes (the first N of one 10-episode set), every objective frozen and fine-tuned;
    # TD3+BC on five objectives; SAC on Hopper-v5; 5 seeds, 3 tasks. Cost, measured by the
    # cells' own clocks (two workers on 2 cores, 2026-12-05): 255 encoders 2.2 h, 2,100 BC
    # cells 11.7 h, TD3+BC 2.6 h, SAC 2.1 h: 18.6 CPU-hours, resumable across sittings.
    # Online SAC hides one random state dimension every step, as the paper's online setting:
    # on the full state a representation has little to add.
    "full": StudyConfig(bc_episodes=(1, 2, 5, 10), online_hide_dims=1),
    # The data-efficiency axis alone (about 12 CPU-hours): the full profile's imitation cells.
    "low-data": StudyConfig(settings=("imitation",), bc_episodes=(1, 2, 5, 10)),
    # Under 20 minutes on 2 CPU cores (about 6 with --jobs 2): one environment, imitation only,
    # three seeds, and 2 expert episodes: with 10, BC from scratch already reaches the expert on
    # Hopper-v5 (measured 98.6), which leaves no room to see what a representation buys.
    "quick": StudyConfig(
        envs=("Hopper-v5",),
        objectives=(
            "none",
            "cpc",
            "temporal",
            "acl",
            "triplet",
            "forward",
            "inverse",
            "autoencoder",
        ),
        settings=("imitation",),
        modes=("frozen",),
        seeds=(0, 1, 2),
        expert_episodes=2,
        pretrain_transitions=30_000,
        pretrain_steps=1500,
        bc_steps=3000,
        eval_episodes=5,
    ),
}


# ----------------------------------------------------------------------------- data


def profile_config(profile: str, **overrides: Any) -> StudyConfig:
    """A profile's config with fields replaced by ``overrides`` (ignoring ``None``)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose {', '.join(PROFILES)}")
    return dataclasses.replace(
        PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}
    )
