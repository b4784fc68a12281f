"""The LangGraph adapter: coordinated nodes, sync and async, with LangGraph's own metadata.

Three ways in:

- ``@coordinate("name", lock_name=...)`` on a node *function* needs nothing from this
  module: the wrapper keeps the function's name, signature and type hints, so LangGraph
  still injects ``config``, ``runtime``, ``writer`` and ``store`` and still infers the
  node's input schema. This module only tells the core that LangGraph's control flow
  (``GraphInterrupt``, ``ParentCommand``) ends a run as ``NAME_interrupted``.
- ``coordinate(...)(runnable)`` on any LangChain ``Runnable`` (a compiled subgraph, a
  chain, a chat model) returns a Runnable that runs ``invoke``/``ainvoke``/``stream``/
  ``astream`` under the coordination and still looks like a subgraph to LangGraph.
- ``coordinate_graph(builder, locks={node: lock})`` wraps every node of a ``StateGraph``
  in place before ``compile()``: each node emits ``NODE_started`` / ``NODE_complete`` /
  ``NODE_failed`` / ``NODE_interrupted`` with the run's ``step``, ``thread_id``,
  ``checkpoint_ns``, ``attempt``, ``task_id`` and ``node``; the nodes named in ``locks``
  also take their locks (and those in ``limits`` their limits).
- ``serialize_threads(graph)`` on a compiled graph: one run per ``thread_id`` at a time
  (enqueued or rejected), so concurrent runs never fork a thread's checkpoint history
  (``langgraph_threads``).

LangGraph is imported only when one of these is used; without it the error says
``pip install 'agentdiff-coordination[langgraph]'``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.coordinate import Coordinator, Run, coordinate
from ..core.validation import check_timeout
from .hookspecs import hookimpl
from .langgraph_threads import ThreadBusyError, serialize_threads

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable, RunnableConfig

__all__ = [
    "INSTALL_HINT",
    "ThreadBusyError",
    "coordinate_graph",
    "coordinated_runnable",
    "graph_metadata",
    "serialize_threads",
]

INSTALL_HINT = "pip install 'agentdiff-coordination[langgraph]'"

B = TypeVar("B")

#: the config of the node run in progress in this context (read by the lazy metadata)
_node_config: ContextVar[Mapping[str, Any] | None] = ContextVar("agentdiff_langgraph_config", default=None)


def _require_langgraph() -> None:
    try:
        import langgraph.graph  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"the LangGraph adapter of agentdiff-coordination needs langgraph, which is not installed: "
            f"{INSTALL_HINT}"
        ) from exc


# -- metadata ---------------------------------------------------------------------------


def graph_metadata(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """LangGraph's view of a node run, read from its config: the payload fields it adds.

    ``step`` (superstep number), ``thread_id``, ``checkpoint_ns`` (``"node:task-id"``,
    nested for subgraphs), ``attempt`` (1, then 2, 3... on retries; None where the
    installed LangGraph does not report it), ``task_id`` and ``node``. Unknown fields
    are None, for instance when a coordinated graph is invoked outside any graph.
    """
    if not config:
        return dict.fromkeys(("step", "thread_id", "checkpoint_ns", "attempt", "task_id", "node"))
    metadata = config.get("metadata") or {}
    configurable = config.get("configurable") or {}
    info = getattr(configurable.get("__pregel_runtime"), "execution_info", None)
    return {
        "step": metadata.get("langgraph_step"),
        "thread_id": configurable.get("thread_id", metadata.get("thread_id")),
        "checkpoint_ns": configurable.get("checkpoint_ns", metadata.get("langgraph_checkpoint_ns")),
        "attempt": getattr(info, "node_attempt", None),
        "task_id": configurable.get("__pregel_task_id", getattr(info, "task_id", None)),
        "node": metadata.get("langgraph_node"),
    }


def _current_metadata() -> dict[str, Any]:
    return graph_metadata(_node_config.get())


def _with_meta(meta: Callable[[], dict[str, Any]] | None, ours: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    if meta is None:
        return ours

    def both() -> dict[str, Any]:
        return {**ours(), **meta()}

    return both


@functools.lru_cache(maxsize=1)
def _passthrough() -> tuple[type[BaseException], ...]:
    from langgraph.errors import GraphBubbleUp

    return (GraphBubbleUp,)  # GraphInterrupt, ParentCommand and GraphDrained derive from it


def _for_langgraph(c: Coordinator) -> Coordinator:
    """``c`` that reports LangGraph's control flow as ``_interrupted`` and adds its metadata."""
    extra = tuple(t for t in _passthrough() if t not in c.passthrough)
    return c.replace(passthrough=c.passthrough + extra, meta=_with_meta(c.meta, _current_metadata))


