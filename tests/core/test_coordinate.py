"""``@coordinate``: lifecycle payloads, lock release before the end events, the step's
own exception, wrapping that keeps the function's identity, every kind of callable."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import pytest

from agentdiff_coordination import CoordinationTimeoutError, coordinate, current_event, drain, lock, when
from agentdiff_coordination.core.runtime import RUNTIME
from agentdiff_coordination.core.records import Event, SubscriptionSpec

from ..conformance.support import HANG, Occupancy, in_fresh_thread, is_free, run_threads, work

STARTED_KEYS = {"args", "kwargs", "timestamp", "run_id"}
COMPLETE_KEYS = {"result", "timestamp", "duration", "run_id"}
FAILED_KEYS = {"error", "error_type", "timestamp", "duration", "run_id"}


class Lifecycle:
    """Every event of one step, as (event name, data, sender), in arrival order."""

    def __init__(self, step: str) -> None:
        self.step = step
        self._mutex = threading.Lock()
        self.events: list[tuple[str, Any, str | None]] = []

        @when(f"{step}_*")
        def record(data: Any) -> None:
            event = current_event()
            assert event is not None
            with self._mutex:
                self.events.append((event.name, data, event.sender))

    def settled(self) -> list[tuple[str, Any, str | None]]:
        assert drain(timeout=HANG)
        return list(self.events)

    def names(self) -> list[str]:
        return [name for name, _, _ in self.settled()]

    def data(self, suffix: str) -> list[Any]:
        return [d for name, d, _ in self.settled() if name == f"{self.step}_{suffix}"]


class LockProbe(SubscriptionSpec):
    """A subscription that looks at a lock the moment an event is published (on the
    emitter's thread, before any handler could run)."""

    def __init__(self, pattern: str, lock_name: str) -> None:
        super().__init__(pattern, f"probe:{pattern}")
        self.lock_name = lock_name
        self.seen: list[tuple[str, bool]] = []

    def deliver(self, event: Event, ack: Any = None) -> None:
        self.seen.append((event.name, lock(self.lock_name).locked()))
        if ack is not None:
            ack()


# -- payloads ----------------------------------------------------------------------------------


def test_started_and_complete_payloads_are_exactly_as_fixed() -> None:
    life = Lifecycle("pay")

    @coordinate("pay", lock_name="pay-lock")
    def step(a: int, b: int = 2) -> int:
        return a + b

    assert step(1, b=3) == 4
    (started_name, started, s_sender), (complete_name, complete, c_sender) = life.settled()
    assert (started_name, complete_name) == ("pay_started", "pay_complete")
    assert set(started) == STARTED_KEYS
    assert tuple(started["args"]) == (1,) and started["kwargs"] == {"b": 3}
    assert set(complete) == COMPLETE_KEYS
    assert complete["result"] == 4
    assert isinstance(complete["duration"], float) and complete["duration"] >= 0
    assert isinstance(started["timestamp"], float) and started["timestamp"] <= complete["timestamp"]
    assert started["run_id"] == complete["run_id"] and isinstance(started["run_id"], str)
    assert s_sender == c_sender == "pay"


def test_failed_payload_is_exactly_as_fixed() -> None:
    life = Lifecycle("oops")

    @coordinate("oops")
    def step() -> None:
        raise ValueError("bad input row 7")

    with pytest.raises(ValueError):
        step()
    assert life.names() == ["oops_started", "oops_failed"]
    (failed,) = life.data("failed")
    assert set(failed) == FAILED_KEYS
    assert failed["error"] == "bad input row 7"
    assert failed["error_type"] == "ValueError"
    assert failed["duration"] >= 0
    assert failed["run_id"] == life.data("started")[0]["run_id"]


def test_each_call_has_its_own_run_id_shared_by_its_events() -> None:
    life = Lifecycle("many")

    @coordinate("many", lock_name="many-lock")
    def step(i: int) -> int:
        work(50)
        return i

    run_threads([functools.partial(step, i) for i in range(10)])
    started = {d["run_id"]: d["args"][0] for d in life.data("started")}
    complete = {d["run_id"]: d["result"] for d in life.data("complete")}
    assert len(started) == 10  # ten distinct run ids
    assert started == complete  # each run's complete carries its own started's run id


# -- the lock and the end events ------------------------------------------------------------------


def test_the_lock_is_free_when_complete_and_failed_are_published() -> None:
    probe = LockProbe("probed_*", "probed-lock")
    RUNTIME.bus.add(probe)
    calls = 0

    @coordinate("probed", lock_name="probed-lock")
    def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("second call fails")

    step()
    with pytest.raises(RuntimeError):
        step()
    assert probe.seen == [
        ("probed_started", False),
        ("probed_complete", False),
        ("probed_started", False),
        ("probed_failed", False),
    ]


def test_a_complete_handler_can_take_the_same_lock_at_once() -> None:
    got_it: list[bool] = []
    handler_done = threading.Event()

    @when("writer_complete")
    @when("writer_failed")
    def follow_up(data: Any) -> None:
        try:
            with lock("ledger", timeout=0):  # fails if the step still held the lock
                got_it.append(True)
        except CoordinationTimeoutError:
            got_it.append(False)
        handler_done.set()

    @coordinate("writer", lock_name="ledger")
    def write(fail: bool) -> str:
        if fail:
            raise OSError("disk full")
        return "written"

    assert write(False) == "written"
    # the caller waits here for the handler: the lock must already be free for it
    assert handler_done.wait(HANG)
    handler_done.clear()
    with pytest.raises(OSError):
        write(True)
    assert handler_done.wait(HANG)
    assert got_it == [True, True]


def test_a_handler_may_run_a_step_coordinated_on_the_same_lock() -> None:
    life = Lifecycle("second")

    @coordinate("first", lock_name="api")
    def first() -> str:
        return "draft"

    @coordinate("second", lock_name="api", timeout=HANG)
    def second(text: str) -> str:
        return text.upper()

    @when("first_complete")
    def chain(data: Any) -> None:
        second(data["result"])

    first()
    assert life.data("complete")[0]["result"] == "DRAFT"


# -- exceptions and cancellation --------------------------------------------------------------------


def test_the_original_exception_is_reraised_unchanged() -> None:
    error = LookupError("the very same object")

    @coordinate("raiser", lock_name="raiser-lock")
    def step() -> None:
        raise error

    @coordinate("araiser", lock_name="raiser-lock")
    async def astep() -> None:
        raise error

    with pytest.raises(LookupError) as info:
        step()
    assert info.value is error
    with pytest.raises(LookupError) as ainfo:
        asyncio.run(astep())
    assert ainfo.value is error
    assert is_free("raiser-lock")


def test_cancellation_emits_cancelled_not_failed() -> None:
    life = Lifecycle("slow")

    @coordinate("slow", lock_name="slow-lock")
    async def step(inside: asyncio.Event) -> None:
        inside.set()
        await asyncio.Event().wait()

    async def main() -> None:
        inside = asyncio.Event()
        task = asyncio.create_task(step(inside))
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert life.names() == ["slow_started", "slow_cancelled"]
    (cancelled,) = life.data("cancelled")
    assert cancelled["error_type"] == "CancelledError"
    assert cancelled["run_id"] == life.data("started")[0]["run_id"]
    assert is_free("slow-lock")


def test_keyboard_interrupt_in_a_step_emits_cancelled_and_propagates() -> None:
    life = Lifecycle("interrupted")

    @coordinate("interrupted", lock_name="ki-lock")
    def step() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        step()
    assert life.names() == ["interrupted_started", "interrupted_cancelled"]
    assert is_free("ki-lock")


def test_a_lock_timeout_ends_the_started_run_as_failed() -> None:
    life = Lifecycle("late")
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock("late-lock"):
            holding.set()
            done.wait(HANG)

    @coordinate("late", lock_name="late-lock", timeout=0.05)
    def step() -> None:
        pytest.fail("ran without the lock")

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert holding.wait(HANG)
    try:
        with pytest.raises(CoordinationTimeoutError):
            step()
    finally:
        done.set()
        t.join(HANG)
    # a run that was announced is also ended
    assert life.names() == ["late_started", "late_failed"]
    assert life.data("failed")[0]["error_type"] == "CoordinationTimeoutError"
    assert "late-lock" in life.data("failed")[0]["error"]


def test_a_step_cancelled_while_waiting_for_its_lock_ends_as_cancelled() -> None:
    life = Lifecycle("queued")

    @coordinate("queued", lock_name="queued-lock")
    async def step() -> None:
        pytest.fail("ran without the lock")

    async def main() -> None:
        async with lock("queued-lock"):
            # an unrelated call chain: a task made in this context would re-enter the lock
            task = asyncio.create_task(step(), context=contextvars.Context())
            for _ in range(3):
                await asyncio.sleep(0)  # the task is now waiting for the lock
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert life.names() == ["queued_started", "queued_cancelled"]
    assert is_free("queued-lock")


# -- wrapping keeps the function ----------------------------------------------------------------------


def _sync(a: int, *, b: str = "x") -> list[str]:
    """Sync doc."""
    return [str(a), b]


async def _async(a: int, *, b: str = "x") -> list[str]:
    """Async doc."""
    return [str(a), b]


def _gen(n: int) -> Iterator[int]:
    """Gen doc."""
    yield from range(n)


async def _agen(n: int) -> AsyncIterator[int]:
    """Agen doc."""
    for i in range(n):
        yield i


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (_sync, inspect.isfunction),
        (_async, inspect.iscoroutinefunction),
        (_gen, inspect.isgeneratorfunction),
        (_agen, inspect.isasyncgenfunction),
    ],
    ids=["sync", "async", "generator", "async-generator"],
)
def test_wrapping_keeps_name_doc_signature_annotations_and_kind(fn: Any, kind: Any) -> None:
    wrapped = coordinate("kept", lock_name="kept-lock")(fn)
    assert wrapped.__name__ == fn.__name__
    assert wrapped.__qualname__ == fn.__qualname__
    assert wrapped.__doc__ == fn.__doc__
    assert wrapped.__module__ == fn.__module__
    assert wrapped.__annotations__ == fn.__annotations__
    assert inspect.signature(wrapped) == inspect.signature(fn)
    assert wrapped.__wrapped__ is fn
    assert kind(wrapped)


