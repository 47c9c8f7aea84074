"""Normalised scores: 100 * (return - random) / (expert - random).

For the D4RL v2 locomotion tasks the references are D4RL's own (``REF_MIN_SCORE`` /
``REF_MAX_SCORE`` in d4rl/infos.py, shared by the v0, v1 and v2 data sets). seqrep's v5 tasks use
references measured by seqrep itself (a random policy and seqrep's expert); pass them explicitly,
and say which references a report uses.
"""

from __future__ import annotations

__all__ = ["D4RL_REFERENCES", "normalized_score"]

# task -> (random return, expert return), from d4rl/infos.py.
D4RL_REFERENCES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


def normalized_score(
    ret: float, task: str | None = None, reference: tuple[float, float] | None = None
) -> float:
    """D4RL-style normalised score of an undiscounted return.

    Args:
        ret: the episode return (or a mean of returns).
        task: a D4RL task or data set name (``"hopper"``, ``"hopper-medium-replay-v2"``).
        reference: (random, expert) returns, instead of ``task``.
    """
    if reference is None:
        if task is None:
            raise ValueError("give a D4RL task name or an explicit (random, expert) reference")
        key = task.lower().split("-")[0]
        if key not in D4RL_REFERENCES:
            raise ValueError(
                f"no D4RL reference for {task!r} (known: {', '.join(D4RL_REFERENCES)}); "
                "pass reference=(random_return, expert_return)"
            )
        reference = D4RL_REFERENCES[key]
    low, high = reference
    if high == low:
        raise ValueError("the expert and random references must differ")
    return 100.0 * (ret - low) / (high - low)
