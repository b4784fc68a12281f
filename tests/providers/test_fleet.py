"""A fleet of processes on one Redis limit keeps a provider's limits (the stand-in counts).

Four processes of eight agents each call the stand-in provider through ``limit_client``
on one limit shared on a real redis-server, for a little more than two of the
provider's minutes (``fleet_worker.py`` runs them and counts).
"""

from __future__ import annotations

import pytest

from .fleet_worker import fleet_figures

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_a_fleet_on_a_shared_limit_gets_no_429_and_uses_the_allowance(redis_url: str) -> None:
    figures = fleet_figures(redis_url, "limit")
    assert figures["failed calls"] == 0 and figures["unreachable calls"] == 0
    assert figures["429s"] <= 1  # goal: none; at most one, and then a backoff follows it
    assert figures["allowance used"] >= 0.9
