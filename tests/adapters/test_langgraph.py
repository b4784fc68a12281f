"""The LangGraph adapter against the real langgraph, offline (plain nodes, a fake chat model)."""

from __future__ import annotations

import asyncio
import operator
import subprocess
import sys
import textwrap
import threading
from typing import Annotated, Any, Literal

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import InvalidUpdateError
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, RetryPolicy, StreamWriter, interrupt
from typing_extensions import TypedDict

from agentdiff_coordination import (
    CoordinationTimeoutError,
    coordinate,
    drain,
    limit,
    lock,
)
from agentdiff_coordination.adapters.langgraph import coordinate_graph, graph_metadata
from agentdiff_coordination.core.runtime import get_backend
from tests.adapters.langgraph_nodes import (
    BRANCHES,
    Context,
    EventLog,
    Fan,
    LogState,
    Overlap,
    Question,
    fan_graph,
    inject_async,
    inject_sync,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

# -- @coordinate directly on node functions ---------------------------------------------


@coordinate("hinted")
def hinted(state: LogState, config: RunnableConfig, writer: StreamWriter) -> Command[Literal["left", "right"]]:
    """String annotations (this module uses postponed annotations) and a Command route hint."""
    writer({"thread": config["configurable"]["thread_id"]})
    return Command(goto="right", update={"log": ["hinted"]})


def test_coordinated_node_function_keeps_injection_name_and_input_schema_sync() -> None:
    log = EventLog("inject_sync_*")
    builder = StateGraph(LogState, context_schema=Context)
    builder.add_node(inject_sync)
    builder.add_edge(START, "inject_sync")
    assert list(builder.nodes) == ["inject_sync"]
    assert builder.nodes["inject_sync"].input_schema is Question
    graph = builder.compile(checkpointer=InMemorySaver(), store=InMemoryStore())

    chunks = list(graph.stream({"log": []}, {"configurable": {"thread_id": "t-sync"}}, context={"user": "ada"},
                               stream_mode=["custom", "values"]))

    assert ("custom", {"from": "inject_sync"}) in chunks
    assert chunks[-1] == ("values", {"log": [("inject_sync", "t-sync", "ada", True)]})
    drain()
    assert log.names() == ["inject_sync_started", "inject_sync_complete"]


def test_coordinated_node_functions_keep_injection_async_with_sync_nodes_in_one_graph() -> None:
    builder = StateGraph(LogState, context_schema=Context)
    builder.add_node(inject_sync)
    builder.add_node(inject_async)
    builder.add_edge(START, "inject_sync")
    builder.add_edge("inject_sync", "inject_async")
    graph = builder.compile(checkpointer=InMemorySaver(), store=InMemoryStore())

    async def main() -> list[Any]:
        return [chunk async for chunk in graph.astream(
            {"log": []}, {"configurable": {"thread_id": "t-async"}}, context={"user": "bo"},
            stream_mode=["custom", "values"])]

    chunks = asyncio.run(main())
    assert ("custom", {"from": "inject_async"}) in chunks
    assert chunks[-1][1]["log"] == [("inject_sync", "t-async", "bo", True), ("inject_async", "t-async", "bo", True)]


def test_coordinated_node_keeps_string_annotations_and_command_route_hints() -> None:
    builder = StateGraph(LogState)
    builder.add_node(hinted)
    builder.add_node("left", lambda state: {"log": ["left"]})
    builder.add_node("right", lambda state: {"log": ["right"]})
    builder.add_edge(START, "hinted")
    assert builder.nodes["hinted"].ends == ("left", "right")  # read from the return hint
    graph = builder.compile(checkpointer=InMemorySaver())

    chunks = list(graph.stream({"log": []}, {"configurable": {"thread_id": "t-hint"}}, stream_mode=["custom", "values"]))

    assert ("custom", {"thread": "t-hint"}) in chunks
    assert chunks[-1] == ("values", {"log": ["hinted", "right"]})


def test_interrupt_in_a_coordinated_node_function_is_not_a_failure_and_resumes() -> None:
    log = EventLog("review_*")

    @coordinate("review", lock_name="review_desk")
    def review(state: LogState) -> LogState:
        return {"log": [f"verdict: {interrupt('approve?')}"]}

    builder = StateGraph(LogState)
    builder.add_node(review)
    builder.add_edge(START, "review")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-review"}}

    paused = graph.invoke({"log": []}, config)
    assert paused["__interrupt__"][0].value == "approve?"
    assert get_backend().lock_holder("review_desk") is None
    done = graph.invoke(Command(resume="yes"), config)

    assert done["log"] == ["verdict: yes"]
    drain()
    assert log.names() == ["review_started", "review_interrupted", "review_started", "review_complete"]
    assert log.named("review_interrupted")[0]["error_type"] == "GraphInterrupt"


# -- coordinate_graph: contention -------------------------------------------------------------


def test_send_branches_overlap_without_coordination() -> None:
    overlap = Overlap()
    everyone = threading.Barrier(BRANCHES)

    def worker(arg: dict[str, int]) -> Fan:
        overlap.enter()
        try:
            everyone.wait(timeout=20)  # passes only when every branch is inside at once
        finally:
            overlap.leave()
        return {"done": [arg["i"]]}

    result = fan_graph(worker, coordinated=False).invoke({"done": []})

    assert sorted(result["done"]) == list(range(BRANCHES))
    assert overlap.peak == BRANCHES


def _worker_that_waits_for_rivals(overlap: Overlap, log: EventLog) -> Any:
    """A sync worker whose first entrant holds on until every branch has started (and queued)."""

    def worker(arg: dict[str, int]) -> Fan:
        overlap.enter()
        try:
            if wait_until(lambda: len(log.named("worker_started")) == BRANCHES):
                overlap.saw_contention()
        finally:
            overlap.leave()
        return {"done": [arg["i"]]}

    return worker


def test_send_branches_never_overlap_under_a_lock(backend: str) -> None:
    overlap, log = Overlap(), EventLog("worker_*")

    result = fan_graph(_worker_that_waits_for_rivals(overlap, log), locks={"worker": "shared"}).invoke({"done": []})

    assert sorted(result["done"]) == list(range(BRANCHES))
    assert overlap.peak == 1
    assert overlap.contended == BRANCHES  # each holder ran while the others had started and queued
    drain()
    completes = log.named("worker_complete")
    assert len(completes) == BRANCHES
    assert len({data["task_id"] for data in completes}) == BRANCHES  # one run per Send branch
    assert {data["node"] for data in completes} == {"worker"}


def test_async_send_branches_overlap_without_coordination_and_not_with_a_lock() -> None:
    def make(overlap: Overlap, log: EventLog | None) -> Any:
        everyone = asyncio.Barrier(BRANCHES) if log is None else None

        async def worker(arg: dict[str, int]) -> Fan:
            overlap.enter()
            try:
                if everyone is not None:
                    await asyncio.wait_for(everyone.wait(), 20)
                else:
                    assert log is not None
                    for _ in range(5000):
                        if len(log.named("worker_started")) == BRANCHES:
                            overlap.saw_contention()
                            break
                        await asyncio.sleep(0.002)
            finally:
                overlap.leave()
            return {"done": [arg["i"]]}

        return worker

    free, guarded, log = Overlap(), Overlap(), EventLog("worker_*")
    asyncio.run(fan_graph(make(free, None), coordinated=False).ainvoke({"done": []}))
    asyncio.run(fan_graph(make(guarded, log), locks={"worker": "shared"}).ainvoke({"done": []}))

    assert free.peak == BRANCHES
    assert guarded.peak == 1
    assert guarded.contended == BRANCHES


def test_nodes_sharing_a_lock_never_overlap_and_a_list_of_names_takes_them_all() -> None:
    log = EventLog("*_started")
    mutex = threading.Lock()
    inside: set[str] = set()
    together: list[set[str]] = []
    contended: list[str] = []

    def node(name: str) -> Any:
        def run(state: LogState) -> LogState:
            with mutex:
                inside.add(name)
                together.append(set(inside))
            try:
                if wait_until(lambda: len(log.events) == 3):  # every node has started: the others queue
                    contended.append(name)
            finally:
                with mutex:
                    inside.discard(name)
            return {"log": [name]}

        return run

    builder = StateGraph(LogState)
    for name in ("a", "b", "c"):
        builder.add_node(name, node(name))
        builder.add_edge(START, name)
    coordinate_graph(builder, locks={"a": ["db", "api"], "b": "db", "c": "api"})

    result = builder.compile().invoke({"log": []})

    assert sorted(result["log"]) == ["a", "b", "c"]
    assert sorted(contended) == ["a", "b", "c"]
    assert [group for group in together if "a" in group and len(group) > 1] == []  # a excludes b and c


def test_a_concurrency_limit_on_a_node_admits_that_many_branches_at_once() -> None:
    limit("two_seats", concurrency=2)
    overlap = Overlap()
    pairs = threading.Barrier(2)

    def worker(arg: dict[str, int]) -> Fan:
        overlap.enter()
        try:
            pairs.wait(timeout=20)  # passes only with a second branch inside at the same time
        finally:
            overlap.leave()
        return {"done": [arg["i"]]}

    result = fan_graph(worker, locks={}, limits={"worker": "two_seats"}).invoke({"done": []})

    assert sorted(result["done"]) == list(range(BRANCHES))
    assert overlap.peak == 2


# -- coordinate_graph: events and LangGraph semantics -------------------------------------------


def test_every_node_emits_events_named_after_it_with_step_thread_checkpoint_ns_and_attempt() -> None:
    log = EventLog()
    builder = StateGraph(LogState)
    builder.add_node("first", lambda state: {"log": [1]})
    builder.add_node("second", RunnableLambda(lambda state: {"log": [2]}))
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    assert coordinate_graph(builder) is builder
    graph = builder.compile(checkpointer=InMemorySaver())

    graph.invoke({"log": []}, {"configurable": {"thread_id": "t-meta"}})

    drain()
    assert log.names() == ["first_started", "first_complete", "second_started", "second_complete"]
    assert [sender for _, sender, _ in log.events] == ["first", "first", "second", "second"]
    started, complete = log.named("first_started")[0], log.named("first_complete")[0]
    assert started["run_id"] == complete["run_id"]
    assert complete["result"] == {"log": [1]}
    for name, step in (("first", 1), ("second", 2)):
        data = log.named(f"{name}_complete")[0]
        assert (data["step"], data["thread_id"], data["attempt"], data["node"]) == (step, "t-meta", 1, name)
        assert data["checkpoint_ns"].startswith(f"{name}:")
        assert data["checkpoint_ns"].endswith(data["task_id"])


def test_each_retry_attempt_emits_its_own_events() -> None:
    log = EventLog("flaky_*")
    calls = []

    def flaky(state: LogState) -> LogState:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)} failed")
        return {"log": ["ok"]}

    builder = StateGraph(LogState)
    builder.add_node("flaky", flaky, retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False))
    builder.add_edge(START, "flaky")
    coordinate_graph(builder, locks={"flaky": "api"})

    assert builder.compile().invoke({"log": []}) == {"log": ["ok"]}

    drain()
    assert log.names() == ["flaky_started", "flaky_failed"] * 2 + ["flaky_started", "flaky_complete"]
    attempts = [data["attempt"] for name, _, data in log.events if name != "flaky_started"]
    assert attempts == [1, 2, 3]
    assert [data["error"] for data in log.named("flaky_failed")] == ["attempt 1 failed", "attempt 2 failed"]
    assert len({data["run_id"] for _, _, data in log.events}) == 3
    assert len({data["task_id"] for _, _, data in log.events}) == 1


