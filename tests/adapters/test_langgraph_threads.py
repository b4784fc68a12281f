"""``serialize_threads``: one LangGraph run per ``thread_id`` at a time, in one process.

Contention is real: a run's node waits until the other run has either entered the node
too (the runs overlap) or is queued for the thread's lock (they do not).
"""

from __future__ import annotations

import asyncio
import operator
import threading
from typing import Annotated, Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from agentdiff_coordination import CoordinationError, CoordinationTimeoutError
from agentdiff_coordination.adapters.langgraph import ThreadBusyError, serialize_threads
from agentdiff_coordination.adapters.langgraph_threads import thread_lock_name
from agentdiff_coordination.core.runtime import get_backend
from tests.adapters.langgraph_nodes import wait_until
from tests.adapters.stragglers import lock_is_free

pytestmark = pytest.mark.timeout(60)


class Chat(TypedDict):
    turns: Annotated[list[str], operator.add]


def waiters() -> int:
    return int(get_backend().statistics().lock_waiters)


def thread_is_free(thread_id: str) -> bool:
    return lock_is_free(thread_lock_name(thread_id))


class Probe:
    """How many runs are inside the node at once, at worst; what each run's config said."""

    def __init__(self, runs: int = 1) -> None:
        self.runs = runs  # how many runs the test starts: the last to enter waits for nobody
        self.mutex = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.entries: list[str] = []
        self.fencing: list[Any] = []
        self.hold = threading.Event()  # set: runs leave the node at once
        self.strict = False  # True: a run stays in the node until ``hold`` is set

    def node(self, state: Chat, config: RunnableConfig) -> Chat:
        with self.mutex:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.entries.append(state["turns"][-1] if state["turns"] else "")
            self.fencing.append(config["configurable"].get("coordination_fencing"))
        # wait for the other run: inside too (overlap) or queued for the thread's lock
        if self.strict:
            self.hold.wait(20)
        else:
            wait_until(lambda: self.hold.is_set() or self.inside > 1 or waiters() > 0
                       or len(self.entries) >= self.runs)
        with self.mutex:
            self.inside -= 1
        return {"turns": ["reply"]}


def chat_graph(probe: Probe) -> Any:
    builder = StateGraph(Chat)
    builder.add_node("reply", probe.node)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=InMemorySaver())


def config(thread_id: str | None) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}} if thread_id else {}


def forks(graph: Any, thread_id: str) -> int:
    """Branches off the thread's history: 0 when it is one line (one root, each parent used once)."""
    parents = [s.parent_config["configurable"]["checkpoint_id"] if s.parent_config else None
               for s in graph.get_state_history(config(thread_id))]
    return len(parents) - len(set(parents))


