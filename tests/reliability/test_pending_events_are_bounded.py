"""Issue 10, item 8: what waits in memory, and what the Redis stream keeps, is bounded.

Memory backend: ``configure(max_pending=N)`` bounds the events waiting for slow handlers;
when it is full, ``emit`` waits (backpressure), then raises a clear error after a bound;
no event is ever dropped silently and the process's memory stays bounded.
Redis: with no subscriber at all, the stream keeps no more than its documented retention,
kept on every write (not only when a subscriber's maintenance runs).
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import redis

from agentdiff_coordination import configure, drain, emit, when

from .support import with_prefix, figure

MAX_PENDING = 1000
EMITS = 20_000
PAD = 2000  # bytes of payload per event: 20,000 unbounded events are about 40 MB more

#: the Redis URL option that sets the stream's retention (entries kept), and its value here
RETENTION_OPTION = "stream_retention"
RETENTION = 1000


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle(counter: list[int], quiet: float = 1.0, cap: float = 20.0) -> None:
    """Wait until ``counter`` stops growing for ``quiet`` seconds (at most ``cap``)."""
    deadline, last, since = time.monotonic() + cap, -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(counter) != last:
            last, since = len(counter), time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc")
def test_max_pending_bounds_what_waits_for_a_slow_handler() -> None:
    try:
        configure("memory://", max_pending=MAX_PENDING)
        has_bound = True
    except TypeError:
        has_bound = False  # go on without it: the failure below shows what is unbounded today
    gate = threading.Event()
    handled: list[int] = []

    @when("big")
    def slow(data: dict[str, object]) -> None:
        gate.wait(60)
        handled.append(int(data["n"]))  # type: ignore[call-overload]

    emitted: list[int] = []
    refused: list[Exception] = []

    def emitter() -> None:
        for n in range(EMITS):
            try:
                emit("big", {"n": n, "pad": "x" * PAD + str(n)})
            except Exception as exc:  # noqa: BLE001 - backpressure's error, checked below
                refused.append(exc)
                return
            emitted.append(n)

    before = rss_bytes()
    thread = threading.Thread(target=emitter, daemon=True)
    thread.start()
    try:
        settle(emitted)
        waiting, grown = len(emitted), rss_bytes() - before
        figure("max_pending=1000, 20000 emits", {"waited": waiting, "rss_growth_mb": grown / 2**20, "refused": len(refused)})
    finally:
        gate.set()
    thread.join(60)
    assert drain(timeout=60)
    assert has_bound, (
        f"configure() has no max_pending option: {waiting} events waited in memory for one slow handler, "
        f"RSS grew {grown / 2**20:.0f} MB"
    )
    assert waiting <= MAX_PENDING + 2, f"{waiting} events waited in memory with max_pending={MAX_PENDING}"
    assert grown < 20 * 2**20, f"RSS grew {grown / 2**20:.0f} MB while at most {MAX_PENDING} events waited"
    assert sorted(handled) == emitted, "an event emit accepted was never handled"
    for exc in refused:
        assert "max_pending" in str(exc), f"the backpressure error should name max_pending: {exc}"


@pytest.mark.redis
def test_the_stream_keeps_its_retention_with_no_subscriber(redis_url: str, prefix: str) -> None:
    configure(with_prefix(redis_url, prefix, **{RETENTION_OPTION: RETENTION}))
    for n in range(5 * RETENTION):
        emit("nobody-listens", {"n": n})
    assert drain(timeout=30)
    client = redis.Redis.from_url(redis_url)
    try:
        kept = client.xlen(f"{prefix}:events")
    finally:
        client.close()
    assert kept >= RETENTION // 2
    figure("stream length after 5000 emits, retention 1000", kept), f"only {kept} of {5 * RETENTION} events reached the stream"
    assert kept <= RETENTION * 1.1 + 100, (
        f"the stream kept {kept} entries with no subscriber; its retention is {RETENTION}"
    )
