"""Limits on Redis hold across processes: each test starts real worker processes.

The workers (``redis_worker.py``) admit through one named limit on one server; the
server's clock stamps every admission, so every sliding window is checked exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentdiff_coordination import configure, limit

from .support import HANG, max_window, windows_over

WORKER = str(Path(__file__).with_name("redis_worker.py"))
ROOT = str(Path(__file__).resolve().parents[2])

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = f"test-{uuid.uuid4().hex[:8]}"
    yield p
    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter(f"{p}:*"):
        r.delete(key)


def start(url: str, prefix: str, mode: str, count: int, n: int, *extra: str) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, WORKER, url, prefix, mode, str(count), *extra]
    return [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]


def results(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=HANG)
        assert p.returncode == 0, f"worker {p.pid} failed"
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def go(url: str, prefix: str, n: int) -> None:
    """Start the workers together, once all ``n`` are ready."""
    r = redis.Redis.from_url(url)
    for _ in range(n):
        assert r.blpop([f"{prefix}:ready"], timeout=HANG), "a worker never became ready"
    r.rpush(f"{prefix}:go", *["go"] * n)


def test_a_rate_holds_in_every_window_across_processes(redis_url: str, prefix: str) -> None:
    procs = start(redis_url, prefix, "rate", 25, 4)  # 100 requests against 40/s
    go(redis_url, prefix, 4)
    times = [t for r in results(procs) for t in r["times"]]  # type: ignore[union-attr]
    assert len(times) == 100
    admitted = [(t, 1) for t in times]
    assert windows_over(admitted, 1.0, 40) == 0
    first = min(times)
    assert sum(1 for t in times if t < first + 2.0) >= 0.95 * 80  # saturated: used in full


def test_mixed_costs_from_several_processes_hold_the_rate_and_all_get_through(redis_url: str, prefix: str) -> None:
    # three processes of small requests and one of requests half the rate
    procs = start(redis_url, prefix, "tokens", 20, 3, "10") + start(redis_url, prefix, "tokens", 4, 1, "150")
    go(redis_url, prefix, 4)
    admitted = [tuple(a) for r in results(procs) for a in r["admitted"]]  # type: ignore[attr-defined]
    assert sorted(c for _, c in admitted) == [10] * 60 + [150] * 4  # the large ones were not starved
    assert max_window(admitted, 1.0) <= 300


def test_concurrency_holds_across_processes_and_is_reached(redis_url: str, prefix: str) -> None:
    procs = start(redis_url, prefix, "slots", 8, 4)
    go(redis_url, prefix, 4)
    most = max(int(r["most"]) for r in results(procs))  # type: ignore[call-overload]
    assert most == 3


def test_a_slot_held_by_a_killed_process_comes_back_after_its_lease(redis_url: str, prefix: str) -> None:
    url = redis_url + ("&" if "?" in redis_url else "?") + "lease=1"
    (holder,) = start(url, prefix, "hold", 1, 1)
    try:
        assert holder.stdout is not None
        assert "holding" in holder.stdout.readline()
        configure(redis_url, key_prefix=prefix)
        held = limit("held", concurrency=1)
        assert held.usage().holders == 1
        holder.kill()
        holder.wait(HANG)
        held.acquire(timeout=HANG).release()  # the dead holder's lease ran out
    finally:
        holder.kill()
        holder.wait(HANG)


def test_a_backoff_in_one_process_holds_every_process_and_keeps_their_order(redis_url: str, prefix: str) -> None:
    seconds = 1.5
    queued = [p for k in range(4) for p in start(redis_url, prefix, "queue", k, 1)]
    (backer,) = start(redis_url, prefix, "backoff", 0, 1, str(seconds))
    r = redis.Redis.from_url(redis_url)
    for _ in range(5):
        assert r.blpop([f"{prefix}:ready"], timeout=HANG), "a worker never became ready"
    r.rpush(f"{prefix}:go", "go")
    (said,) = results([backer])
    configure(redis_url, key_prefix=prefix)
    fleet = limit("fleet", requests="1000/s")
    assert fleet.usage().backoff > 0
    with pytest.raises(Exception, match="did not admit"):
        fleet.acquire(timeout=0)
    for k in range(4):  # the others arrive one after the other while it lasts
        r.rpush(f"{prefix}:go:{k}", "go")
        deadline = time.monotonic() + HANG
        while fleet.usage().waiting < k + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
    admitted = sorted((float(a["at"]), int(a["index"])) for a in results(queued))  # type: ignore[arg-type]
    assert all(at >= float(said["before"]) + seconds for at, _ in admitted)  # type: ignore[arg-type]
    assert [index for _, index in admitted] == [0, 1, 2, 3]