# -- every kind of callable ---------------------------------------------------------------------------


class Agent:
    """A class whose methods are coordinated in every way a method can be."""

    def __init__(self, name: str) -> None:
        self.name = name

    @coordinate("agent_step", lock_name="agent-lock")
    def step(self, x: int) -> str:
        return f"{self.name}:{x}"

    @coordinate("agent_astep", lock_name="agent-lock")
    async def astep(self, x: int) -> str:
        return f"{self.name}:{x}"

    @coordinate("agent_make")
    @classmethod
    def make(cls, name: str) -> Agent:
        return cls(name)

    @classmethod
    @coordinate("agent_make2")
    def make2(cls, name: str) -> Agent:
        return cls(name)

    @coordinate("agent_util")
    @staticmethod
    def util(x: int) -> int:
        return x * 2


def test_methods_classmethods_and_staticmethods_are_coordinated() -> None:
    life = Lifecycle("agent")
    agent = Agent("a1")
    assert agent.step(1) == "a1:1"
    assert asyncio.run(agent.astep(2)) == "a1:2"
    assert Agent.make("a2").name == "a2" and agent.make("a3").name == "a3"
    assert Agent.make2("a4").name == "a4"
    assert Agent.util(5) == 10 and agent.util(6) == 12
    completes = sorted(name for name in life.names() if name.endswith("_complete"))
    assert completes == sorted(
        ["agent_step_complete", "agent_astep_complete", "agent_make_complete", "agent_make_complete",
         "agent_make2_complete", "agent_util_complete", "agent_util_complete"]
    )
    assert is_free("agent-lock")