def _asking_subgraph() -> Any:
    def ask(state: LogState) -> LogState:
        return {"log": [f"answer: {interrupt('question?')}"]}

    sub = StateGraph(LogState)
    sub.add_node(ask)
    sub.add_edge(START, "ask")
    coordinate_graph(sub, locks={"ask": "desk"})
    return sub.compile()


def test_interrupt_inside_a_coordinated_subgraph_resumes_and_is_not_a_failure() -> None:
    log = EventLog()
    builder = StateGraph(LogState)
    builder.add_node("sub", _asking_subgraph())
    builder.add_node("after", lambda state: {"log": ["after"]})
    builder.add_edge(START, "sub")
    builder.add_edge("sub", "after")
    coordinate_graph(builder, locks={"sub": "team"})
    graph = builder.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-sub"}}

    paused = graph.invoke({"log": []}, config)
    assert paused["__interrupt__"][0].value == "question?"
    assert [name for name, _ in graph.get_subgraphs()] == ["sub"]
    assert graph.get_state(config, subgraphs=True).tasks[0].state is not None  # still seen as a subgraph
    assert get_backend().lock_holder("desk") is None and get_backend().lock_holder("team") is None
    done = graph.invoke(Command(resume="42"), config)

    assert done["log"] == ["answer: 42", "after"]
    drain()
    names = log.names()
    assert [n for n in names if n.endswith("_failed")] == []
    assert names[:4] == ["sub_started", "ask_started", "ask_interrupted", "sub_interrupted"]
    assert names.count("ask_complete") == 1 and names.count("sub_complete") == 1
    inner = log.named("ask_interrupted")[0]
    assert inner["checkpoint_ns"].startswith("sub:") and "|ask:" in inner["checkpoint_ns"]


