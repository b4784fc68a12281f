"""Lock semantics every backend must meet (runs once per backend: memory, redis).

Mutual exclusion across threads, tasks and event loops; arrival order for sync and
async waiters together; non-blocking async waits; timeouts that name the lock and
its holder; re-entry by one call chain; all-or-none multi-name locks that cannot
deadlock; cancellation that leaks nothing; growing fencing numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import random
import threading
from collections.abc import Generator, Iterator

import pytest

from agentdiff_coordination import CoordinationTimeoutError, coordinate, lock

from .support import (
    HANG,
    LoopThread,
    Occupancy,
    in_fresh_thread,
    is_free,
    lock_waiters,
    run_threads,
    wait_until,
    work,
)

pytestmark = pytest.mark.usefixtures("backend")


# -- mutual exclusion --------------------------------------------------------------------


def test_one_thread_at_a_time_inside_a_lock() -> None:
    room = Occupancy()

    def worker() -> None:
        for _ in range(60):
            with lock("mx-threads"):
                room.enter()
                work()
                room.leave()

    run_threads([worker] * 8)
    assert room.entries == 8 * 60
    assert room.violations == 0 and room.max_inside == 1


def test_one_task_at_a_time_inside_a_lock() -> None:
    room = Occupancy()

    async def task() -> None:
        for _ in range(3):
            async with lock("mx-tasks"):
                room.enter()
                await asyncio.sleep(0)  # let every other task run while inside
                work(50)
                room.leave()

    async def main() -> None:
        await asyncio.gather(*(task() for _ in range(300)))

    asyncio.run(main())
    assert room.entries == 900
    assert room.violations == 0 and room.max_inside == 1


def test_threads_and_several_event_loops_share_one_lock() -> None:
    room = Occupancy()

    def thread_worker() -> None:
        for _ in range(40):
            with lock("mx-mixed"):
                room.enter()
                work()
                room.leave()

    def loop_worker() -> None:
        async def task() -> None:
            for _ in range(8):
                async with lock("mx-mixed"):
                    room.enter()
                    await asyncio.sleep(0)
                    work()
                    room.leave()

        async def main() -> None:
            await asyncio.gather(*(task() for _ in range(10)))

        asyncio.run(main())

    run_threads([thread_worker] * 4 + [loop_worker] * 3)
    assert room.entries == 4 * 40 + 3 * 10 * 8
    assert room.violations == 0 and room.max_inside == 1


def test_one_lock_object_is_shared_by_many_threads_and_tasks() -> None:
    shared = lock("mx-shared-object")
    room = Occupancy()

    def thread_worker() -> None:
        for _ in range(50):
            with shared:
                room.enter()
                work()
                room.leave()

    def loop_worker() -> None:
        async def task() -> None:
            for _ in range(10):
                async with shared:
                    room.enter()
                    await asyncio.sleep(0)
                    room.leave()

        async def main() -> None:
            await asyncio.gather(*(task() for _ in range(10)))

        asyncio.run(main())

    run_threads([thread_worker] * 6 + [loop_worker])
    assert room.entries == 6 * 50 + 100
    assert room.violations == 0


def test_lock_decorates_sync_and_async_functions() -> None:
    room = Occupancy()

    @lock("mx-decorated")
    def step(i: int) -> int:
        """A sync step."""
        room.enter()
        work()
        room.leave()
        return i

    @lock("mx-decorated")
    async def astep(i: int) -> int:
        """An async step."""
        room.enter()
        await asyncio.sleep(0)
        room.leave()
        return i

    assert step.__name__ == "step" and step.__doc__ == "A sync step."
    assert astep.__name__ == "astep" and asyncio.iscoroutinefunction(astep)

    def thread_worker() -> list[int]:
        return [step(i) for i in range(40)]

    def loop_worker() -> list[int]:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(astep(i) for i in range(100))))

        return asyncio.run(main())

    results = run_threads([thread_worker] * 4 + [loop_worker])
    assert sorted(len(r) for r in results) == [40, 40, 40, 40, 100]
    assert room.violations == 0


# -- arrival order -------------------------------------------------------------------------


def test_sync_and_async_waiters_are_served_in_arrival_order() -> None:
    served: list[int] = []
    served_mutex = threading.Lock()

    def record(i: int) -> None:
        with served_mutex:
            served.append(i)

    def sync_waiter(i: int) -> None:
        with lock("fifo"):
            record(i)

    async def async_waiter(i: int) -> None:
        async with lock("fifo"):
            record(i)
            await asyncio.sleep(0)

    n = 12
    with LoopThread("fifo-loop-a") as loop_a, LoopThread("fifo-loop-b") as loop_b:
        threads: list[threading.Thread] = []
        futures = []
        with lock("fifo"):
            for i in range(n):
                kind = i % 3
                if kind == 0:
                    t = threading.Thread(target=sync_waiter, args=(i,), daemon=True)
                    t.start()
                    threads.append(t)
                else:
                    futures.append((loop_a if kind == 1 else loop_b).submit(async_waiter(i)))
                # the next waiter arrives only once this one is queued
                wait_until(lambda: lock_waiters() == i + 1, f"waiter {i} to queue")
        for f in futures:  # an async waiter's error surfaces here, before threads hang on it
            f.result(HANG)
        for t in threads:
            t.join(HANG)
            assert not t.is_alive(), "a sync waiter was never served"
    assert served == list(range(n))


def test_async_waiting_never_blocks_the_event_loop() -> None:
    holding = threading.Event()
    ticks_seen = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with lock("nonblocking"):
            holding.set()
            # hold until the loop has proved it keeps running while a task waits
            release.wait(HANG)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 200:
                    ticks_seen.set()
                    release.set()
                await asyncio.sleep(0)

        tick_task = asyncio.create_task(ticker())
        async with lock("nonblocking"):
            pass
        tick_task.cancel()
        return ticks

    t = threading.Thread(target=holder, daemon=True)
    t.start()
    assert holding.wait(HANG)
    ticks = asyncio.run(main())
    t.join(HANG)
    assert ticks_seen.is_set(), "the loop stopped ticking while a task waited for the lock"
    assert ticks >= 200


# -- timeouts ------------------------------------------------------------------------------


@contextlib.contextmanager
def held_elsewhere(name: str, holder_name: str | None = None) -> Iterator[None]:
    """Hold ``name`` on another thread (as coordinated step ``holder_name`` if given)."""
    holding = threading.Event()
    done = threading.Event()

    def hold() -> None:
        if holder_name is None:
            with lock(name):
                holding.set()
                done.wait(HANG)
        else:
            @coordinate(holder_name, lock_name=name)
            def step() -> None:
                holding.set()
                done.wait(HANG)

            step()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert holding.wait(HANG)
    try:
        yield
    finally:
        done.set()
        t.join(HANG)


def test_timeout_raises_coordination_timeout_error_naming_lock_and_holder() -> None:
    with held_elsewhere("db", holder_name="nightly_writer"):
        with pytest.raises(CoordinationTimeoutError) as info:
            with lock("db", timeout=0.05):
                pass
    err = info.value
    assert isinstance(err, TimeoutError)
    assert "'db'" in str(err) and "nightly_writer" in str(err)
    assert err.resource == "db"
    assert err.holder is not None and "nightly_writer" in err.holder


def test_async_timeout_raises_coordination_timeout_error_naming_lock_and_holder() -> None:
    async def main() -> None:
        async with lock("adb", timeout=0.05):
            pass

    with held_elsewhere("adb", holder_name="async_writer"):
        with pytest.raises(CoordinationTimeoutError) as info:
            asyncio.run(main())
    assert "'adb'" in str(info.value) and "async_writer" in str(info.value)


def test_timeout_zero_takes_a_free_lock_and_fails_at_once_on_a_held_one() -> None:
    with lock("try-once", timeout=0):
        pass
    # the holder keeps the lock until after the attempt: a waiting attempt would hang here
    with held_elsewhere("try-once"):
        with pytest.raises(CoordinationTimeoutError):
            with lock("try-once", timeout=0):
                pass

        async def attempt() -> None:
            async with lock("try-once", timeout=0):
                pass

        with pytest.raises(CoordinationTimeoutError):
            asyncio.run(attempt())
    assert is_free("try-once")


def test_a_timed_out_waiter_leaves_the_queue() -> None:
    with held_elsewhere("leaves-queue"):
        with pytest.raises(CoordinationTimeoutError):
            with lock("leaves-queue", timeout=0.05):
                pass
    # had the timed-out waiter stayed queued, it would be handed the lock and keep it
    assert is_free("leaves-queue")


# -- re-entry --------------------------------------------------------------------------------


def test_nested_with_in_one_call_chain_reenters() -> None:
    with lock("re"):
        with lock("re", timeout=0):
            with lock(["re", "re-other"], timeout=0):
                assert not is_free("re")
        assert not is_free("re")
    assert is_free("re") and is_free("re-other")


def test_a_decorated_function_calling_another_reenters() -> None:
    @lock("re-deco")
    def inner() -> str:
        return "inner"

    @lock("re-deco", timeout=0.5)
    def outer() -> str:
        return inner()

    assert outer() == "inner"
    assert is_free("re-deco")


def test_work_handed_to_another_thread_with_a_copied_context_reenters() -> None:
    def in_copied_context() -> str:
        with lock("re-ctx", timeout=0):
            return "reentered"

    with lock("re-ctx"):
        ctx = contextvars.copy_context()
        assert in_fresh_thread(lambda: ctx.run(in_copied_context)) == "reentered"
    assert is_free("re-ctx")


def test_asyncio_to_thread_and_child_tasks_reenter() -> None:
    def blocking_part() -> str:
        with lock("re-async", timeout=0):
            return "thread"

    async def child() -> str:
        async with lock("re-async", timeout=0):
            await asyncio.sleep(0)
            return "task"

    async def main() -> list[str]:
        async with lock("re-async"):
            return [await asyncio.to_thread(blocking_part), await asyncio.create_task(child())]

    assert asyncio.run(main()) == ["thread", "task"]
    assert is_free("re-async")


def test_a_different_call_chain_blocks() -> None:
    def other_thread() -> bool:
        try:
            with lock("re-other-chain", timeout=0):
                return True
        except CoordinationTimeoutError:
            return False

    async def unrelated_task(held: asyncio.Event) -> bool:
        await held.wait()  # try only once main holds the lock (a networked acquire takes a while)
        try:
            async with lock("re-other-chain", timeout=0.05):
                return True
        except CoordinationTimeoutError:
            return False

    async def main() -> bool:
        held = asyncio.Event()
        task = asyncio.create_task(unrelated_task(held))  # created before the lock was taken
        async with lock("re-other-chain"):
            held.set()
            return await task

    with lock("re-other-chain"):
        assert in_fresh_thread(other_thread) is False
    assert asyncio.run(main()) is False


# -- several names ---------------------------------------------------------------------------


def test_opposite_orders_from_many_threads_never_deadlock() -> None:
    rooms = {name: Occupancy() for name in "abc"}
    timeouts = 0
    mutex = threading.Lock()
    orders = [["a", "b"], ["b", "a"], ["b", "c"], ["c", "a"]]  # includes a cycle a->b->c->a

    def worker(names: list[str]) -> None:
        nonlocal timeouts
        for _ in range(40):
            try:
                with lock(names, timeout=HANG):  # only a deadlock could use up this timeout
                    for n in names:
                        rooms[n].enter()
                    work(100)
                    for n in names:
                        rooms[n].leave()
            except CoordinationTimeoutError:
                with mutex:
                    timeouts += 1

    run_threads([functools.partial(worker, names) for names in orders * 2])
    assert timeouts == 0
    assert all(room.violations == 0 for room in rooms.values())
    assert sum(room.entries for room in rooms.values()) == 8 * 40 * 2


def test_opposite_orders_from_many_tasks_never_deadlock() -> None:
    rooms = {name: Occupancy() for name in "xy"}

    async def task(names: list[str]) -> None:
        for _ in range(5):
            async with lock(names, timeout=HANG):
                for n in names:
                    rooms[n].enter()
                await asyncio.sleep(0)
                for n in names:
                    rooms[n].leave()

    async def main() -> None:
        await asyncio.gather(*(task(["x", "y"] if i % 2 else ["y", "x"]) for i in range(60)))

    asyncio.run(main())
    assert all(room.violations == 0 for room in rooms.values())
    assert rooms["x"].entries == 300


def test_several_names_are_taken_all_or_none_on_timeout() -> None:
    # "b" sorts after "a": the caller takes "a", then times out on "b", and must give "a" back
    with held_elsewhere("aon-b"):
        with pytest.raises(CoordinationTimeoutError) as info:
            with lock(["aon-b", "aon-a"], timeout=0.05):
                pass
        assert "aon-b" in str(info.value)
        assert is_free("aon-a")

        async def attempt() -> None:
            async with lock(["aon-a", "aon-b"], timeout=0.05):
                pass

        with pytest.raises(CoordinationTimeoutError):
            asyncio.run(attempt())
        assert is_free("aon-a")


# -- cancellation -----------------------------------------------------------------------------


def test_cancelling_a_waiter_at_any_point_leaks_nothing() -> None:
    """Cancel a waiting task after k loop turns while the holder releases after j turns,
    over every combination: the lock ends free whichever side wins each race."""

    async def holder(j: int, holding: asyncio.Event) -> None:
        async with lock("cancel-sweep"):
            holding.set()
            for _ in range(j):
                await asyncio.sleep(0)

    async def waiter(entered: list[int]) -> None:
        async with lock("cancel-sweep"):
            entered.append(1)
            await asyncio.sleep(0)

    async def one(k: int, j: int) -> None:
        holding = asyncio.Event()
        h = asyncio.create_task(holder(j, holding))
        await holding.wait()
        entered: list[int] = []
        w = asyncio.create_task(waiter(entered))
        for _ in range(k):
            await asyncio.sleep(0)
        w.cancel()
        await asyncio.gather(h, w, return_exceptions=True)
        # whoever won the race, nobody holds it now: a fresh chain takes it at once
        async with lock("cancel-sweep", timeout=HANG):
            pass

    async def main() -> None:
        for k, j in itertools.product(range(8), range(5)):
            await one(k, j)

    asyncio.run(main())
    assert is_free("cancel-sweep")


def test_cancelling_a_waiter_at_random_moments_leaks_nothing() -> None:
    rng = random.Random(7)

    async def main() -> None:
        tasks = []

        async def contender() -> None:
            async with lock("cancel-random"):
                await asyncio.sleep(0)

        for _ in range(40):
            tasks.append(asyncio.create_task(contender()))
        for _ in range(20):
            await asyncio.sleep(0)
            rng.choice(tasks).cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with lock("cancel-random", timeout=HANG):
            pass

    asyncio.run(main())
    assert is_free("cancel-random")


def test_cancelling_a_holder_releases_the_lock() -> None:
    async def main() -> None:
        inside = asyncio.Event()

        async def hold_forever() -> None:
            async with lock("cancel-holder"):
                inside.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(hold_forever())
        await inside.wait()
        assert not is_free("cancel-holder")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert is_free("cancel-holder")


def test_cancelling_a_multi_name_waiter_gives_back_the_names_it_had() -> None:
    async def main() -> None:
        task = asyncio.create_task(_take(["cm-a", "cm-b"]))
        # the task takes cm-a, then waits for cm-b (held on another thread)
        while is_free("cm-a"):
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with held_elsewhere("cm-b"):
        asyncio.run(main())
        assert is_free("cm-a")
    assert is_free("cm-b")


async def _take(names: list[str]) -> None:
    async with lock(names):
        pass


# -- fencing and out-of-order exits -------------------------------------------------------------


def test_fencing_numbers_increase_with_every_grant() -> None:
    seen: list[int] = []
    mutex = threading.Lock()
    shared = lock("fence")

    def worker() -> None:
        for _ in range(25):
            with shared:
                fencing = shared.fencing
                assert fencing is not None
                with mutex:  # recorded inside the lock: entry order
                    seen.append(fencing)

    run_threads([worker] * 4)
    assert len(seen) == 100
    assert seen == sorted(seen) and len(set(seen)) == 100


def test_exiting_out_of_order_keeps_the_other_holds() -> None:
    def generator_holding_a_lock() -> Generator[int, None, None]:
        with lock("ooo-gen"):
            yield 1

    gen = generator_holding_a_lock()
    next(gen)  # holds ooo-gen
    with lock("ooo-outer"):
        gen.close()  # releases ooo-gen while ooo-outer is the innermost hold
        assert is_free("ooo-gen")
        assert not is_free("ooo-outer")
        with lock("ooo-outer", timeout=0):  # still ours: re-entry works
            pass
    assert is_free("ooo-outer")

    stack_a, stack_b = contextlib.ExitStack(), contextlib.ExitStack()
    stack_a.enter_context(lock("ooo-a"))
    stack_b.enter_context(lock("ooo-b"))
    stack_a.close()  # the first taken is left first
    assert is_free("ooo-a") and not is_free("ooo-b")
    with lock("ooo-b", timeout=0):
        pass
    stack_b.close()
    assert is_free("ooo-b")
