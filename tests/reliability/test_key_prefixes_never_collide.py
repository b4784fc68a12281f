"""Issue 10, item 6: two different key prefixes never share a key.

Prefix ``a`` with lock ``b:lock:c`` and prefix ``a:lock:b`` with lock ``c`` must be two
locks (or the prefix with a separator is refused where it is given). A prefix with ``|``
(the separator of the waiters' entries) must not slow the hand-off of a lock: compared
with a plain prefix in the same run, as a ratio.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from agentdiff_coordination import configure, lock

from .support import RelWorker, with_prefix

pytestmark = pytest.mark.redis

#: how much slower a hand-off under a prefix with "|" may be than under a plain one
HANDOFF_RATIO = 10


def refused(url: str) -> bool:
    """Whether ``configure(url)`` refuses its prefix (the other way to keep the promise)."""
    try:
        configure(url)
    except ValueError as exc:
        assert "prefix" in str(exc), f"a refused prefix should be named: {exc}"
        return True
    configure("memory://")
    return False


def test_prefixes_that_join_alike_are_different_locks(redis_url: str, prefix: str) -> None:
    short, long_ = with_prefix(redis_url, prefix), with_prefix(redis_url, f"{prefix}:lock:b")
    if refused(long_) or refused(short):
        return
    with RelWorker("hold", url=long_, name="c") as holder:
        holder.expect("holding")
        configure(short)
        with lock("b:lock:c", timeout=2):  # a CoordinationTimeoutError here: the two share a key
            pass
        holder.tell("release")
        holder.expect("released")


def handoff_seconds(rounds: int = 10) -> float:
    """The median time from a release to the entry of the thread waiting for it."""
    took: list[float] = []
    for _ in range(rounds):
        held, entered = threading.Event(), threading.Event()
        released_at: list[float] = []
        entered_at: list[float] = []

        def waiter() -> None:
            held.wait(5)
            with lock("handoff", timeout=10):
                entered_at.append(time.monotonic())
            entered.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        with lock("handoff"):
            held.set()
            time.sleep(0.05)  # the waiter queues meanwhile
            released_at.append(time.monotonic())
        assert entered.wait(10), "the waiter never entered"
        thread.join(10)
        took.append(entered_at[0] - released_at[0])
    return statistics.median(took)


def test_a_prefix_with_a_bar_does_not_slow_hand_offs(redis_url: str, prefix: str) -> None:
    configure(with_prefix(redis_url, f"{prefix}-plain"))
    plain = handoff_seconds()
    barred_url = with_prefix(redis_url, f"{prefix}|bar")
    if refused(barred_url):
        return
    configure(barred_url)
    barred = handoff_seconds()
    assert barred <= HANDOFF_RATIO * plain, (
        f"a hand-off under a prefix with '|' took {barred * 1000:.1f} ms, "
        f"{barred / plain:.0f}x the {plain * 1000:.1f} ms under a plain prefix"
    )
