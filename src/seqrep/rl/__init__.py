"""Decision-making ground: environments, replay buffer, agents (SAC)."""

from seqrep.rl.envs import evaluate_policy, make_env
from seqrep.rl.replay import ReplayBuffer
from seqrep.rl.sac import SAC, SACConfig

__all__ = ["SAC", "ReplayBuffer", "SACConfig", "evaluate_policy", "make_env"]
