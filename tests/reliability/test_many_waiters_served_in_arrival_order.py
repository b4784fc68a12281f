"""Issue 10, item 2: 10,000 waiters on one Redis lock are all served, in arrival order.

Waiters arrive in waves (every process starts wave ``w`` at the same wall time, a gap
after wave ``w - 1``) while this process holds the lock; then it releases. Every waiter of
an earlier wave must be served before any of a later wave (the fencing number orders the
grants across processes), and the queue of 10,000 must drain at no less than half the
rate of a queue of 100, measured in the same run. A hard cap fails the test instead of
letting it hang.
"""

from __future__ import annotations

import time

import pytest

from agentdiff_coordination import configure, lock

from .support import RelWorker, with_prefix, figure

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(600)]

WAVES = 4
GAP = 2.0  # seconds between waves: ample for a wave to reach Redis before the next, with 4 processes on 2 cores
CAP = 60.0  # seconds after the release by which every waiter must have been served


def serve(url: str, name: str, waiters: int, processes: int) -> tuple[float, list[list[float]]]:
    """About ``waiters`` (rounded up to whole waves) queued on lock ``name`` over ``processes``
    processes, then released: (grants per second from the release to the last grant,
    every grant as [wave, fencing, time])."""
    per_wave = -(-waiters // (WAVES * processes))
    waiters = per_wave * WAVES * processes
    configure(url)
    workers = []
    try:
        with lock(name):
            start_at = time.time() + 2.0  # after the workers have started
            workers = [RelWorker("waiters", url=url, name=name, waves=WAVES, per_wave=per_wave,
                                 start_at=start_at, gap=GAP, cap=CAP) for _ in range(processes)]
            for w in workers:
                w.expect("wave", timeout=30 + WAVES * GAP)  # the first wave ...
            for w in workers:
                while w.expect("wave", timeout=30)["wave"] < WAVES - 1:  # ... to the last
                    pass
            time.sleep(GAP)  # the last wave reaches Redis
            released = time.time()
        grants: list[list[float]] = []
        waiting, failed, errors = 0, 0, []
        for w in workers:
            report = w.expect("served", timeout=CAP + 30)
            grants += report["served"]
            waiting += report["waiting"]
            failed += report["failed"]
            errors += report["errors"]
        assert not waiting and not failed, (
            f"of {waiters} waiters, {len(grants)} were served, {waiting} were still waiting {CAP:.0f}s after "
            f"the release, {failed} failed (first: {errors[:1]})"
        )
    finally:
        for w in workers:
            w.__exit__(None, None, None)
    assert len(grants) == waiters
    return waiters / (max(g[2] for g in grants) - released), grants


def out_of_order(grants: list[list[float]]) -> int:
    """Grants given to a waiter of an earlier wave after one of a later wave had been served."""
    latest, late = -1, 0
    for wave, _, _ in sorted(grants, key=lambda g: g[1]):
        if wave < latest:
            late += 1
        latest = max(latest, int(wave))
    return late


@pytest.mark.parametrize("processes", [1, 4])
def test_ten_thousand_waiters_are_served_in_arrival_order(redis_url: str, prefix: str, processes: int) -> None:
    url = with_prefix(redis_url, prefix)
    small = max(serve(url, "hot-100", 100, processes)[0] for _ in range(2))
    runs = [serve(url, f"hot-10000-{k}", 10_000, processes) for k in range(2)]  # best of two, like the 100
    large = max(rate for rate, _ in runs)
    grants = [g for _, run in runs for g in run]
    late = sum(out_of_order(run) for _, run in runs)
    figure(f"waiters {processes} processes", {"served": len(grants), "out_of_order": late, "rate_100": small, "rate_10000": large})
    assert late == 0, f"{late} of {len(grants)} waiters (two runs) were served after waiters that arrived a wave later"
    assert large >= 0.5 * small, (
        f"10,000 waiters were served at {large:.0f}/s, {large / small:.2f} of the {small:.0f}/s of 100 waiters"
    )