def test_a_generator_holds_its_lock_across_iteration_and_releases_at_the_end() -> None:
    life = Lifecycle("pages")

    @coordinate("pages", lock_name="pages-lock")
    def pages(n: int) -> Iterator[int]:
        for i in range(n):
            yield i
        return "all pages"  # type: ignore[return-value]

    it = pages(3)
    assert is_free("pages-lock")  # nothing happens before the first next()
    assert next(it) == 0
    assert not is_free("pages-lock")
    assert list(it) == [1, 2]
    assert is_free("pages-lock")
    assert life.names() == ["pages_started", "pages_complete"]
    assert life.data("complete")[0]["result"] == "all pages"


def test_closing_a_generator_early_releases_its_lock() -> None:
    life = Lifecycle("stream")

    @coordinate("stream", lock_name="stream-lock")
    def stream() -> Generator[int, None, None]:
        yield from range(100)

    it = stream()
    next(it)
    assert not is_free("stream-lock")
    it.close()
    assert is_free("stream-lock")
    assert life.names() == ["stream_started", "stream_cancelled"]


def test_an_async_generator_holds_its_lock_across_iteration_and_releases_on_close() -> None:
    life = Lifecycle("tokens")

    @coordinate("tokens", lock_name="tokens-lock")
    async def tokens(n: int) -> AsyncGenerator[str, None]:
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i}"

    async def main() -> None:
        collected = [t async for t in tokens(3)]
        assert collected == ["t0", "t1", "t2"]
        assert is_free("tokens-lock")
        agen = tokens(10)
        assert await agen.__anext__() == "t0"
        assert not is_free("tokens-lock")
        await agen.aclose()
        assert is_free("tokens-lock")

    asyncio.run(main())
    assert life.names().count("tokens_complete") == 1
    assert life.names().count("tokens_cancelled") == 1


