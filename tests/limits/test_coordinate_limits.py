"""``coordinate(name, limit=...)``: the limit around each call, after the locks, always given back."""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

import pytest

from agentdiff_coordination import CoordinationTimeoutError, coordinate, drain, limit, lock, when

from .support import HANG, Occupancy, run_threads, wait_until


def test_a_coordinated_step_takes_its_limit_around_each_call(backend: str) -> None:
    limit("llm", concurrency=2)
    inside = Occupancy()
    both = threading.Barrier(2, timeout=HANG)
    first_two = threading.Semaphore(2)

    @coordinate("ask", limit="llm")
    def ask(i: int) -> int:
        with inside:
            if first_two.acquire(blocking=False):
                both.wait()  # two calls inside at once: the limit lets two in
            return i

    results = run_threads([lambda i=i: ask(i) for i in range(10)])
    assert sorted(results) == list(range(10))
    assert inside.most == 2
    assert limit("llm").usage().holders == 0


def test_an_async_step_takes_its_limit_and_counts_each_call(backend: str) -> None:
    llm = limit("llm", requests="1000/min", concurrency=1)
    inside = Occupancy()

    @coordinate("ask", limit="llm")
    async def ask(i: int) -> int:
        with inside:
            await asyncio.sleep(0)
            return i

    async def main() -> list[int]:
        return list(await asyncio.gather(*(ask(i) for i in range(20))))

    assert asyncio.run(main()) == list(range(20))
    assert inside.most == 1
    usage = llm.usage()
    assert usage.used[0][2] == 20 and usage.holders == 0


def test_the_limit_is_taken_after_the_locks(backend: str) -> None:
    llm = limit("llm", concurrency=1)
    held = llm.acquire()

    @coordinate("writer", lock_name="db", limit="llm")
    def write() -> str:
        return "written"

    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(write()))
    worker.start()
    wait_until(lambda: llm.usage().waiting == 1, "the step to wait for the limit")
    # it waits for the limit while holding its lock: the call is made as soon as it is admitted
    with pytest.raises(CoordinationTimeoutError, match="db"):
        with lock("db", timeout=0):
            pass
    held.release()
    worker.join(HANG)
    assert result == ["written"]
    with lock("db", timeout=0):
        pass


def test_a_limit_timeout_names_the_limit_releases_the_locks_and_reports_failure(backend: str) -> None:
    llm = limit("openai_api", requests="1/min")
    llm.acquire()
    failures: list[dict[str, Any]] = []

    @when("ask_failed")
    def failed(data: dict[str, Any]) -> None:
        failures.append(data)

    @coordinate("ask", lock_name="db", timeout=0.1, limit="openai_api")
    def ask() -> None:
        raise AssertionError("never called: the limit is full")

    with pytest.raises(CoordinationTimeoutError, match="openai_api") as info:
        ask()
    assert info.value.resource == "openai_api"
    assert drain(HANG)
    assert failures and failures[0]["error_type"] == "CoordinationTimeoutError"
    with lock("db", timeout=0):  # the lock was given back
        pass
    assert llm.usage().waiting == 0


def test_an_undeclared_limit_is_a_clear_error_at_call_time(backend: str) -> None:
    @coordinate("ask", limit="nowhere")
    def ask() -> None:
        pass

    with pytest.raises(LookupError, match="limit 'nowhere' is not declared"):
        ask()
    limit("nowhere", requests="10/s")  # declared later: the step finds it
    ask()


def test_a_step_reports_the_tokens_it_used(backend: str) -> None:
    tokens = limit("tokens", rate="10000/min")

    @coordinate("ask", limit="tokens")
    def ask() -> str:
        limit("tokens").report(1234)
        return "answer"

    assert ask() == "answer"
    assert tokens.usage().used[0][2] == 1234


def test_the_slot_is_given_back_when_the_step_raises_or_is_cancelled(backend: str) -> None:
    llm = limit("llm", concurrency=1)

    @coordinate("boom", limit="llm")
    def boom() -> None:
        raise ValueError("boom")

    started = asyncio.Event

    @coordinate("slow", limit="llm")
    async def slow(entered: asyncio.Event) -> None:
        entered.set()
        await asyncio.sleep(HANG)

    with pytest.raises(ValueError):
        boom()
    assert llm.usage().holders == 0

    async def cancel_inside() -> None:
        entered = started()
        task = asyncio.create_task(slow(entered))
        await asyncio.wait_for(entered.wait(), HANG)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_inside())
    assert llm.usage().holders == 0
    llm.acquire(timeout=0).release()


def test_generators_hold_the_slot_while_they_run(backend: str) -> None:
    llm = limit("llm", concurrency=1)

    @coordinate("stream", limit="llm")
    def stream() -> Iterator[int]:
        yield 1
        yield 2

    @coordinate("astream", limit="llm")
    async def astream() -> AsyncIterator[int]:
        yield 1
        yield 2

    items = stream()
    assert next(items) == 1
    assert llm.usage().holders == 1
    assert list(items) == [2]
    assert llm.usage().holders == 0

    async def consume() -> list[int]:
        out = []
        async for item in astream():
            out.append(item)
            assert llm.usage().holders == 1
        return out

    assert asyncio.run(consume()) == [1, 2]
    assert llm.usage().holders == 0


def test_coordinator_call_and_acall_take_the_limit(backend: str) -> None:
    llm = limit("llm", requests="100/min")
    c = coordinate("step", limit="llm")
    assert c.call(lambda x: x * 2, 21) == 42

    async def twice(x: int) -> int:
        return x * 2

    assert asyncio.run(c.acall(twice, 4)) == 8
    with c.run((), {}) as run:
        run.result = "by hand"
    assert llm.usage().used[0][2] == 3


class GraphState(TypedDict):
    seen: Annotated[list[str], operator.add]


def test_a_coordinated_langgraph_node_takes_its_limit(backend: str) -> None:
    from langgraph.graph import END, START, StateGraph

    llm = limit("llm", requests="100/min", concurrency=1)
    inside = Occupancy()

    def node(name: str) -> Any:
        @coordinate(name, limit="llm")
        def run(state: GraphState) -> dict[str, list[str]]:
            with inside:
                return {"seen": [name]}

        return run

    builder = StateGraph(GraphState)
    for name in ("a", "b", "c"):
        builder.add_node(name, node(name))
        builder.add_edge(START, name)
        builder.add_edge(name, END)
    result = builder.compile().invoke({"seen": []})
    assert sorted(result["seen"]) == ["a", "b", "c"]
    assert inside.most == 1  # three parallel nodes, one slot
    assert llm.usage().used[0][2] == 3 and llm.usage().holders == 0
