"""Decision-making ground: environments, replay buffer, agents (SAC)."""

from seqrep.rl.base import EncodedAgent
from seqrep.rl.envs import evaluate_policy, make_env
from seqrep.rl.offline import TD3BC, BehaviourCloning, TD3BCConfig
from seqrep.rl.replay import ReplayBuffer
from seqrep.rl.sac import SAC, SACConfig

__all__ = [
    "SAC",
    "TD3BC",
    "BehaviourCloning",
    "EncodedAgent",
    "ReplayBuffer",
    "SACConfig",
    "TD3BCConfig",
    "evaluate_policy",
    "make_env",
]
