"""Node functions and probes for the LangGraph adapter tests.

This module deliberately does NOT use ``from __future__ import annotations``: LangGraph
matches injected parameters (``config: RunnableConfig``, ``writer: StreamWriter``,
``store: BaseStore``) by their annotation objects here, and by their annotation strings
in test_langgraph.py, so both spellings are exercised through ``@coordinate``.
"""

import operator
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph.types import Send, StreamWriter
from typing_extensions import TypedDict

from agentdiff_coordination import coordinate, current_event, when
from agentdiff_coordination.adapters.langgraph import coordinate_graph
from agentdiff_coordination.core.runtime import get_backend


class LogState(TypedDict):
    log: Annotated[list[Any], operator.add]


class Context(TypedDict):
    user: str


class Question(TypedDict):
    """A node's own input schema (a type of its own), which LangGraph must infer from the hint."""

    log: Annotated[list[Any], operator.add]


@coordinate("inject_sync", lock_name="inject")
def inject_sync(
    state: Question, config: RunnableConfig, runtime: Runtime[Context], writer: StreamWriter, store: BaseStore
) -> LogState:
    """A sync node asking for all four injected parameters."""
    writer({"from": "inject_sync"})
    return {"log": [("inject_sync", config["configurable"]["thread_id"], runtime.context["user"], store is not None)]}


@coordinate("inject_async", lock_name="inject")
async def inject_async(
    state: Question, config: RunnableConfig, runtime: Runtime[Context], writer: StreamWriter, store: BaseStore
) -> LogState:
    """The async twin of ``inject_sync``."""
    writer({"from": "inject_async"})
    return {"log": [("inject_async", config["configurable"]["thread_id"], runtime.context["user"], store is not None)]}


class EventLog:
    """Every event seen, as ``(name, sender, data)``, through one ``@when("*")`` handler."""

    def __init__(self, pattern: str = "*") -> None:
        self._mutex = threading.Lock()
        self.events: list[tuple[str, str | None, Any]] = []

        @when(pattern)
        def record(data: Any) -> None:
            event = current_event()
            assert event is not None
            with self._mutex:
                self.events.append((event.name, event.sender, data))

    def names(self) -> list[str]:
        with self._mutex:
            return [name for name, _, _ in self.events]

    def named(self, name: str) -> list[Any]:
        with self._mutex:
            return [data for event, _, data in self.events if event == name]


def lock_waiters() -> int:
    """How many callers wait for a lock right now, as the backend counts them."""
    return int(get_backend().statistics().lock_waiters)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class Overlap:
    """Counts branches inside a critical section at once; ``peak`` is the most seen together."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.entries = 0
        self.contended = 0  # entries that saw every other branch waiting for the lock

    def enter(self) -> None:
        with self._mutex:
            self.inside += 1
            self.entries += 1
            self.peak = max(self.peak, self.inside)

    def leave(self) -> None:
        with self._mutex:
            self.inside -= 1

    def saw_contention(self) -> None:
        with self._mutex:
            self.contended += 1


# -- a fan-out graph: one Send branch per index ---------------------------------------------

BRANCHES = 4  # parallel branches per fan-out (LangGraph's default executor runs at least 5 at once)


class Fan(TypedDict):
    done: Annotated[list[int], operator.add]


def fan_out(state: Fan) -> list[Send]:
    return [Send("worker", {"i": i}) for i in range(BRANCHES)]


def fan_graph(worker: Any, *, locks: dict[str, Any] | None = None, limits: dict[str, str] | None = None,
              coordinated: bool = True) -> Any:
    """A graph that runs ``worker`` once per branch, in parallel; coordinated unless told not to."""
    builder = StateGraph(Fan)
    builder.add_node("worker", worker)
    builder.add_conditional_edges(START, fan_out, ["worker"])
    if coordinated:
        coordinate_graph(builder, locks=locks, limits=limits)
    return builder.compile()
