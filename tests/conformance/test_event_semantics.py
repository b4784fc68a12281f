"""Event semantics every backend must meet (runs once per backend: memory, redis).

Handlers run off the emitter's stack and see their events in emit order; a failing
handler is retried, then dead-lettered, without touching the emitter or the other
handlers; ``wait_for`` and ``drain`` wait for what they promise.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any

import pytest

from agentdiff_coordination import (
    CoordinationError,
    CoordinationTimeoutError,
    configure,
    current_event,
    dead_letters,
    drain,
    emit,
    unsubscribe,
    wait_for,
    when,
)

from .support import HANG, run_threads

pytestmark = pytest.mark.usefixtures("backend")


class Recorder:
    """A thread-safe list of what handlers saw."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._mutex:
            self.items.append(item)


def settle() -> None:
    assert drain(timeout=HANG) is True, "handlers were still pending after the drain timeout"


# -- emitting and matching -------------------------------------------------------------------


def test_emit_returns_a_unique_id_per_event() -> None:
    seen = Recorder()

    @when("ids")
    def handler(data: Any) -> None:
        event = current_event()
        assert event is not None
        seen.add(event.id)

    ids = [emit("ids", i) for i in range(20)]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == 20
    settle()
    assert seen.items == ids


def test_exact_and_wildcard_patterns_receive_the_matching_events() -> None:
    exact, failures, everything = Recorder(), Recorder(), Recorder()

    @when("researcher_complete")
    def on_exact(data: Any) -> None:
        exact.add(data)

    @when("*_failed")
    def on_failures(data: Any) -> None:
        failures.add(data)

    @when("researcher_*")
    def on_researcher(data: Any) -> None:
        everything.add(data)

    emit("researcher_started", "s")
    emit("researcher_complete", "c")
    emit("writer_failed", "wf")
    emit("researcher_failed", "rf")
    emit("researcher_completed_late", "x")
    settle()
    assert exact.items == ["c"]
    assert failures.items == ["wf", "rf"]
    assert everything.items == ["s", "c", "rf", "x"]


def test_sync_handlers_run_on_a_worker_thread_not_the_emitters() -> None:
    threads = Recorder()

    @when("where")
    def handler(data: Any) -> None:
        threads.add(threading.get_ident())

    emit("where")
    settle()
    assert threads.items and threads.items[0] != threading.get_ident()


def test_async_handlers_run_on_an_event_loop_off_the_emitters_thread() -> None:
    where = Recorder()

    @when("where_async")
    async def handler(data: Any) -> None:
        asyncio.get_running_loop()  # raises unless a loop runs this handler
        where.add(threading.get_ident())

    emit("where_async")
    settle()
    assert where.items and where.items[0] != threading.get_ident()


def test_emit_returns_before_a_slow_handler_finishes() -> None:
    release = threading.Event()
    finished = threading.Event()

    @when("slow")
    def handler(data: Any) -> None:
        release.wait(HANG)
        finished.set()

    emit("slow")  # would hang here if the handler ran on the emitter's stack
    assert not finished.is_set()
    release.set()
    settle()
    assert finished.is_set()


# -- order -------------------------------------------------------------------------------------


def test_each_subscription_sees_events_in_emit_order() -> None:
    first, second = Recorder(), Recorder()
    emitted: list[int] = []
    emit_mutex = threading.Lock()

    @when("ordered")
    def handler_one(data: Any) -> None:
        first.add(data)

    @when("ord*")
    async def handler_two(data: Any) -> None:
        second.add(data)

    def emitter(base: int) -> None:
        for i in range(100):
            with emit_mutex:  # fixes one global emit order for the test to compare with
                emit("ordered", base + i)
                emitted.append(base + i)

    run_threads([functools.partial(emitter, b) for b in range(0, 800, 100)])
    settle()
    assert len(emitted) == 800
    assert first.items == emitted
    assert second.items == emitted


def test_concurrent_emitters_keep_their_own_order_and_lose_nothing() -> None:
    seen = Recorder()

    @when("burst")
    def handler(data: Any) -> None:
        seen.add(tuple(data))

    def emitter(who: int) -> None:
        for i in range(150):
            emit("burst", [who, i])

    run_threads([functools.partial(emitter, w) for w in range(8)])
    settle()
    assert len(seen.items) == 8 * 150
    for who in range(8):
        assert [i for w, i in seen.items if w == who] == list(range(150))