def test_parent_command_from_a_subgraph_passes_through_as_interrupted() -> None:
    log = EventLog()

    def handoff(state: LogState) -> Command[Any]:
        return Command(graph=Command.PARENT, goto="after", update={"log": ["handoff"]})

    sub = StateGraph(LogState)
    sub.add_node(handoff)
    sub.add_edge(START, "handoff")
    builder = StateGraph(LogState)
    builder.add_node("sub", sub.compile())
    builder.add_node("after", lambda state: {"log": ["after"]})
    builder.add_edge(START, "sub")
    coordinate_graph(builder)

    result = builder.compile().invoke({"log": []})

    assert result["log"] == ["handoff", "after"]
    drain()
    assert log.names() == ["sub_started", "sub_interrupted", "after_started", "after_complete"]
    assert log.named("sub_interrupted")[0]["error_type"] == "ParentCommand"


def test_command_and_other_return_values_pass_through_unchanged() -> None:
    log = EventLog("route_complete")
    command = Command(goto="right", update={"log": ["routed"]})

    def route(state: LogState) -> Command[Literal["left", "right"]]:
        return command

    builder = StateGraph(LogState)
    builder.add_node(route)
    builder.add_node("left", lambda state: {"log": ["left"]})
    builder.add_node("right", lambda state: {"log": ["right"]})
    builder.add_edge(START, "route")
    coordinate_graph(builder, locks={"route": "router"})

    assert builder.compile().invoke({"log": []}) == {"log": ["routed", "right"]}
    drain()
    assert log.named("route_complete")[0]["result"] == command