def run_together(run: Any, *args_list: tuple[Any, ...]) -> list[Any]:
    results: list[Any] = [None] * len(args_list)

    def one(i: int) -> None:
        try:
            results[i] = run(*args_list[i])
        except BaseException as exc:  # noqa: BLE001  reported to the test
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(args_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_two_runs_on_one_thread_overlap_and_fork_its_history_without_serialization() -> None:
    probe = Probe(runs=2)
    graph = chat_graph(probe)
    run_together(graph.invoke, ({"turns": ["a"]}, config("t")), ({"turns": ["b"]}, config("t")))
    assert probe.peak == 2 and forks(graph, "t") > 0


def test_serialized_runs_on_one_thread_never_overlap_and_keep_one_linear_history(backend: str) -> None:
    probe = Probe(runs=4)
    graph = serialize_threads(chat_graph(probe))
    results = run_together(graph.invoke, *[({"turns": [f"m{i}"]}, config("t")) for i in range(4)])
    assert all(isinstance(r, dict) for r in results), results
    assert probe.peak == 1 and forks(graph, "t") == 0
    assert len(graph.get_state(config("t")).values["turns"]) == 8  # every turn kept
    assert thread_is_free("t")


def test_enqueued_runs_are_served_in_arrival_order() -> None:
    probe = Probe()
    probe.strict = True
    graph = serialize_threads(chat_graph(probe))
    first = threading.Thread(target=graph.invoke, args=({"turns": ["first"]}, config("t")))
    first.start()
    assert wait_until(lambda: probe.entries == ["first"])
    later = []
    for name in ("second", "third", "fourth"):
        t = threading.Thread(target=graph.invoke, args=({"turns": [name]}, config("t")))
        t.start()
        later.append(t)
        assert wait_until(lambda n=len(later): waiters() == n)
    probe.hold.set()
    for t in (first, *later):
        t.join(30)
    assert probe.entries == ["first", "second", "third", "fourth"]


def test_reject_mode_refuses_a_second_run_at_once_naming_the_thread() -> None:
    probe = Probe()
    probe.strict = True
    graph = serialize_threads(chat_graph(probe), mode="reject")
    first = threading.Thread(target=graph.invoke, args=({"turns": ["first"]}, config("t-42")))
    first.start()
    assert wait_until(lambda: probe.entries == ["first"])
    with pytest.raises(ThreadBusyError, match=r"thread 't-42': a run is in progress") as caught:
        graph.invoke({"turns": ["second"]}, config("t-42"))
    assert isinstance(caught.value, CoordinationError) and caught.value.thread_id == "t-42"
    probe.hold.set()
    first.join(30)
    assert graph.invoke({"turns": ["third"]}, config("t-42"))["turns"][-1] == "reply"


def test_runs_on_different_threads_never_wait_for_each_other() -> None:
    probe = Probe(runs=2)
    graph = serialize_threads(chat_graph(probe))
    run_together(graph.invoke, ({"turns": ["a"]}, config("t1")), ({"turns": ["b"]}, config("t2")))
    assert probe.peak == 2


def test_a_run_without_a_thread_id_is_not_serialised() -> None:
    probe = Probe(runs=2)
    builder = StateGraph(Chat)
    builder.add_node("reply", probe.node)
    builder.add_edge(START, "reply")
    graph = serialize_threads(builder.compile())
    run_together(graph.invoke, ({"turns": ["a"]},), ({"turns": ["b"]},))
    assert probe.peak == 2


def test_each_run_gets_the_fencing_number_of_its_grant_in_its_config() -> None:
    probe = Probe()
    probe.hold.set()
    graph = serialize_threads(chat_graph(probe))
    for i in range(3):
        graph.invoke({"turns": [str(i)]}, config("t"))
    assert all(isinstance(f, int) for f in probe.fencing)
    assert probe.fencing == sorted(set(probe.fencing))  # strictly increasing


def test_a_stream_holds_the_thread_until_it_is_exhausted_or_closed() -> None:
    probe = Probe()
    probe.hold.set()
    graph = serialize_threads(chat_graph(probe))
    stream = graph.stream({"turns": ["a"]}, config("t"), stream_mode="values")
    next(stream)
    assert not thread_is_free("t")
    stream.close()
    assert thread_is_free("t")
    assert [c["turns"][-1] for c in graph.stream({"turns": ["b"]}, config("t"), stream_mode="values")][-1] == "reply"
    assert thread_is_free("t")


def test_async_runs_and_streams_on_one_thread_never_overlap() -> None:
    probe = Probe(runs=3)
    graph = serialize_threads(chat_graph(probe))

    async def streamed(text: str) -> list[Any]:
        return [c async for c in graph.astream({"turns": [text]}, config("t"), stream_mode="values")]

    async def main() -> None:
        # the probe waits with a blocking poll: run each graph on a thread of its own loop
        await asyncio.gather(
            asyncio.to_thread(asyncio.run, graph.ainvoke({"turns": ["a"]}, config("t"))),
            asyncio.to_thread(asyncio.run, streamed("b")),
            asyncio.to_thread(asyncio.run, graph.ainvoke({"turns": ["c"]}, config("t"))),
        )

    asyncio.run(main())
    assert probe.peak == 1 and forks(graph, "t") == 0 and thread_is_free("t")


def test_batch_and_abatch_runs_on_one_thread_follow_each_other() -> None:
    probe = Probe(runs=3)
    graph = serialize_threads(chat_graph(probe))
    graph.batch([{"turns": ["a"]}, {"turns": ["b"]}, {"turns": ["c"]}], config("t"))
    assert probe.peak == 1 and forks(graph, "t") == 0
    probe.hold.set()
    assert len(asyncio.run(graph.abatch([{"turns": ["d"]}, {"turns": ["e"]}], config("t")))) == 2
    assert forks(graph, "t") == 0


def test_the_serialized_graph_answers_everything_else_as_the_graph() -> None:
    probe = Probe()
    probe.hold.set()
    compiled = chat_graph(probe)
    graph = serialize_threads(compiled)
    graph.invoke({"turns": ["a"]}, config("t"))
    assert graph.get_state(config("t")).values == compiled.get_state(config("t")).values
    assert graph.get_graph().nodes.keys() == compiled.get_graph().nodes.keys()
    assert serialize_threads(graph).graph is compiled  # not stacked


def test_serialize_threads_checks_its_arguments() -> None:
    compiled = chat_graph(Probe())
    with pytest.raises(ValueError, match=r"must be 'enqueue' or 'reject', not 'queue'"):
        serialize_threads(compiled, mode="queue")
    with pytest.raises(ValueError, match=r"timeout=5\) applies to mode='enqueue' only"):
        serialize_threads(compiled, mode="reject", timeout=5)
    with pytest.raises(ValueError, match="timeout"):
        serialize_threads(compiled, timeout=-1)
    with pytest.raises(TypeError, match=r"takes a compiled LangGraph graph \(builder.compile\(\)\), not StateGraph"):
        serialize_threads(StateGraph(Chat))


def test_an_enqueued_run_that_waits_too_long_names_the_thread_lock() -> None:
    probe = Probe()
    probe.strict = True
    graph = serialize_threads(chat_graph(probe), timeout=0.05)
    first = threading.Thread(target=graph.invoke, args=({"turns": ["a"]}, config("t-slow")))
    first.start()
    assert wait_until(lambda: probe.entries == ["a"])
    with pytest.raises(CoordinationTimeoutError, match="langgraph-thread:t-slow"):
        graph.invoke({"turns": ["b"]}, config("t-slow"))
    probe.hold.set()
    first.join(30)