# -- failures ------------------------------------------------------------------------------------


def test_a_failing_handler_is_retried_then_dead_lettered() -> None:
    configure(handler_retries=2, retry_delay=0)
    attempts = Recorder()
    error = RuntimeError("handler broke")

    @when("fragile")
    def handler(data: Any) -> None:
        attempts.add(data)
        raise error

    event_id = emit("fragile", {"n": 1})
    settle()
    assert len(attempts.items) == 3  # the first attempt and two retries
    letters = [d for d in dead_letters() if d.event.id == event_id]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.event.name == "fragile" and letter.event.data == {"n": 1}
    assert letter.attempts == 3
    assert "handler" in letter.handler
    assert isinstance(letter.error, RuntimeError) and "handler broke" in str(letter.error)
    assert "RuntimeError: handler broke" in letter.traceback


def test_a_handler_that_recovers_on_retry_is_not_dead_lettered() -> None:
    attempts = Recorder()

    @when("flaky", retries=3, retry_delay=0)
    def handler(data: Any) -> None:
        attempts.add(data)
        if len(attempts.items) < 3:
            raise ConnectionError("transient")

    emit("flaky", "x")
    settle()
    assert attempts.items == ["x", "x", "x"]
    assert dead_letters() == []


def test_a_failing_async_handler_is_dead_lettered_after_its_retries() -> None:
    attempts = Recorder()

    @when("fragile_async", retries=1, retry_delay=0)
    async def handler(data: Any) -> None:
        attempts.add(data)
        raise ValueError("async handler broke")

    emit("fragile_async", 5)
    settle()
    assert attempts.items == [5, 5]
    assert [d.attempts for d in dead_letters()] == [2]


def test_a_failing_handler_breaks_neither_the_emitter_nor_other_handlers() -> None:
    healthy = Recorder()

    @when("shared", retries=0)
    def broken(data: Any) -> None:
        raise KeyError(data)

    @when("shared")
    def fine(data: Any) -> None:
        healthy.add(data)

    for i in range(5):
        emit("shared", i)  # never raises
    settle()
    assert healthy.items == [0, 1, 2, 3, 4]
    assert len(dead_letters()) == 5


def test_a_failing_handler_still_sees_the_events_after_the_one_that_failed() -> None:
    seen = Recorder()

    @when("keeps_going", retries=0)
    def handler(data: Any) -> None:
        seen.add(data)
        if data == 1:
            raise RuntimeError("one bad event")

    for i in range(4):
        emit("keeps_going", i)
    settle()
    assert seen.items == [0, 1, 2, 3]


# -- wait_for ------------------------------------------------------------------------------------


def test_wait_for_blocks_until_a_matching_event_and_returns_its_data() -> None:
    stop = threading.Event()

    def keep_emitting() -> None:
        # emits until the waiter has seen one: only events after wait_for() count
        while not stop.is_set():
            emit("report_ready", {"pages": 3})
            stop.wait(0.005)

    t = threading.Thread(target=keep_emitting, daemon=True)
    t.start()
    try:
        assert wait_for("report_*", timeout=HANG) == {"pages": 3}
    finally:
        stop.set()
        t.join(HANG)


def test_async_wait_for_returns_the_data_of_the_next_event_only() -> None:
    async def main() -> Any:
        emit("tick", "before")  # emitted before the wait: must not count
        waiting = wait_for("tick", timeout=HANG)
        emit("tick", "after")
        return await waiting

    assert asyncio.run(main()) == "after"


def test_async_wait_for_does_not_block_the_loop() -> None:
    async def main() -> Any:
        async def emit_later() -> None:
            await asyncio.sleep(0)
            emit("later", 42)

        waiting = wait_for("later", timeout=HANG)
        task = asyncio.create_task(emit_later())  # can only run if the wait yields the loop
        data = await waiting
        await task
        return data

    assert asyncio.run(main()) == 42


