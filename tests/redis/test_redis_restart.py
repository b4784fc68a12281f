"""Redis restarted in the middle of a run: clear errors while it is away, then recovery,
and never two holders of one lock unless the older one is told it lost its lease."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentdiff_coordination import BackendUnavailableError, configure, lock
from agentdiff_coordination.core.backends.redis import RedisBackend

from .support import HANG, RedisServer, Worker

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def sections(log: Path) -> list[tuple[float, float, int, str]]:
    rows = []
    for line in log.read_text().splitlines():
        start, end, fencing, outcome = line.split()
        rows.append((float(start), float(end), int(fencing), outcome))
    return sorted(rows)


def wait_rounds(log: Path, after: float, n: int) -> None:
    deadline = time.monotonic() + HANG
    while sum(1 for s in (sections(log) if log.exists() else []) if s[0] > after) < n:
        assert time.monotonic() < deadline, f"fewer than {n} rounds after {after}"
        time.sleep(0.05)


def test_lock_calls_fail_clearly_while_redis_is_away_and_work_again_after(private_redis: RedisServer) -> None:
    configure(RedisBackend(private_redis.url, key_prefix="away"))
    with lock("before"):
        pass
    private_redis.stop()
    with pytest.raises(BackendUnavailableError) as info:
        with lock("during"):
            pass
    assert f"127.0.0.1:{private_redis.port}" in str(info.value) and "acquiring lock 'during'" in str(info.value)
    private_redis.start()
    with lock("after") as held:
        assert held.fencing


def test_a_restart_during_a_run_gives_clear_errors_then_recovers_and_no_silent_double_holder(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    log = tmp_path / "sections"
    args = dict(url=private_redis.url, prefix="restart", log=str(log), seconds=8.0, options={"lease": 1.0})
    workers = [Worker("fenced_rounds", **args) for _ in range(3)]
    try:
        for w in workers:
            w.expect("started")
        wait_rounds(log, 0.0, 30)
        went_down = time.time()
        private_redis.stop()
        time.sleep(2.0)  # an outage longer than the retries of every call: each worker notices
        private_redis.start()
        came_back = time.time()
        wait_rounds(log, came_back, 30)
        reports = [w.expect("finished", timeout=HANG) for w in workers]
        for w in workers:
            assert w.finish() == 0
    finally:
        for w in workers:
            w.__exit__()
    assert all(r["unavailable"] > 0 for r in reports), f"a worker never saw the outage as an error: {reports}"
    rows = sections(log)
    before = [r for r in rows if r[1] < went_down]
    after = [r for r in rows if r[0] > came_back]
    assert before and after
    assert max(r[2] for r in before) < min(r[2] for r in after)  # fencing kept growing
    # two sections that overlap in time: the older holder must have been told it lost
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if b[0] >= a[1]:
                break
            assert a[3] in ("lost", "error"), f"an overlap where the first holder was not told: {a} / {b}"


def test_emit_fails_clearly_while_redis_is_away_and_queued_events_arrive_after(private_redis: RedisServer) -> None:
    from agentdiff_coordination import drain, emit, when

    configure(RedisBackend(private_redis.url, key_prefix="outage"))
    got: list[int] = []
    when("during")(got.append)
    emit("during", -1)
    assert drain(HANG) and got == [-1]
    private_redis.stop()
    accepted: list[int] = []
    deadline = time.monotonic() + HANG
    with pytest.raises(BackendUnavailableError, match="sending an event"):
        for i in range(100_000):
            emit("during", i)
            accepted.append(i)
            time.sleep(0.01)
            assert time.monotonic() < deadline, "emit never reported the outage"
    private_redis.start()
    assert drain(HANG)
    assert got[1:] == accepted  # everything emit accepted was delivered, in order, once
