"""The one retry policy: how long to pause before each further attempt.

``delays(first, attempts)`` yields the pause before attempt 2, 3, ...: exponential from
``first`` (doubling, capped at ``cap``) with full jitter in ``[(1 - jitter) * d, d]`` so
that many processes retrying at once spread out instead of striking together. Handler
retries and the Redis link's reconnects both step through it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["delays"]


def delays(
    first: float, attempts: int, *, factor: float = 2.0, cap: float = 30.0, jitter: float = 0.0
) -> Iterator[float]:
    """The pauses before ``attempts`` further attempts (none when ``attempts`` is 0)."""
    delay = first
    uniform = random.uniform
    for _ in range(attempts):
        pause = min(delay, cap)
        yield uniform((1.0 - jitter) * pause, pause) if jitter else pause
        delay *= factor
