"""Redis locks are leases: tokens, fencing numbers, renewal, reported losses, pushed hand-offs.

The lock semantics shared with the memory backend (exclusion, order, re-entry, several
names, timeouts, cancellation) run in ``tests/conformance`` against Redis as well; these
tests cover what only a distributed lease has.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

from agentdiff_coordination import LeaseLostError, LockNotHeldError, configure, lock
from agentdiff_coordination.core.backends.redis import RedisBackend, RedisLockGrant, lease, scripts

from .support import HANG, RedisServer

pytestmark = pytest.mark.redis


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def wait_until(predicate: Any, what: str, timeout: float = HANG) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.005)


def test_a_grant_carries_a_token_and_a_fencing_number_that_grows(redis_backend: RedisBackend) -> None:
    seen = []
    for _ in range(3):
        with lock("fenced") as held:
            grant = held.grants["fenced"]
            assert isinstance(grant, RedisLockGrant)
            assert isinstance(grant.token, str) and len(grant.token) >= 16
            assert held.fencing == grant.fencing
            seen.append(grant.fencing)
    assert seen == sorted(seen) and len(set(seen)) == 3


def test_uncontended_acquire_and_release_take_one_round_trip_each(
    private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RedisBackend(private_redis.url, key_prefix="rt")
    configure(backend)
    client = raw(private_redis.url)
    with lock("warm"):
        pass
    sends = []
    original = redis.connection.Connection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sends.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted)
    before = evalsha_calls(client)
    sends.clear()
    for _ in range(50):
        with lock("rt"):
            pass
    assert len(sends) == 100  # one request per acquire, one per release
    assert evalsha_calls(client) - before == 100  # each one script run


def test_a_lease_is_renewed_while_its_holder_lives(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, key_prefix=prefix, lease=0.6)
    configure(backend)
    client = raw(redis_url)
    with lock("renewed") as held:
        grant = held.grants["renewed"]
        # outlive the lease several times over; the watchdog keeps renewing it
        for _ in range(6):
            time.sleep(0.3)
            assert client.hget(backend.key("lock", "renewed"), "token") == grant.token.encode()
        assert grant.lost is None
    assert client.exists(backend.key("lock", "renewed")) == 0


def test_a_lost_lease_is_reported_by_callback_and_at_release(redis_url: str, prefix: str) -> None:
    reported: list[tuple[RedisLockGrant, LeaseLostError]] = []
    called = threading.Event()

    def on_lost(grant: RedisLockGrant, error: LeaseLostError) -> None:
        reported.append((grant, error))
        called.set()

    backend = RedisBackend(redis_url, key_prefix=prefix, lease=0.6, on_lease_lost=on_lost)
    configure(backend)
    held = lock("stolen")
    held.__enter__()
    grant = held.grants["stolen"]
    # another holder takes the name behind this one's back (as after an expiry)
    raw(redis_url).hset(backend.key("lock", "stolen"), "token", "someone-else")
    assert called.wait(HANG), "the lease-lost callback never ran"
    assert reported[0][0] is grant and reported[0][1].name == "stolen"
    assert isinstance(grant.lost, LeaseLostError)
    with pytest.raises(LeaseLostError) as info:
        held.__exit__(None, None, None)
    assert info.value.fencing == grant.fencing and "stolen" in str(info.value)
    # the other holder's lock was not touched by the stale release
    assert raw(redis_url).hget(backend.key("lock", "stolen"), "token") == b"someone-else"


def test_only_the_holders_token_releases(redis_backend: RedisBackend) -> None:
    with lock("mine") as held:
        grant = held.grants["mine"]
        forged = RedisLockGrant("mine", "not-the-token", grant.fencing, None, 30.0, time.monotonic() + 30, grant._keys)
        with pytest.raises(LockNotHeldError):
            redis_backend.release_lock(forged)
        # a release that reaches Redis with the wrong token does nothing
        keys = redis_backend._locks.keys("mine")
        assert redis_backend.ctx.link().script(scripts.RELEASE, keys, ["not-the-token", 3000, redis_backend.prefix]) == 0
        assert redis_backend.lock_holder("mine") is not None
    assert redis_backend.lock_holder("mine") is None


def test_a_release_after_a_takeover_leaves_the_new_holder_alone(redis_url: str, prefix: str) -> None:
    old = RedisBackend(redis_url, key_prefix=prefix, lease=0.3)
    new = RedisBackend(redis_url, key_prefix=prefix, lease=30)
    try:
        grant = old.acquire_lock("taken", "old", None)
        old._locks.watchdog().stop()  # the old holder stops renewing: as if it froze
        taken = new.acquire_lock("taken", "new", timeout=HANG)
        assert taken.fencing > grant.fencing
        with pytest.raises(LeaseLostError):
            old.release_lock(grant)
        assert "new" in (new.lock_holder("taken") or "")
        new.release_lock(taken)
    finally:
        old.close()
        new.close()


def test_a_waiter_is_woken_by_the_release_not_by_polling(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no safety net within the test: the watchdog's heartbeat would find the grant too
    monkeypatch.setattr(lease, "TICK", 3600.0)
    redis_backend = RedisBackend(redis_url, key_prefix=prefix, lease=3600)
    configure(redis_backend)
    got = threading.Event()
    fencing: list[int] = []
    held = lock("pushed")
    held.__enter__()

    def waiter() -> None:
        with lock("pushed", timeout=HANG) as mine:
            fencing.append(mine.fencing or 0)
            got.set()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    wait_until(lambda: redis_backend.statistics().lock_waiters == 1, "the waiter to queue")
    first = held.fencing or 0
    held.__exit__(None, None, None)
    assert got.wait(HANG), "the waiter was not woken by the release"
    t.join(HANG)
    assert fencing[0] > first


def test_cancelling_an_acquire_after_the_server_granted_leaves_nothing_held(redis_backend: RedisBackend) -> None:
    async def attempt(delay: float) -> None:
        task = asyncio.create_task(redis_backend.acquire_lock_async("cancel-granted", None, None))
        await asyncio.sleep(0)  # the request is on its way
        time.sleep(delay)  # the loop stands still while the server answers (and grants)
        assert task.cancel()  # the task has not finished: the cancellation must win
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(1000):
            if redis_backend.lock_holder("cancel-granted") is None:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"the grant of a cancelled acquire stayed held (delay {delay})")

    async def main() -> None:
        for delay in (0.0, 0.001, 0.005, 0.02, 0.05):
            await attempt(delay)

    asyncio.run(main())
    assert redis_backend.statistics().locks_held == 0


def test_cancelling_a_release_still_releases(redis_backend: RedisBackend) -> None:
    async def main() -> None:
        grant = await redis_backend.acquire_lock_async("cancel-release", None, None)
        task = asyncio.create_task(redis_backend.release_lock_async(grant))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(1000):
            if redis_backend.lock_holder("cancel-release") is None:
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the cancelled release never completed")

    asyncio.run(main())


def test_names_nobody_holds_or_waits_for_leave_no_keys(redis_backend: RedisBackend, redis_url: str) -> None:
    for i in range(200):
        with lock(f"transient-{i}"):
            pass
    with lock("contended"):
        def late() -> None:
            with pytest.raises(Exception):
                with lock("contended", timeout=0.05):
                    pass

        t = threading.Thread(target=late)
        t.start()
        t.join(HANG)
    keys = sorted(k.decode() for k in raw(redis_url).scan_iter(match=f"{redis_backend.prefix}:*"))
    # one counter for the prefix, and this process's liveness key (one per process, not per name)
    assert keys == [redis_backend.key("alive", redis_backend.process_id), redis_backend.key("fencing")]


def test_a_lease_length_can_be_given_per_lock(redis_backend: RedisBackend, redis_url: str) -> None:
    grant = redis_backend.acquire_lock("short", None, None, lease=0.5)
    try:
        assert isinstance(grant, RedisLockGrant) and grant.lease == 0.5
        assert 0 < raw(redis_url).pttl(redis_backend.key("lock", "short")) <= 500
    finally:
        redis_backend.release_lock(grant)
    with pytest.raises(ValueError, match="lease"):
        redis_backend.acquire_lock("short", None, None, lease=0)


def test_fencing_numbers_keep_growing_when_redis_loses_its_data(private_redis: RedisServer) -> None:
    configure(RedisBackend(private_redis.url, key_prefix="fence"))
    with lock("f") as held:
        before = held.fencing or 0
    raw(private_redis.url).flushall()  # what a restart without persistence does
    with lock("f") as held:
        assert (held.fencing or 0) > before


def test_timeout_error_names_a_holder_in_another_process(redis_url: str, prefix: str) -> None:
    other = RedisBackend(redis_url, key_prefix=prefix)
    configure(RedisBackend(redis_url, key_prefix=prefix))
    grant = other.acquire_lock("busy", "nightly_writer", None)
    try:
        with pytest.raises(Exception) as info:
            with lock("busy", timeout=0.05):
                pass
        message = str(info.value)
        assert "busy" in message and "nightly_writer" in message and "pid" in message
        assert getattr(info.value, "holder", None)
    finally:
        other.release_lock(grant)
        other.close()
