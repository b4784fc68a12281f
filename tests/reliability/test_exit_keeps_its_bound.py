"""Issue 10, item 7: exit keeps its bound, and says what it left.

A script that emitted events Redis could not take exits within
``AGENTDIFF_COORDINATION_EXIT_DRAIN`` seconds (plus a loose slack), whether the server is
frozen or unreachable, and prints one line with the count of the events it left.
The bound is measured against the same script's exit with nothing left, in the same run.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from ..redis.support import RedisServer, free_port
from .support import run_python, with_prefix, figure

pytestmark = pytest.mark.redis

EXIT_DRAIN = 1.0
#: how far past the bound an exit may come (startup noise on a busy machine included)
SLACK = 3.0
LEFT = 50

SCRIPT = """
from agentdiff_coordination import configure, emit
configure({url!r})
for n in range({count}):
    emit("unsent", {{"n": n}})
print("emitted", flush=True)
"""


def exit_with_events_left(url: str, count: int) -> tuple[float | None, str, str]:
    ran = run_python(SCRIPT.format(url=url, count=count), cap=30,
                     AGENTDIFF_COORDINATION_EXIT_DRAIN=str(EXIT_DRAIN))
    assert "emitted" in ran.stdout, f"the script failed before exit: {ran.stderr[-2000:]}"
    return (ran.seconds if ran.returncode is not None else None), ran.stdout, ran.stderr


def assert_bound_and_report(took: float | None, stderr: str, baseline: float) -> None:
    bound = baseline + EXIT_DRAIN + SLACK
    assert took is not None, f"the process had not exited after 30s (bound {bound:.1f}s)"
    figure("exit with unsent events, EXIT_DRAIN=1: s after a plain exit", took - baseline)
    assert took <= bound, f"exit took {took:.1f}s with EXIT_DRAIN={EXIT_DRAIN}: more than {bound:.1f}s"
    lines = [line for line in stderr.splitlines() if re.search(rf"\b{LEFT}\b", line) and "event" in line]
    assert len(lines) == 1, f"exit should print one line with the count {LEFT} of events left; stderr:\n{stderr}"


def test_exit_keeps_its_bound_with_redis_frozen(private_redis: RedisServer, prefix: str) -> None:
    url = with_prefix(private_redis.url, prefix)
    baseline, _, _ = exit_with_events_left(url, 0)
    assert baseline is not None
    assert private_redis.proc is not None
    os.kill(private_redis.proc.pid, signal.SIGSTOP)
    try:
        took, _, stderr = exit_with_events_left(url, LEFT)
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
    assert_bound_and_report(took, stderr, baseline)


def test_exit_keeps_its_bound_with_redis_unreachable(private_redis: RedisServer, prefix: str) -> None:
    baseline, _, _ = exit_with_events_left(with_prefix(private_redis.url, prefix), 0)
    assert baseline is not None
    took, _, stderr = exit_with_events_left(with_prefix(f"redis://127.0.0.1:{free_port()}/0", prefix), LEFT)
    assert_bound_and_report(took, stderr, baseline)