def test_wait_for_times_out_with_an_error_naming_the_pattern() -> None:
    with pytest.raises(CoordinationTimeoutError) as info:
        wait_for("never_*", timeout=0.05)
    assert "never_*" in str(info.value)
    assert isinstance(info.value, TimeoutError)

    async def main() -> None:
        await wait_for("never_async", timeout=0.05)

    with pytest.raises(CoordinationTimeoutError) as ainfo:
        asyncio.run(main())
    assert "never_async" in str(ainfo.value)


# -- drain ---------------------------------------------------------------------------------------


def test_drain_waits_for_chains_of_handlers() -> None:
    gate = threading.Event()
    reached = Recorder()

    @when("chain_1")
    def first(data: Any) -> None:
        gate.wait(HANG)  # still running when drain() starts
        emit("chain_2", data + 1)

    @when("chain_2")
    async def second(data: Any) -> None:
        await asyncio.sleep(0)
        emit("chain_3", data + 1)

    @when("chain_3")
    def third(data: Any) -> None:
        reached.add(data)

    emit("chain_1", 1)
    threading.Timer(0.05, gate.set).start()
    assert drain(timeout=HANG) is True
    assert reached.items == [3]


def test_drain_returns_false_when_the_timeout_passes_first() -> None:
    release = threading.Event()

    @when("stuck")
    def handler(data: Any) -> None:
        release.wait(HANG)

    emit("stuck")
    try:
        assert drain(timeout=0.05) is False
    finally:
        release.set()
    assert drain(timeout=HANG) is True


def test_drain_inside_a_handler_is_a_clear_error() -> None:
    errors = Recorder()

    @when("drain_inside")
    def handler(data: Any) -> None:
        try:
            drain(timeout=1)
        except CoordinationError as exc:
            errors.add(exc)

    @when("drain_inside_async")
    async def ahandler(data: Any) -> None:
        try:
            await drain(timeout=1)
        except CoordinationError as exc:
            errors.add(exc)

    emit("drain_inside")
    emit("drain_inside_async")
    settle()
    assert len(errors.items) == 2
    for exc in errors.items:
        assert "drain()" in str(exc) and "handler" in str(exc)


def test_async_drain_waits_without_blocking_the_loop() -> None:
    loop_alive = threading.Event()

    @when("adrain")
    def handler(data: Any) -> None:
        loop_alive.wait(HANG)  # finishes only once the loop has ticked during the drain

    async def main() -> bool:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 100:
                    loop_alive.set()
                await asyncio.sleep(0)

        emit("adrain")
        t = asyncio.create_task(ticker())
        idle = await drain(timeout=HANG)
        t.cancel()
        return bool(idle)

    assert asyncio.run(main()) is True
    assert loop_alive.is_set()


# -- handler context and unsubscribe -------------------------------------------------------------


def test_current_event_inside_a_handler_gives_name_id_sender_and_time() -> None:
    seen = Recorder()

    @when("meta_*")
    def handler(data: Any) -> None:
        seen.add(current_event())

    @when("meta_*")
    async def ahandler(data: Any) -> None:
        seen.add(current_event())

    before = time.time()
    event_id = emit("meta_check", {"k": 1}, sender="planner")
    after = time.time()
    settle()
    assert current_event() is None  # outside any handler
    assert len(seen.items) == 2
    for event in seen.items:
        assert event.name == "meta_check"
        assert event.id == event_id
        assert event.sender == "planner"
        assert event.data == {"k": 1}
        assert before <= event.timestamp <= after


def test_unsubscribe_stops_delivery() -> None:
    stopped, kept = Recorder(), Recorder()

    @when("sub")
    def handler(data: Any) -> None:
        stopped.add(data)

    @when("sub")
    def other(data: Any) -> None:
        kept.add(data)

    emit("sub", 1)
    settle()
    assert unsubscribe(handler) == 1
    emit("sub", 2)
    settle()
    assert stopped.items == [1]
    assert kept.items == [1, 2]  # the event was delivered: only the unsubscribed handler missed it


def test_a_handler_is_still_a_plain_function() -> None:
    @when("plain")
    def handler(data: Any) -> str:
        """Doc."""
        return f"called with {data}"

    assert handler(3) == "called with 3"
    assert handler.__name__ == "handler" and handler.__doc__ == "Doc."
