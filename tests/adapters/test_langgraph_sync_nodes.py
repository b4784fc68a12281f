"""A sync node's lock stays held until its body returns, whatever LangGraph does to the task.

Under ``ainvoke`` LangGraph runs a sync node in a worker thread; when a sibling branch
fails, LangGraph cancels the task awaiting that thread, but the thread runs on. The lock
must stay with the body until it returns, and the adapter must leave what LangGraph
accepts or refuses (``add_node(..., timeout=...)`` on a sync node) unchanged.
"""

from __future__ import annotations

import asyncio
import operator
import threading
from typing import Annotated, Any

import pytest

pytest.importorskip("langgraph")

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from agentdiff_coordination import coordinate, drain
from agentdiff_coordination.adapters.langgraph import coordinate_graph
from tests.adapters.langgraph_nodes import EventLog, wait_until
from tests.adapters.stragglers import Straggler, lock_is_free

pytestmark = pytest.mark.timeout(60)


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


class SiblingFails(RuntimeError):
    pass


def failing_sibling_graph(writer: Any, coordinated: bool) -> Any:
    """START -> (writer: sync, holds "ledger"; boom: async, fails once writer is inside)."""
    straggler: Straggler = writer.straggler

    async def boom(state: Log) -> Log:
        await straggler.inside()
        raise SiblingFails("the sibling branch fails")

    builder = StateGraph(Log)
    builder.add_node("writer", writer)
    builder.add_node("boom", boom)
    builder.add_edge(START, "writer")
    builder.add_edge(START, "boom")
    if coordinated:
        coordinate_graph(builder, locks={"writer": "ledger"})
    return builder.compile()


def writer_node(straggler: Straggler) -> Any:
    def writer(state: Log) -> Log:
        straggler.work()
        return {"log": ["writer"]}

    writer.straggler = straggler  # type: ignore[attr-defined]
    return writer


def run_until_the_sibling_fails(graph: Any, straggler: Straggler, log: EventLog | None = None) -> None:
    async def main() -> None:
        with pytest.raises(SiblingFails):
            await graph.ainvoke({"log": []})
        try:  # still inside the loop: asyncio.run would wait for the worker thread on its way out
            assert straggler.entered.is_set() and not straggler.finished.is_set()  # LangGraph gave up on it
            assert not lock_is_free("ledger"), "the lock was given away while the sync node still runs"
            if log is not None:
                await drain()
                assert "writer_cancelled" not in log.names()
        finally:
            straggler.go.set()

    asyncio.run(main())
    assert straggler.finished.is_set() and wait_until(lambda: lock_is_free("ledger"))


def test_a_cancelled_sync_node_keeps_its_lock_until_its_body_returns() -> None:
    log = EventLog("writer_*")
    straggler = Straggler()
    run_until_the_sibling_fails(failing_sibling_graph(writer_node(straggler), coordinated=True), straggler, log)
    drain()
    assert log.names() == ["writer_started", "writer_complete"]


def test_the_same_node_decorated_directly_keeps_its_lock_too() -> None:
    """The reference: ``@coordinate`` on the bare function already holds the lock in the thread."""
    straggler = Straggler()
    writer = coordinate("writer", lock_name="ledger")(writer_node(straggler))
    writer.straggler = straggler
    run_until_the_sibling_fails(failing_sibling_graph(writer, coordinated=False), straggler)


def _sync_node(state: Log) -> Log:
    return {"log": ["sync"]}


async def _async_node(state: Log) -> Log:
    return {"log": ["async"]}


def _compile_error(node: Any, coordinated: bool) -> str | None:
    builder = StateGraph(Log)
    builder.add_node("node", node, timeout=1.0)
    builder.add_edge(START, "node")
    if coordinated:
        coordinate_graph(builder, locks={"node": "ledger"})
    try:
        builder.compile()
    except ValueError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("node", [_sync_node, _async_node], ids=["sync", "async"])
def test_coordinate_graph_changes_nothing_langgraph_accepts_or_refuses_about_timeouts(node: Any) -> None:
    assert _compile_error(node, coordinated=True) == _compile_error(node, coordinated=False)


def test_a_sync_node_with_a_timeout_is_still_refused_at_compile_time() -> None:
    error = _compile_error(_sync_node, coordinated=True)
    assert error is not None and "sync" in error


def test_an_async_node_with_a_timeout_still_runs_and_releases_its_lock() -> None:
    builder = StateGraph(Log)
    builder.add_node("node", _async_node, timeout=5.0)
    builder.add_edge(START, "node")
    coordinate_graph(builder, locks={"node": "ledger"})
    assert asyncio.run(builder.compile().ainvoke({"log": []})) == {"log": ["async"]}
    assert lock_is_free("ledger")


def test_sync_nodes_under_ainvoke_still_run_in_worker_threads_and_contend_for_real() -> None:
    threads: set[int] = set()
    inside, peak = [0], [0]
    mutex = threading.Lock()

    def worker(state: Log) -> Log:
        with mutex:
            threads.add(threading.get_ident())
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        wait_until(lambda: False, 0.02)
        with mutex:
            inside[0] -= 1
        return {"log": ["w"]}

    builder = StateGraph(Log)
    for name in ("a", "b", "c"):
        builder.add_node(name, worker)
        builder.add_edge(START, name)
    coordinate_graph(builder, locks={"a": "ledger", "b": "ledger", "c": "ledger"})
    result = asyncio.run(builder.compile().ainvoke({"log": []}))
    assert result == {"log": ["w", "w", "w"]}
    assert peak[0] == 1 and threading.get_ident() not in threads