def test_a_lock_timeout_fails_the_node_and_names_the_lock() -> None:
    log = EventLog("slow_*")
    builder = StateGraph(LogState)
    builder.add_node("slow", lambda state: {"log": ["never"]})
    builder.add_edge(START, "slow")
    coordinate_graph(builder, locks={"slow": "busy"}, timeout=0.05)
    graph = builder.compile()
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock("busy"):
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        taken.wait(10)
        with pytest.raises(CoordinationTimeoutError, match="busy"):
            graph.invoke({"log": []})
    finally:
        release.set()
        thread.join()
    drain()
    assert "slow_complete" not in log.names()


def test_a_lock_does_not_fix_a_concurrent_write_to_a_plain_key_a_reducer_does() -> None:
    class Plain(TypedDict):
        answer: str

    class Reduced(TypedDict):
        answer: Annotated[list[str], operator.add]

    def build(schema: Any, value: Any) -> Any:
        builder = StateGraph(schema)
        for name in ("a", "b"):
            builder.add_node(name, lambda state, name=name: {"answer": value(name)})
            builder.add_edge(START, name)
        coordinate_graph(builder, locks={"a": "writer", "b": "writer"})
        return builder.compile()

    with pytest.raises(InvalidUpdateError, match="INVALID_CONCURRENT_GRAPH_UPDATE"):
        build(Plain, lambda name: name).invoke({"answer": ""})
    assert sorted(build(Reduced, lambda name: [name]).invoke({"answer": []})["answer"]) == ["a", "b"]


def test_messages_still_stream_token_by_token_through_coordinated_nodes() -> None:
    log = EventLog("chat_*")
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello there friend")]))

    async def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node(chat)
    builder.add_edge(START, "chat")
    coordinate_graph(builder, locks={"chat": "model_api"})
    graph = builder.compile()

    async def main() -> list[str]:
        return [message.content async for message, _ in graph.astream(
            {"messages": [HumanMessage("hi")]}, stream_mode="messages")]

    assert "".join(asyncio.run(main())) == "hello there friend"
    drain()
    assert log.names() == ["chat_started", "chat_complete"]