# -- the coordinated Runnable -----------------------------------------------------------


def _add_chunks(total: Any, chunk: Any) -> Any:
    """Streamed chunks added up as LangChain does; chunks that do not add keep the last."""
    if total is None:
        return chunk
    try:
        return total + chunk
    except TypeError:
        return chunk


def _native_async(bound: Runnable[Any, Any]) -> bool:
    """Whether LangGraph counts ``bound`` as an async node (one it can cancel and time out).

    A sync function node is run by LangGraph in a worker thread under ``ainvoke``; it is
    not native async, and LangGraph refuses ``add_node(..., timeout=...)`` on it.
    """
    try:
        from langgraph.pregel._utils import _runnable_has_native_async
    except ImportError:  # an older LangGraph: a function node is sync when its afunc runs it in a thread
        from langchain_core.runnables.config import run_in_executor

        if not (hasattr(bound, "func") and hasattr(bound, "afunc")):  # not a RunnableCallable
            return True
        afunc = bound.afunc
        return afunc is not None and not (isinstance(afunc, functools.partial) and afunc.func is run_in_executor)
    return bool(_runnable_has_native_async(bound))


def _delegates(bound: Runnable[Any, Any], c: Coordinator) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The sync and async bodies of a coordinated node.

    They name ``bound.invoke`` / ``bound.ainvoke`` literally: LangGraph finds a node's
    subgraph by reading the closures of its functions, so a coordinated compiled
    subgraph is still listed by ``get_state(subgraphs=True)`` and ``get_graph(xray=...)``.

    A node that is not natively async (a sync function) gets, as LangGraph gives it,
    an async body that runs the whole coordinated sync body in a worker thread: the
    lock is taken and released in that thread, so it stays held until the node's code
    has returned even when LangGraph cancels the task awaiting the thread (a failing
    sibling branch), and LangGraph still sees a sync node (it refuses a ``timeout``).
    """

    def run_node(input: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        token = _node_config.set(config)
        try:
            with Run(c, (input,), kwargs) as run:
                run.result = bound.invoke(input, config, **kwargs)
        finally:
            _node_config.reset(token)
        return run.result

    async def arun_node(input: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        token = _node_config.set(config)
        try:
            async with Run(c, (input,), kwargs) as run:
                run.result = await bound.ainvoke(input, config, **kwargs)
        finally:
            _node_config.reset(token)
        return run.result

    if not _native_async(bound):
        from langchain_core.runnables.config import run_in_executor

        in_thread: Callable[..., Any] = functools.partial(run_in_executor, None, run_node)  # type: ignore[call-arg]  # as LangGraph runs sync nodes
        return run_node, functools.wraps(run_node)(in_thread)
    return run_node, arun_node


@functools.lru_cache(maxsize=1)
def _runnable_class() -> type[Any]:
    """``CoordinatedRunnable``, built on first use so this module imports without LangGraph."""
    _require_langgraph()
    from langchain_core.runnables.config import ensure_config

    try:
        from langgraph._internal._runnable import RunnableCallable
    except ImportError:  # langgraph < 0.6 kept it here
        from langgraph.utils.runnable import RunnableCallable  # type: ignore[no-redef, attr-defined, unused-ignore]

    class CoordinatedRunnable(RunnableCallable):
        """A Runnable (a LangGraph node, a compiled subgraph, a chain) run under a Coordinator.

        ``invoke``/``ainvoke``/``stream``/``astream`` call the same method of ``bound``
        with the same input and config inside one coordinated run; return values
        (``Command`` included) and LangGraph's control-flow exceptions pass through
        unchanged. Other attributes (``get_state``, ``nodes``...) are ``bound``'s.
        """

        def __init__(self, bound: Runnable[Any, Any], coordinator: Coordinator, *,
                     name: str | None = None, graph_node: bool = False) -> None:
            run_node, arun_node = _delegates(bound, coordinator)
            super().__init__(run_node, arun_node, name=name or bound.get_name(), trace=False, recurse=False)
            self._run_node, self._arun_node = run_node, arun_node
            self.bound = bound
            self.coordinator = coordinator
            self.graph_node = graph_node

        def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
            # LangGraph always passes the node's config; ensure_config only for direct calls
            return self._run_node(input, config if config is not None else ensure_config(), **kwargs)

        async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
            return await self._arun_node(input, config if config is not None else ensure_config(), **kwargs)

        def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
            config = config if config is not None else ensure_config()
            c = self.coordinator.replace(meta=functools.partial(graph_metadata, config))
            with Run(c, (input,), kwargs) as run:
                for chunk in self.bound.stream(input, config, **kwargs):
                    run.result = _add_chunks(run.result, chunk)
                    yield chunk

        async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
            config = config if config is not None else ensure_config()
            c = self.coordinator.replace(meta=functools.partial(graph_metadata, config))
            async with Run(c, (input,), kwargs) as run:
                async for chunk in self.bound.astream(input, config, **kwargs):
                    run.result = _add_chunks(run.result, chunk)
                    yield chunk

        # what callers and LangGraph read about a Runnable is the bound one's
        @property
        def InputType(self) -> Any:
            return self.bound.InputType

        @property
        def OutputType(self) -> Any:
            return self.bound.OutputType

        def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
            return self.bound.get_input_schema(config)

        def get_output_schema(self, config: RunnableConfig | None = None) -> Any:
            return self.bound.get_output_schema(config)

        @property
        def config_specs(self) -> Any:
            return self.bound.config_specs

        def get_graph(self, *args: Any, **kwargs: Any) -> Any:
            return self.bound.get_graph(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__") or name == "bound":
                raise AttributeError(name)
            return getattr(self.bound, name)

        def __repr__(self) -> str:
            c = self.coordinator
            return f"CoordinatedRunnable({c.name!r}, locks={list(c.locks)!r}, bound={self.bound!r})"

    CoordinatedRunnable.__qualname__ = "CoordinatedRunnable"
    return CoordinatedRunnable


def coordinated_runnable(bound: Runnable[Any, Any], coordinator: Coordinator) -> Runnable[Any, Any]:
    """``bound`` run under ``coordinator`` (LangGraph's interrupts pass through, metadata added)."""
    result: Runnable[Any, Any] = _runnable_class()(bound, _for_langgraph(coordinator))
    return result


# -- whole graphs ------------------------------------------------------------------------


def _names_of(nodes: Mapping[str, Any], given: Mapping[str, Any], what: str) -> None:
    unknown = sorted(set(given) - set(nodes))
    if unknown:
        raise ValueError(
            f"coordinate_graph(): {what} names {unknown}, but the graph has no such node; "
            f"its nodes are {sorted(nodes)} (add the nodes before calling coordinate_graph)"
        )


def coordinate_graph(
    builder: B,
    locks: Mapping[str, str | Iterable[str]] | None = None,
    *,
    timeout: float | None = None,
    limits: Mapping[str, str] | None = None,
) -> B:
    """Coordinate every node of a ``StateGraph`` in place, before ``compile()``; returns ``builder``.

    Every node emits lifecycle events named after it (``NODE_started``, ``NODE_complete``,
    ``NODE_failed``, ``NODE_interrupted``), carrying LangGraph's ``step``, ``thread_id``,
    ``checkpoint_ns``, ``attempt``, ``task_id`` and ``node``. ``locks`` maps node names to
    a lock name or a list of names (taken all or none) held around that node's run;
    ``limits`` maps node names to a limit name; ``timeout`` bounds each wait for a lock.

    Nodes that are Runnables or compiled subgraphs are wrapped the same way (an interrupt
    inside a subgraph resumes as usual). Each retry attempt is a run of its own; parallel
    branches (``Send`` fan-out included) contend for the locks for real. Calling it again
    replaces the earlier coordination instead of stacking a second one. Nodes added
    after the call are not coordinated.
    """
    _require_langgraph()
    from langgraph.graph import StateGraph

    if not isinstance(builder, StateGraph):
        if isinstance(getattr(builder, "builder", None), StateGraph):
            raise TypeError(
                "coordinate_graph() takes the StateGraph builder before compile(), not a compiled graph: "
                "call coordinate_graph(builder, ...) and then builder.compile()"
            )
        raise TypeError(f"coordinate_graph() takes a langgraph StateGraph, not {type(builder).__name__} {builder!r}")
    nodes: dict[str, Any] = builder.nodes
    locks = dict(locks or {})
    limits = dict(limits or {})
    _names_of(nodes, locks, "locks")
    _names_of(nodes, limits, "limits")
    seconds = check_timeout(timeout)
    if getattr(builder, "compiled", False):
        warnings.warn(
            "coordinate_graph(): this StateGraph was compiled before; graphs compiled earlier are not "
            "coordinated, compile it again",
            stacklevel=2,
        )
    cls = _runnable_class()
    for name, spec in list(nodes.items()):
        runnable = spec.runnable
        if isinstance(runnable, cls) and runnable.graph_node:  # coordinated before: replace, not stack
            runnable = runnable.bound
        c = _for_langgraph(coordinate(name, locks.get(name), timeout=seconds, limit=limits.get(name)))
        nodes[name] = dataclasses.replace(spec, runnable=cls(runnable, c, name=runnable.get_name(), graph_node=True))
    return builder


# -- plugin hooks (this module is the plugin) ---------------------------------------------


def _is_runnable(obj: Any) -> bool:
    base = sys.modules.get("langchain_core.runnables.base")
    return base is not None and isinstance(obj, base.Runnable)


def _is_state_graph(obj: Any) -> bool:
    state = sys.modules.get("langgraph.graph.state")
    return state is not None and isinstance(obj, state.StateGraph)


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    """LangChain Runnables (compiled graphs included) and StateGraph builders are ours."""
    return True if _is_runnable(obj) or _is_state_graph(obj) else None


@hookimpl
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    """A coordinated Runnable; a StateGraph builder gets directions to ``coordinate_graph``."""
    if _is_state_graph(obj):
        raise TypeError(
            f"@coordinate({coordinator.name!r}) cannot wrap a StateGraph builder: use "
            "agentdiff_coordination.adapters.langgraph.coordinate_graph(builder, locks={node: lock}) "
            "to coordinate every node, or coordinate the compiled graph (builder.compile())"
        )
    if _is_runnable(obj):
        return coordinated_runnable(obj, coordinator)
    return None


@hookimpl
def coordination_passthrough(exc: BaseException) -> bool | None:
    """LangGraph's control flow (``GraphInterrupt``, ``ParentCommand``, ``GraphDrained``)."""
    errors = sys.modules.get("langgraph.errors")
    if errors is not None and isinstance(exc, errors.GraphBubbleUp):
        return True
    return None
