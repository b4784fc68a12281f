"""Per-lock leases and the configured lease-lost callback, through the public API."""

from __future__ import annotations

import asyncio

import pytest

from agentdiff_coordination import configure, lock
from agentdiff_coordination.core.backends.redis import RedisBackend
from agentdiff_coordination.core.runtime import settings


def test_a_lease_given_to_lock_is_the_grants_lease(redis_backend: RedisBackend) -> None:
    with lock("per-lock-lease", lease=2.5) as held:
        assert held.grants["per-lock-lease"].lease == pytest.approx(2.5)
    with lock("per-lock-lease") as held:
        assert held.grants["per-lock-lease"].lease == pytest.approx(settings().lease)


def test_an_async_lock_takes_its_own_lease_too(redis_backend: RedisBackend) -> None:
    async def main() -> float:
        async with lock(["lease-a", "lease-b"], lease=3) as held:
            return held.grants["lease-b"].lease

    assert asyncio.run(main()) == pytest.approx(3.0)


def test_the_lease_lost_callback_is_a_configure_option() -> None:
    seen: list[object] = []
    configure(on_lease_lost=lambda grant, error: seen.append(error))
    assert settings().on_lease_lost is not None
    with pytest.raises(TypeError, match="on_lease_lost"):
        configure(on_lease_lost="print")
