"""Several processes on one Redis: mutual exclusion, takeover after a crash or a freeze,
events redelivered after a consumer dies, work shared by the processes of a subscription."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from agentdiff_coordination import configure, emit, wait_for
from agentdiff_coordination.core.backends.redis import RedisBackend

from .support import HANG, Worker

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def ledger(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


def wait_for_ledger(path: Path, expected: set[int], timeout: float = HANG) -> list[tuple[int, int]]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = ledger(path)
        if {i for i, _ in rows} >= expected:
            return rows
        missing = sorted(expected - {i for i, _ in rows})
        assert time.monotonic() < deadline, f"events never handled: {missing[:20]}"
        time.sleep(0.05)


def test_processes_incrementing_one_file_under_one_lock_lose_no_update(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    workers = [Worker("increment", url=redis_url, prefix=prefix, path=str(counter), n=60) for _ in range(4)]
    try:
        for w in workers:
            w.expect("done", timeout=60)
            assert w.finish() == 0
    finally:
        for w in workers:
            w.__exit__()
    assert int(counter.read_text()) == 4 * 60


def test_a_killed_holders_lock_is_taken_over_when_its_lease_runs_out(redis_url: str, prefix: str) -> None:
    args = dict(url=redis_url, prefix=prefix, name="crash", options={"lease": 1.0})
    with Worker("hold", **args) as holder:
        held = holder.expect("holding")
        taker = Worker("acquire", timeout=HANG, **args)
        taker.expect("waiting")
        os.kill(holder.pid, signal.SIGKILL)  # no release, no goodbye
        with taker:
            got = taker.expect("acquired")
            assert got["fencing"] > held["fencing"]
            assert taker.finish() == 0


def test_a_frozen_holder_loses_its_lease_to_a_higher_fencing_number_and_learns_it(
    redis_url: str, prefix: str
) -> None:
    args = dict(url=redis_url, prefix=prefix, name="frozen", options={"lease": 1.0})
    with Worker("hold", **args) as holder:
        held = holder.expect("holding")
        with Worker("acquire", timeout=HANG, **args) as taker:
            taker.expect("waiting")
            os.kill(holder.pid, signal.SIGSTOP)  # frozen past its lease: nobody renews it
            try:
                got = taker.expect("acquired")
                assert taker.finish() == 0
            finally:
                os.kill(holder.pid, signal.SIGCONT)
        assert got["fencing"] > held["fencing"]
        holder.tell("release")
        outcome = holder.read()
        assert outcome["event"] == "lost", outcome
        assert outcome["fencing"] == held["fencing"]
        assert outcome["callback"], "the lease-lost callback did not run"
        assert holder.finish() == 0


def test_a_consumer_killed_mid_handler_has_its_events_handled_by_another(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    book = tmp_path / "ledger"
    common = dict(url=redis_url, prefix=prefix, ledger=str(book), options={"consumer_ttl": 1.0})
    configure(RedisBackend(redis_url, key_prefix=prefix))
    with Worker("consume", block_on=[5], **common) as doomed:
        doomed.expect("ready")
        for i in range(20):
            emit("job", {"i": i})
        doomed.expect("blocking")  # inside the handler of event 5, holding 5..19
        with Worker("consume", **common) as survivor:
            survivor.expect("ready")
            os.kill(doomed.pid, signal.SIGKILL)
            for i in range(20, 40):
                emit("job", {"i": i})
            rows = wait_for_ledger(book, set(range(40)))
            survivor.tell("stop")
            survivor.expect("stopping")
    handled_by = dict(rows)
    assert handled_by[5] == survivor.pid  # the event whose handler died was delivered again
    assert {i for i, _ in rows} == set(range(40))  # every event handled, none lost


def test_processes_with_the_same_subscription_share_its_events(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    book = tmp_path / "ledger"
    common = dict(url=redis_url, prefix=prefix, ledger=str(book))
    configure(RedisBackend(redis_url, key_prefix=prefix))
    with Worker("consume", **common) as a, Worker("consume", **common) as b:
        a.expect("ready")
        b.expect("ready")
        total = 2000
        for i in range(total):
            emit("job", {"i": i})
        rows = wait_for_ledger(book, set(range(total)))
        for w in (a, b):
            w.tell("stop")
            w.expect("stopping")
    counts = Counter(i for i, _ in rows)
    assert set(counts) == set(range(total)) and max(counts.values()) == 1  # each once: nobody died
    by_process = Counter(pid for _, pid in rows)
    assert set(by_process) == {a.pid, b.pid}, f"one process took everything: {by_process}"


def test_wait_for_sees_an_event_emitted_by_another_process(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, key_prefix=prefix)
    configure(backend)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(wait_for("job", timeout=HANG)), daemon=True)
    t.start()
    import time

    deadline = time.monotonic() + HANG
    while backend._events._tail is None or not backend._events._tail._waiters:
        assert time.monotonic() < deadline, "wait_for never started listening"
        time.sleep(0.005)
    with Worker("produce", url=redis_url, prefix=prefix, n=1, start=7) as producer:
        producer.expect("emitted")
        t.join(HANG)
    assert result == [{"i": 7}]