# -- coordinate_graph: arguments ----------------------------------------------------------------


def test_coordinate_graph_checks_its_arguments() -> None:
    builder = StateGraph(LogState)
    builder.add_node("only", lambda state: {"log": [1]})
    builder.add_edge(START, "only")

    with pytest.raises(ValueError, match=r"\['ghost'\].*\['only'\]"):
        coordinate_graph(builder, locks={"ghost": "x"})
    with pytest.raises(TypeError, match="before compile"):
        coordinate_graph(builder.compile())
    with pytest.raises(TypeError, match="StateGraph"):
        coordinate_graph(object())
    with pytest.raises(ValueError, match="timeout"):
        coordinate_graph(builder, timeout=-1)


def test_coordinating_a_graph_twice_replaces_instead_of_stacking() -> None:
    log = EventLog()
    builder = StateGraph(LogState)
    builder.add_node("only", lambda state: {"log": [1]})
    builder.add_edge(START, "only")
    coordinate_graph(builder)
    coordinate_graph(builder, locks={"only": "x"})

    builder.compile().invoke({"log": []})

    drain()
    assert log.names() == ["only_started", "only_complete"]
    assert builder.nodes["only"].runnable.coordinator.locks == ("x",)


# -- coordinate(...)(runnable) through the plugin --------------------------------------------------


def test_coordinate_on_a_compiled_graph_runs_it_as_a_subgraph_node_and_standalone() -> None:
    log = EventLog("research_*")
    inner = StateGraph(LogState)
    inner.add_node("look", lambda state: {"log": ["looked"]})
    inner.add_node("read", lambda state: {"log": ["read"]})
    inner.add_edge(START, "look")
    inner.add_edge("look", "read")
    research = coordinate("research", lock_name="library")(inner.compile())

    parent = StateGraph(LogState)
    parent.add_node("research", research)
    parent.add_edge(START, "research")
    graph = parent.compile()

    assert graph.invoke({"log": []}) == {"log": ["looked", "read"]}
    assert [name for name, _ in graph.get_subgraphs()] == ["research"]
    updates = list(research.stream({"log": []}, stream_mode="updates"))
    assert [list(update) for update in updates] == [["look"], ["read"]]  # streamed, not collapsed
    assert set(research.nodes) >= {"look", "read"}  # the compiled graph's own attributes
    drain()
    assert log.names() == ["research_started", "research_complete"] * 2
    assert log.named("research_started")[0]["node"] == "research"


def test_coordinate_on_a_state_graph_builder_points_to_coordinate_graph() -> None:
    with pytest.raises(TypeError, match="coordinate_graph"):
        coordinate("graph")(StateGraph(LogState))


def test_metadata_outside_any_graph_is_all_none() -> None:
    assert graph_metadata(None) == dict.fromkeys(("step", "thread_id", "checkpoint_ns", "attempt", "task_id", "node"))


# -- imports ----------------------------------------------------------------------------------------


def test_the_adapter_imports_without_langgraph_and_asks_for_the_extra() -> None:
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("langgraph", "langchain_core"):
                    raise ImportError(f"No module named {name!r} (blocked)")

        sys.meta_path.insert(0, Block())
        from agentdiff_coordination import coordinate
        from agentdiff_coordination.adapters import langgraph as adapter

        assert coordinate("plain")(lambda: 41)() == 41
        try:
            adapter.coordinate_graph(object())
        except ImportError as exc:
            assert "pip install 'agentdiff-coordination[langgraph]'" in str(exc), exc
        else:
            raise AssertionError("no ImportError")
        assert not any(m.startswith(("langgraph", "langchain_core")) for m in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_coordinating_plain_functions_never_imports_langgraph() -> None:
    script = textwrap.dedent(
        """
        import sys
        from agentdiff_coordination import coordinate

        @coordinate("step")
        def step():
            raise ValueError("x")

        try:
            step()
        except ValueError:
            pass
        assert "langgraph" not in sys.modules, "the adapter imported langgraph"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
