"""The Redis backend under hostile conditions: each test reproduces one failure of
issue 10 (bad events, many waiters, a frozen server, forged wake messages, bad
options, prefixes, exit, retention, messages)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from agentdiff_coordination import dead_letters, configure, drain, emit, lock, when
from agentdiff_coordination.core.backends.redis import RedisBackend
from agentdiff_coordination.core.backends.redis.link import SLACK
from agentdiff_coordination.core.errors import BackendError, CoordinationTimeoutError, LeaseLostError

from .support import HANG, ROOT, RedisServer, free_port

pytestmark = pytest.mark.redis


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


# -- 1. one bad event never costs another ------------------------------------------------------


def test_an_event_that_is_not_utf8_is_refused_at_emit_and_costs_no_other(redis_backend: RedisBackend) -> None:
    got: list[int] = []
    when("good")(lambda data: got.append(data))
    for i in range(300):
        emit("good", i)
    with pytest.raises(ValueError, match="no UTF-8 form"):
        emit("good", {"text": "\ud800"})
    for i in range(300, 600):
        emit("good", i)
    assert drain(HANG)
    assert sorted(got) == list(range(600))
    assert redis_backend.statistics().events_lost == 0


def test_an_event_redis_refuses_is_counted_lost_and_drain_says_so(
    redis_backend: RedisBackend, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw(redis_url).set(redis_backend.key("events"), "not a stream")  # every XADD is refused (WRONGTYPE)
    with caplog.at_level(logging.ERROR, logger="agentdiff_coordination"):
        for i in range(3):
            emit("refused", i)
        assert not drain(HANG)
    assert redis_backend.statistics().events_lost == 3
    assert sum("refused an event" in r.getMessage() for r in caplog.records) == 3
    assert sorted(d.event.data for d in dead_letters() if d.handler == "(not sent)") == [0, 1, 2]
    raw(redis_url).delete(redis_backend.key("events"))
    emit("accepted", 1)
    assert not drain(HANG)  # not idle while the lost events are kept, unread
    dead_letters(clear=True)
    assert drain(HANG)


# -- 2. many waiters on one lock ------------------------------------------------------------------


def _crowd(backend: RedisBackend, n: int) -> list[int]:
    """``n`` tasks queue for one held lock in batches of 100; the order they were served in."""
    served: list[int] = []

    async def wait(i: int) -> None:
        async with lock("crowd", timeout=HANG * 4):
            served.append(i)

    async def main() -> None:
        # the holder is another call chain (a task made inside ``async with`` would re-enter it)
        held = await backend.acquire_lock_async("crowd", "holder", None)
        tasks: list[asyncio.Task[None]] = []
        for start in range(0, n, 100):  # every task of a batch is queued before the next batch
            tasks += [asyncio.ensure_future(wait(i)) for i in range(start, min(n, start + 100))]
            deadline = time.monotonic() + HANG
            while backend.client.zcard(backend.key("lockq", "crowd")) < len(tasks):  # queued in Redis
                assert time.monotonic() < deadline, "the waiters did not queue"
                await asyncio.sleep(0.005)
        await backend.release_lock_async(held)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    return served


def test_waiters_are_served_in_arrival_order(redis_backend: RedisBackend) -> None:
    served = _crowd(redis_backend, 300)
    assert len(served) == 300
    assert all(b // 100 >= a // 100 for a, b in zip(served, served[1:]))


@pytest.mark.slow
def test_ten_thousand_waiters_are_all_served_in_arrival_order(redis_backend: RedisBackend, redis_url: str) -> None:
    before = int(raw(redis_url).info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    served = _crowd(redis_backend, 10_000)
    assert len(served) == 10_000
    assert all(b // 100 >= a // 100 for a, b in zip(served, served[1:]))
    calls = int(raw(redis_url).info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)) - before
    assert calls < 10_000 * 4, f"{calls} scripts for 10,000 hand-offs: waiters are polling"


# -- 3. timeouts kept whatever the server does ------------------------------------------------------


def _frozen(server: RedisServer) -> Any:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    return lambda: os.kill(server.proc.pid, signal.SIGCONT) if server.proc is not None else None


def test_a_lock_timeout_is_kept_against_a_frozen_server(private_redis: RedisServer) -> None:
    backend = RedisBackend(private_redis.url, key_prefix="frozen", lease=5)
    configure(backend)
    with lock("warm"):
        pass
    thaw = _frozen(private_redis)
    try:
        started = time.monotonic()
        with pytest.raises((CoordinationTimeoutError, BackendError)):
            with lock("frozen", timeout=1.0):
                pass
        assert time.monotonic() - started < 1.0 + SLACK + 1.0  # was 45 s: a hang, not a speed figure
    finally:
        thaw()


def test_rediss_to_a_plain_port_fails_as_a_configuration_error_within_the_timeout(redis_url: str) -> None:
    url = redis_url.replace("redis://", "rediss://", 1)
    configure(url, key_prefix="tls-plain")
    started = time.monotonic()
    with pytest.raises(BackendError, match="TLS") as info:
        with lock("x", timeout=2.0):
            pass
    assert time.monotonic() - started < 2.0 + SLACK + 1.0  # was 52 s
    assert "unreachable" not in str(info.value)


def test_a_lease_loss_is_reported_no_later_than_the_leases_end(private_redis: RedisServer) -> None:
    reported: list[tuple[float, Any]] = []
    backend = RedisBackend(private_redis.url, key_prefix="loss", lease=1.0,
                           on_lease_lost=lambda grant, error: reported.append((time.monotonic(), grant)))
    try:
        grant = backend.acquire_lock("short", None, None)
        thaw = _frozen(private_redis)
        try:
            deadline = time.monotonic() + HANG
            while not reported and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            thaw()
        assert reported, "the lease loss was never reported"
        at, lost = reported[0]
        assert lost is grant and at <= grant.valid_until  # by the watchdog's own clock
        with pytest.raises(LeaseLostError):
            backend.release_lock(grant)
    finally:
        backend.close()


# -- 4. a forged wake message never grants a lock --------------------------------------------------


def test_a_forged_wake_message_never_lets_a_waiter_in(redis_url: str, prefix: str) -> None:
    holder = RedisBackend(redis_url, key_prefix=prefix)
    waiter = RedisBackend(redis_url, key_prefix=prefix)
    try:
        grant = holder.acquire_lock("guarded", "holder", None)
        entered = threading.Event()

        def wait() -> None:
            got = waiter.acquire_lock("guarded", "waiter", HANG)
            entered.set()
            waiter.release_lock(got)

        t = threading.Thread(target=wait, daemon=True)
        t.start()
        client = raw(redis_url)
        deadline = time.monotonic() + HANG
        while not (queued := client.zrange(holder.key("lockq", "guarded"), 0, -1)):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        channel = waiter.key("wake", waiter.process_id)
        for _ in range(20):  # an attacker who knows the waiter's token and may only PUBLISH
            client.publish(channel, queued[0])
        assert not entered.wait(0.5), "a forged wake message let the waiter in while the lock was held"
        holder.release_lock(grant)
        assert entered.wait(HANG)
        t.join(HANG)
    finally:
        holder.close()
        waiter.close()


# -- 5. options checked where they are given ---------------------------------------------------------


@pytest.mark.parametrize(("query", "named"), [
    ("?consumer_ttl=inf", "consumer_ttl"),
    ("?bogus_option=1", "bogus_option"),
    ("?prefix=", "prefix"),
    ("?lease=nan", "lease"),
    ("?lease=inf", "lease"),
    ("?lease=-1", "lease"),
    ("?max_deliveries=0", "max_deliveries"),
    ("?prefix=a:b", "prefix"),
    ("?prefix=a|b", "prefix"),
])
def test_a_bad_url_option_is_refused_naming_it(query: str, named: str) -> None:
    with pytest.raises(ValueError) as info:
        RedisBackend("redis://127.0.0.1:1/0" + query)
    message = str(info.value)
    assert named in message and ".." not in message


def test_an_unknown_option_error_names_what_is_accepted() -> None:
    with pytest.raises(ValueError) as info:
        RedisBackend("redis://127.0.0.1:1/0?bogus_option=1")
    assert "lease" in str(info.value) and "socket_timeout" in str(info.value)


def test_a_database_path_must_be_a_number() -> None:
    with pytest.raises(ValueError, match="/abc"):
        RedisBackend("redis://127.0.0.1:1/abc")


def test_redis_py_options_stay_allowed() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0?socket_timeout=2&client_name=x&health_check_interval=5")
    backend.close()


def test_a_bad_keyword_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="lease"):
        RedisBackend("redis://127.0.0.1:1/0", lease=float("nan"))
    with pytest.raises(ValueError, match="socket_timout"):
        RedisBackend("redis://127.0.0.1:1/0", socket_timout=1)


# -- 6. prefixes and names never share a key ---------------------------------------------------------


def test_different_prefix_and_name_pairs_never_share_a_key(redis_url: str) -> None:
    with pytest.raises(ValueError):
        RedisBackend(redis_url, key_prefix="a:lock:b")
    a = RedisBackend(redis_url, key_prefix="a" + str(time.monotonic_ns()))
    b = RedisBackend(redis_url, key_prefix="b" + str(time.monotonic_ns()))
    try:
        ga = a.acquire_lock("b:lock:c", None, 0)
        gb = b.acquire_lock("b:lock:c", None, 0)  # the same name under another prefix: free
        gc = a.acquire_lock("c", None, 0)
        for backend, grant in ((a, ga), (b, gb), (a, gc)):
            backend.release_lock(grant)
    finally:
        a.close()
        b.close()


# -- 7. exit keeps its bound and reports what is left --------------------------------------------------


def test_exit_waits_at_most_its_bound_and_reports_the_unsent_events_in_one_line() -> None:
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from agentdiff_coordination import configure, emit\n"
        "configure('redis://127.0.0.1:%d/0', key_prefix='exit')\n"
        "for i in range(5): emit('e', i)\n"
    ) % (str(ROOT), free_port())
    env = dict(os.environ, AGENTDIFF_COORDINATION_EXIT_DRAIN="1", PYTHONPATH=str(ROOT))
    env.pop("AGENTDIFF_COORDINATION_BACKEND", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=HANG)
    assert time.monotonic() - started < 1 + 8  # was 10 s whatever the bound: a bound, not a speed
    lines = [line for line in done.stderr.splitlines() if "not sent" in line]
    assert len(lines) == 1 and "5 event(s)" in lines[0], done.stderr


# -- 8. the stream's retention -----------------------------------------------------------------------


def test_the_stream_keeps_its_retention_while_no_group_reads_it(redis_url: str, prefix: str) -> None:
    configure(RedisBackend(redis_url, key_prefix=prefix, stream_retention=10))
    for i in range(200):
        emit("nobody_listens", i)
    assert drain(HANG)
    assert raw(redis_url).xlen(f"{prefix}:events") == 10


# -- 10. messages ----------------------------------------------------------------------------------


def test_a_server_that_wants_a_password_says_so(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auth", "--requirepass", "s3cret").start()
    try:
        configure(f"redis://127.0.0.1:{server.port}/0", key_prefix="auth")
        with pytest.raises(BackendError) as info:
            with lock("x", timeout=2):
                pass
        message = str(info.value)
        assert "requires a password (AUTH)" in message and "redis://:PASSWORD@" in message
        assert ".." not in message
    finally:
        server.stop()