def test_an_async_generator_receives_sent_values_and_thrown_errors() -> None:
    @coordinate("echo", lock_name="echo-lock")
    async def echo() -> Any:
        received = None
        while True:
            try:
                received = yield received
            except ValueError as exc:
                received = f"caught {exc}"

    async def main() -> list[Any]:
        agen = echo()
        out = [await agen.asend(None), await agen.asend("hello"), await agen.athrow(ValueError("x"))]
        await agen.aclose()
        return out

    assert asyncio.run(main()) == [None, "hello", "caught x"]
    assert is_free("echo-lock")


def test_coordinate_without_a_lock_emits_events_and_lets_callers_overlap() -> None:
    life = Lifecycle("free")
    both_inside = threading.Barrier(2, timeout=HANG)  # breaks unless two calls overlap

    @coordinate("free")
    def step() -> str:
        both_inside.wait()
        return "ok"

    assert run_threads([step, step]) == ["ok", "ok"]
    assert life.names().count("free_complete") == 2


def test_many_threads_through_one_coordinated_function_never_overlap() -> None:
    room = Occupancy()

    @coordinate("serial", lock_name="serial-lock")
    def step() -> None:
        room.enter()
        work()
        room.leave()

    def caller() -> None:
        for _ in range(50):
            step()

    run_threads([caller] * 8)
    assert room.entries == 400 and room.violations == 0


def test_many_tasks_through_one_coordinated_coroutine_never_overlap() -> None:
    room = Occupancy()

    @coordinate("aserial", lock_name="aserial-lock")
    async def step() -> None:
        room.enter()
        await asyncio.sleep(0)
        room.leave()

    async def main() -> None:
        await asyncio.gather(*(step() for _ in range(300)))

    asyncio.run(main())
    assert room.entries == 300 and room.violations == 0


def test_coordinated_steps_on_one_lock_may_call_each_other() -> None:
    @coordinate("inner", lock_name="nest-lock")
    def inner(x: int) -> int:
        return x + 1

    @coordinate("outer", lock_name="nest-lock", timeout=HANG)
    def outer(x: int) -> int:
        return inner(x) * 2

    @coordinate("recursive", lock_name="nest-lock", timeout=HANG)
    def countdown(n: int) -> int:
        return 0 if n == 0 else 1 + countdown(n - 1)

    assert outer(1) == 4
    assert countdown(20) == 20
    assert is_free("nest-lock")
    assert in_fresh_thread(lambda: outer(2)) == 6


def test_a_coordinated_callable_object_and_partial_are_wrapped() -> None:
    class Tool:
        def __call__(self, x: int) -> int:
            return x * 3

    life = Lifecycle("tool")
    tool = coordinate("tool", lock_name="tool-lock")(Tool())
    assert tool(2) == 6
    part = coordinate("tool")(functools.partial(lambda a, b: a - b, 10))
    assert part(4) == 6
    assert life.names().count("tool_complete") == 2
