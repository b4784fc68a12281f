"""Locks on the memory backend: what its ``statistics()`` and memory use must show.

The semantics every backend shares are in ``tests/conformance``; these tests look at
the reference backend's own state: nothing held and nobody queued after cancellation,
interruption or a storm of distinct names.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import itertools
import signal
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from agentdiff_coordination import CoordinationTimeoutError, LockNotHeldError, lock
from agentdiff_coordination.core import locks as core_locks
from agentdiff_coordination.core.records import BackendStatistics
from agentdiff_coordination.core.runtime import get_backend

from ..conformance.support import HANG, Occupancy, in_fresh_thread, is_free, run_threads, wait_until, work


def stats() -> BackendStatistics:
    return get_backend().statistics()


def held_and_waiting() -> tuple[int, int]:
    s = get_backend().statistics()
    return s.locks_held, s.lock_waiters


def assert_nothing_held() -> None:
    assert held_and_waiting() == (0, 0)


@pytest.fixture
def holder_thread() -> Iterator[Callable[[str], None]]:
    """Start a thread holding a lock until the test ends; yields the starter."""
    done = threading.Event()
    threads: list[threading.Thread] = []

    def start(name: str) -> None:
        holding = threading.Event()

        def hold() -> None:
            with lock(name):
                holding.set()
                done.wait(HANG)

        t = threading.Thread(target=hold, daemon=True)
        t.start()
        threads.append(t)
        assert holding.wait(HANG)

    yield start
    done.set()
    for t in threads:
        t.join(HANG)


def test_statistics_show_holders_and_waiters_while_contended(holder_thread: Callable[[str], None]) -> None:
    holder_thread("stats")
    assert stats().locks_held == 1

    async def main() -> None:
        tasks = [asyncio.create_task(_take("stats")) for _ in range(3)]
        await asyncio.sleep(0)
        assert stats().lock_waiters == 3
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert held_and_waiting() == (1, 0)


async def _take(name: str | list[str]) -> None:
    async with lock(name):
        pass


def test_cancelled_waiters_and_holders_leave_no_state() -> None:
    async def holder(j: int, holding: asyncio.Event) -> None:
        async with lock("cancel-state"):
            holding.set()
            for _ in range(j):
                await asyncio.sleep(0)

    async def main() -> None:
        for k, j in itertools.product(range(6), range(4)):
            holding = asyncio.Event()
            h = asyncio.create_task(holder(j, holding))
            await holding.wait()
            waiters = [asyncio.create_task(_take("cancel-state")) for _ in range(3)]
            for _ in range(k):
                await asyncio.sleep(0)
            waiters[1].cancel()
            if k % 2:
                h.cancel()
            await asyncio.gather(h, *waiters, return_exceptions=True)
            assert_nothing_held()

    asyncio.run(main())
    assert_nothing_held()


def test_cancelled_multi_name_waiter_leaves_no_state(holder_thread: Callable[[str], None]) -> None:
    holder_thread("multi-b")

    async def main() -> None:
        task = asyncio.create_task(_take(["multi-a", "multi-b"]))
        while stats().lock_waiters == 0:
            await asyncio.sleep(0)
        assert stats().locks_held == 2  # multi-a taken, waiting for multi-b
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert held_and_waiting() == (1, 0)

    asyncio.run(main())


def test_timed_out_sync_waiters_leave_no_state(holder_thread: Callable[[str], None]) -> None:
    holder_thread("timed-out")

    def attempt() -> bool:
        try:
            with lock("timed-out", timeout=0.02):
                return True
        except CoordinationTimeoutError:
            return False

    assert run_threads([attempt] * 6) == [False] * 6
    assert held_and_waiting() == (1, 0)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_keyboard_interrupt_of_a_sync_waiter_leaves_the_queue(holder_thread: Callable[[str], None]) -> None:
    holder_thread("interrupted")
    main_ident = threading.main_thread().ident
    assert main_ident is not None and threading.get_ident() == main_ident

    def interrupt_once_queued() -> None:
        wait_until(lambda: stats().lock_waiters == 1, "the main thread to queue")
        signal.pthread_kill(main_ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter = threading.Thread(target=interrupt_once_queued, daemon=True)
    try:
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            with lock("interrupted"):
                pytest.fail("the lock was taken although another thread held it")
    finally:
        interrupter.join(HANG)
        signal.signal(signal.SIGINT, previous)
    assert held_and_waiting() == (1, 0)


def test_released_locks_leave_no_state_and_memory_stays_bounded() -> None:
    def cycle(names: range) -> None:
        for i in names:
            with lock(f"name-{i}"):
                pass

    cycle(range(2_000))  # warm caches and free lists
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cycle(range(2_000, 102_000))
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert_nothing_held()
    assert after - before < 256 * 1024, f"100k distinct names grew traced memory by {after - before} bytes"


def test_contended_distinct_names_leave_no_state() -> None:
    def worker(offset: int) -> None:
        for i in range(300):
            with lock(f"distinct-{(i + offset) % 50}"):
                work(20)

    run_threads([functools.partial(worker, o) for o in range(6)])
    assert_nothing_held()


def test_async_tasks_on_one_lock_leave_no_state() -> None:
    room = Occupancy()

    async def task() -> None:
        async with lock("async-state"):
            room.enter()
            await asyncio.sleep(0)
            room.leave()

    async def main() -> None:
        await asyncio.gather(*(task() for _ in range(500)))

    asyncio.run(main())
    assert room.violations == 0 and room.entries == 500
    assert_nothing_held()


def test_releasing_a_lock_not_held_is_an_error() -> None:
    with pytest.raises(LockNotHeldError):
        core_locks.release_sync(object())
    held = lock("not-held")
    with pytest.raises(LockNotHeldError):
        held.__exit__(None, None, None)
    assert_nothing_held()


def test_a_child_task_that_reentered_keeps_the_lock_until_it_leaves() -> None:
    async def main() -> None:
        child_inside = asyncio.Event()
        child_may_leave = asyncio.Event()

        async def child() -> None:
            async with lock("outlives", timeout=0):
                child_inside.set()
                await child_may_leave.wait()

        async with lock("outlives"):
            task = asyncio.create_task(child())
            await child_inside.wait()
        # the parent left; the child still holds its share of the grant
        assert stats().locks_held == 1
        assert in_fresh_thread(lambda: lock("outlives").locked())
        child_may_leave.set()
        await task

    asyncio.run(main())
    assert_nothing_held()


def test_fencing_numbers_of_distinct_names_increase() -> None:
    fencings = []
    for name in ("f1", "f2", "f1", "f3"):
        held = lock(name)
        with held:
            fencings.append(held.fencing)
    assert fencings == sorted(fencings) and len(set(fencings)) == 4


def test_a_waiter_whose_event_loop_closed_does_not_strand_the_lock() -> None:
    loop = asyncio.new_event_loop()
    holding = lock("abandoned-loop")
    with holding:
        task = loop.create_task(_take("abandoned-loop"), context=contextvars.Context())  # another chain
        loop.run_until_complete(asyncio.sleep(0))  # the task is queued now
        assert stats().lock_waiters == 1
        loop.close()  # closed without cancelling the queued task: it can never run again
    # the grant could not be handed to the dead waiter: the lock is free, not stranded
    assert held_and_waiting() == (0, 0)
    assert is_free("abandoned-loop")
    assert not task.done()
