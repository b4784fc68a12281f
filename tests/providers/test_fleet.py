"""A fleet of processes on one Redis limit keeps a provider's limits (the stand-in counts).

Four processes of eight agents each call the stand-in provider through ``limit_client``
on one limit shared on a real redis-server, for several of the provider's minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentdiff_coordination.stand_in_provider import StandInProvider

from .fleet_worker import run_fleet

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MINUTE = 4.0  # the stand-in's minute, in seconds (long enough that scheduling noise is small beside it)
R, T = 40, 3000  # requests and tokens per minute: tokens bind (about 28 requests' worth)


def fleet(url: str, provider: StandInProvider, mode: str) -> list[dict[str, int]]:
    """4 processes x 8 agents for a little more than 3 of the provider's minutes."""
    return run_fleet(url, provider.openai_url, mode, processes=4, agents=8, seconds=3 * MINUTE + 1, requests=R,
                     tokens=T, period=MINUTE, margin=1.05, max_tokens=48, max_retries=2)


def allowance_used(provider: StandInProvider, minutes: int = 3) -> float:
    """The share of the provider's allowance used over ``minutes`` full minutes from its first answer."""
    stats = provider.stats()
    assert stats.first is not None
    requests, tokens = provider.accepted_between(stats.first, stats.first + minutes * MINUTE)
    return max(requests / (minutes * R), tokens / (minutes * T))


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    with StandInProvider(rpm=R, tpm=T, minute=MINUTE, latency=0.01, reply_tokens=32) as p:
        yield p


def test_a_fleet_on_a_shared_limit_gets_no_429_and_uses_the_allowance(redis_url: str, provider: StandInProvider) -> None:
    counts = fleet(redis_url, provider, "limit")
    stats = provider.stats()
    assert sum(c["failed"] for c in counts) == 0
    assert stats.rejected <= 1  # goal: none; at most one, and then a backoff follows it
    assert stats.peak_requests <= R and stats.peak_tokens <= T
    assert allowance_used(provider) >= 0.9
