"""The promises of limits under real contention, on every backend (memory, redis).

Threads and tasks really compete; each admission's time is read from the store's
own clock (``Permit.admitted_at``: monotonic in memory, the server's on Redis), so
every sliding window is checked exactly, with no allowance for scheduling noise.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from agentdiff_coordination import CoordinationTimeoutError, limit

from .support import HANG, Occupancy, max_window, run_threads, wait_until, windows_over

RATE, PERIOD = 50, 1.0


def test_threads_never_exceed_the_rate_in_any_window_and_use_it_in_full(backend: str) -> None:
    api = limit("api", requests=f"{RATE}/s")
    admitted: list[tuple[float, int]] = []
    mutex = threading.Lock()

    def client() -> None:
        for _ in range(10):
            with api as permit:
                with mutex:
                    admitted.append((permit.admitted_at, 1))

    run_threads([client] * 16)  # 160 requests: 3.2 periods of demand at once
    assert len(admitted) == 160
    assert windows_over(admitted, PERIOD, RATE) == 0
    first = min(t for t, _ in admitted)
    in_three_periods = sum(1 for t, _ in admitted if t < first + 3 * PERIOD)
    assert in_three_periods >= 0.95 * 3 * RATE


def test_tasks_never_exceed_the_rate_and_the_loop_keeps_running(backend: str) -> None:
    api = limit("api", requests=f"{RATE}/s")

    async def main() -> tuple[list[tuple[float, int]], int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        async def client() -> list[tuple[float, int]]:
            out = []
            for _ in range(5):
                async with api as permit:
                    out.append((permit.admitted_at, 1))
            return out

        tick_task = asyncio.create_task(ticker())
        results = await asyncio.gather(*(client() for _ in range(24)))  # 120 requests
        stop.set()
        await tick_task
        return [a for r in results for a in r], ticks

    admitted, ticks = asyncio.run(main())
    assert len(admitted) == 120
    assert windows_over(admitted, PERIOD, RATE) == 0
    first = min(t for t, _ in admitted)
    assert sum(1 for t, _ in admitted if t < first + 2 * PERIOD) >= 0.95 * 2 * RATE
    # the waits spanned two periods; a loop blocked by a waiter would not have ticked meanwhile
    assert ticks >= 20


def test_threads_and_tasks_share_one_weighted_rate(backend: str) -> None:
    tokens = limit("tokens", rate="600/s")
    admitted: list[tuple[float, int]] = []
    mutex = threading.Lock()

    def sync_client(cost: int) -> None:
        for _ in range(6):
            with tokens(cost=cost) as permit:
                with mutex:
                    admitted.append((permit.admitted_at, cost))

    def async_clients() -> None:
        async def one(cost: int) -> None:
            for _ in range(6):
                async with tokens(cost=cost) as permit:
                    with mutex:
                        admitted.append((permit.admitted_at, cost))

        async def main() -> None:
            await asyncio.gather(*(one(c) for c in (7, 20, 45, 90)))

        asyncio.run(main())

    run_threads([lambda c=c: sync_client(c) for c in (1, 13, 60, 120)] + [async_clients])
    assert sum(c for _, c in admitted) == 6 * (1 + 13 + 60 + 120 + 7 + 20 + 45 + 90)
    assert max_window(admitted, PERIOD) <= 600


def test_concurrency_never_exceeds_its_slots_and_reaches_them(backend: str) -> None:
    slots = limit("slots", concurrency=3)
    inside = Occupancy()
    all_three = threading.Barrier(3, timeout=HANG)  # passes only if three hold a slot at once
    first_round = threading.Semaphore(3)

    def worker() -> None:
        for _ in range(5):
            with slots, inside:
                if first_round.acquire(blocking=False):
                    all_three.wait()

    run_threads([worker] * 12)
    assert inside.entries == 60
    assert inside.most == 3
    assert slots.usage().holders == 0


def test_concurrency_with_tasks_never_exceeds_its_slots(backend: str) -> None:
    slots = limit("slots", concurrency=2)
    inside = Occupancy()

    async def main() -> None:
        both = asyncio.Event()

        async def worker() -> None:
            for _ in range(4):
                async with slots:
                    with inside:
                        if inside.inside == 2:
                            both.set()
                        await asyncio.wait_for(both.wait(), HANG)
                        await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(8)))

    asyncio.run(main())
    assert inside.entries == 32
    assert inside.most == 2


def test_a_large_cost_waiting_first_is_admitted_before_later_small_ones(backend: str) -> None:
    tokens = limit("tokens", rate="100/s")
    first = tokens.acquire(100)  # the window is full for a whole period
    order: list[str] = []
    mutex = threading.Lock()

    def big() -> None:
        with tokens(cost=100):
            with mutex:
                order.append("big")

    def small() -> None:
        with tokens(cost=1):
            with mutex:
                order.append("small")

    big_thread = threading.Thread(target=big)
    big_thread.start()
    wait_until(lambda: tokens.usage().waiting == 1, "the large request to queue")
    run_threads([small] * 10)  # they would fit long before the large one: they must not pass it
    big_thread.join(HANG)
    first.release()
    assert order == ["big"] + ["small"] * 10


def test_a_timeout_names_the_limit_and_leaves_no_waiter(backend: str) -> None:
    api = limit("openai_api", requests="1/min")
    api.acquire()
    with pytest.raises(CoordinationTimeoutError, match="openai_api") as info:
        api.acquire(timeout=0.2)
    assert info.value.resource == "openai_api"
    with pytest.raises(CoordinationTimeoutError, match="openai_api"):
        api.acquire(timeout=0)
    with pytest.raises(CoordinationTimeoutError, match="openai_api"):
        asyncio.run(api.acquire_async(timeout=0.1))
    assert api.usage().waiting == 0


def test_a_cancelled_waiter_leaves_the_queue_and_the_next_is_served(backend: str) -> None:
    slots = limit("slots", concurrency=1)

    async def main() -> None:
        held = await slots.acquire_async()
        doomed = asyncio.create_task(slots.acquire_async())
        while slots.usage().waiting < 1:
            await asyncio.sleep(0.002)
        nxt = asyncio.create_task(slots.acquire_async())
        while slots.usage().waiting < 2:
            await asyncio.sleep(0.002)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await held.release_async()
        permit = await asyncio.wait_for(nxt, HANG)  # served though the one ahead of it left
        await permit.release_async()

    asyncio.run(main())
    wait_until(lambda: slots.usage().waiting == 0, "the cancelled waiter to leave the queue")
    assert slots.usage().holders == 0


def test_reporting_less_admits_a_waiter_at_once(backend: str) -> None:
    tokens = limit("tokens", rate="100/min")
    permit = tokens.acquire(90)
    results: list[float] = []
    waiter = threading.Thread(target=lambda: results.append(tokens.acquire(50).admitted_at))
    waiter.start()
    wait_until(lambda: tokens.usage().waiting == 1, "the request of 50 to queue")
    permit.report(20)  # the call used 20 of the 90 estimated: 50 fit now, not in a minute
    waiter.join(HANG)
    assert results and tokens.usage().used[0][2] == 70


def test_a_slot_is_released_when_the_body_raises(backend: str) -> None:
    slots = limit("slots", concurrency=1)
    for _ in range(3):
        with pytest.raises(KeyError):
            with slots:
                raise KeyError("boom")
    assert slots.usage().holders == 0
    with slots.acquire(timeout=0):
        pass
