"""Issue 10, item 3: every timeout is kept, whatever the server does.

A call with a timeout returns or raises within the timeout plus a small documented slack
(``SLACK`` here is a loose bound on that promise, not a speed measurement) even when Redis
is frozen (SIGSTOP) or speaks another protocol; a lease loss is reported no later than
the lease's end.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from agentdiff_coordination import CoordinationError, configure, lock

from ..redis.support import RedisServer
from .support import with_prefix, figure

pytestmark = pytest.mark.redis

#: how far past its timeout a call may return: the documented slack is 1 s; this is looser
SLACK = 3.0


@contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """The server stopped (SIGSTOP): it accepts connections and never answers."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def outcome_within(call: Callable[[], object], cap: float) -> tuple[float | None, object]:
    """Run ``call`` in a thread: (seconds it took, its result or error); (None, None) past ``cap``."""
    box: list[object] = []
    started = time.monotonic()

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            box.append(exc)
        box.append(time.monotonic())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(cap)
    if thread.is_alive():
        return None, None
    return float(box[1]) - started, box[0]  # type: ignore[arg-type]


def shown(took: float | None) -> str:
    return "nothing (still waiting at the cap)" if took is None else f"{took:.1f}s"


def take(name: str, timeout: float) -> str:
    with lock(name, timeout=timeout):
        return "entered"


def test_a_lock_timeout_is_kept_when_redis_is_frozen(private_redis: RedisServer, prefix: str) -> None:
    configure(with_prefix(private_redis.url, prefix))
    take("warm", timeout=5)  # connections made while the server answers
    with frozen(private_redis):
        took, result = outcome_within(lambda: take("frozen", timeout=2), cap=2 + SLACK + 5)
        figure("frozen redis lock(timeout=2) returned after s", took)
    assert took is not None and took <= 2 + SLACK, (
        f"lock(timeout=2) against a frozen Redis: returned after {shown(took)}; bound 2 s + {SLACK} s"
    )
    assert isinstance(result, CoordinationError), f"a frozen server cannot grant a lock: {result!r}"


def test_a_lock_timeout_is_kept_when_rediss_meets_a_plain_port(private_redis: RedisServer, prefix: str) -> None:
    configure(with_prefix(f"rediss://127.0.0.1:{private_redis.port}/0", prefix))  # TLS to a server without TLS
    took, result = outcome_within(lambda: take("tls", timeout=3), cap=3 + SLACK + 5)
    figure("rediss to plain port lock(timeout=3) returned after s", took)
    assert took is not None and took <= 3 + SLACK, (
        f"lock(timeout=3) over rediss:// to a plain port: returned after {shown(took)}; bound 3 s + {SLACK} s"
    )
    assert isinstance(result, (CoordinationError, ValueError)), repr(result)


def test_a_lost_lease_is_reported_no_later_than_its_end(private_redis: RedisServer, prefix: str) -> None:
    lease = 2.0
    reported: list[float] = []
    configure(with_prefix(private_redis.url, prefix, lease=lease),
              on_lease_lost=lambda grant, error: reported.append(time.monotonic()))
    take("warm", timeout=5)
    held = lock("leased")
    asked = time.monotonic()  # the lease cannot end before asked + lease
    held.__enter__()
    try:
        with frozen(private_redis):  # no renewal can reach the server
            deadline = asked + lease + 10
            while not reported and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        try:
            held.__exit__(None, None, None)
        except CoordinationError:
            pass  # the lease was lost: releasing says so
    assert reported, f"the lease loss was not reported within {lease + 10}s of asking"
    late = reported[0] - (asked + lease)
    figure("lease loss reported after the lease end s (negative: before)", late)
    assert late <= 0.25, f"the lease loss was reported {late:.2f}s after the lease had run out"
