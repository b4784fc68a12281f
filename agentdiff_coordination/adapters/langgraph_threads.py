"""One LangGraph run per thread: ``serialize_threads(graph)``.

Two runs on one ``thread_id`` at once both start from the same checkpoint and each
writes its own successor: the thread's history forks (the later run silently drops the
earlier one's turn). ``serialize_threads`` holds a lock named after the thread for the
whole of each run, so runs on one thread follow each other (``mode="enqueue"``, in
arrival order) or a second one is refused at once (``mode="reject"``). On Redis the lock
is shared by every process, so a fleet of workers with a shared checkpointer keeps one
linear history per thread. Re-exported by ``agentdiff_coordination.adapters.langgraph``.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from ..core.errors import CoordinationError, CoordinationTimeoutError
from ..core.locks import lock
from ..core.validation import check_timeout
from ._context import in_context

__all__ = ["FENCING_KEY", "SerializedGraph", "ThreadBusyError", "serialize_threads", "thread_lock_name"]

#: the ``configurable`` key that carries the fencing number of the thread's lock grant
FENCING_KEY = "coordination_fencing"

_MODES = ("enqueue", "reject")


class ThreadBusyError(CoordinationError):
    """``mode="reject"``: a run was refused because another run of its thread is in progress."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"LangGraph thread {thread_id!r}: a run is in progress on this thread; this run was rejected "
            "(serialize_threads(mode='reject')). Retry after it ends, or use mode='enqueue' to wait for it"
        )
        self.thread_id = thread_id


def thread_lock_name(thread_id: str) -> str:
    """The name of the lock that serialises the runs of ``thread_id``."""
    return f"langgraph-thread:{thread_id}"


def _thread_of(config: Mapping[str, Any] | None) -> str | None:
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    return None if thread_id is None else str(thread_id)


def _with_fencing(config: Mapping[str, Any] | None, fencing: int | None) -> dict[str, Any]:
    config = dict(config or {})
    config["configurable"] = {**(config.get("configurable") or {}), FENCING_KEY: fencing}
    return config


class SerializedGraph:
    """A compiled graph whose runs on one ``thread_id`` never overlap.

    ``invoke``, ``ainvoke``, ``stream``, ``astream``, ``batch`` and ``abatch`` hold the
    thread's lock for the whole run (a stream until it is exhausted or closed); every
    other attribute is the graph's own. The lock's ownership is kept in a context of
    the run's own, so code running inside the graph, or between two chunks of a stream,
    never re-enters it by accident.
    """

    def __init__(self, graph: Any, mode: str, timeout: float | None) -> None:
        self.graph = graph
        self.mode = mode
        self.timeout = 0.0 if mode == "reject" else timeout

    # -- one run's lock ---------------------------------------------------------------
    def _lock(self, thread_id: str) -> Any:
        return lock(thread_lock_name(thread_id), timeout=self.timeout)

    def _refused(self, thread_id: str, exc: CoordinationTimeoutError) -> BaseException:
        if self.mode == "reject":
            return ThreadBusyError(thread_id)
        return exc

    def _enter(self, thread_id: str, config: Mapping[str, Any] | None) -> tuple[contextvars.Context, Any, dict[str, Any]]:
        ctx, held = contextvars.copy_context(), self._lock(thread_id)
        try:
            ctx.run(held.__enter__)
        except CoordinationTimeoutError as exc:
            raise self._refused(thread_id, exc) from exc
        return ctx, held, _with_fencing(config, ctx.run(lambda: held.fencing))

    async def _aenter(self, thread_id: str, config: Mapping[str, Any] | None) -> tuple[contextvars.Context, Any, dict[str, Any]]:
        ctx, held = contextvars.copy_context(), self._lock(thread_id)
        try:
            await in_context(ctx, held.__aenter__())
        except CoordinationTimeoutError as exc:
            raise self._refused(thread_id, exc) from exc
        return ctx, held, _with_fencing(config, ctx.run(lambda: held.fencing))

    # -- the run methods ------------------------------------------------------------------
    def invoke(self, input: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        thread_id = _thread_of(config)
        if thread_id is None:
            return self.graph.invoke(input, config, **kwargs)
        ctx, held, config = self._enter(thread_id, config)
        try:
            return self.graph.invoke(input, config, **kwargs)
        finally:
            ctx.run(held.__exit__, None, None, None)

    async def ainvoke(self, input: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        thread_id = _thread_of(config)
        if thread_id is None:
            return await self.graph.ainvoke(input, config, **kwargs)
        ctx, held, config = await self._aenter(thread_id, config)
        try:
            return await self.graph.ainvoke(input, config, **kwargs)
        finally:
            await in_context(ctx, held.__aexit__(None, None, None))

    def stream(self, input: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Iterator[Any]:
        thread_id = _thread_of(config)
        if thread_id is None:
            yield from self.graph.stream(input, config, **kwargs)
            return
        ctx, held, config = self._enter(thread_id, config)
        try:
            yield from self.graph.stream(input, config, **kwargs)
        finally:
            ctx.run(held.__exit__, None, None, None)

    async def astream(self, input: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        thread_id = _thread_of(config)
        if thread_id is None:
            async for chunk in self.graph.astream(input, config, **kwargs):
                yield chunk
            return
        ctx, held, config = await self._aenter(thread_id, config)
        try:
            stream = self.graph.astream(input, config, **kwargs)
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                await stream.aclose()
        finally:
            await in_context(ctx, held.__aexit__(None, None, None))

    def batch(self, inputs: Sequence[Any], config: Any = None, *, return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """``Runnable.batch`` over this object's ``invoke``: each input's run holds its thread."""
        from langchain_core.runnables import Runnable

        return Runnable.batch(self, inputs, config, return_exceptions=return_exceptions, **kwargs)  # type: ignore[arg-type]

    async def abatch(self, inputs: Sequence[Any], config: Any = None, *, return_exceptions: bool = False,
                     **kwargs: Any) -> list[Any]:
        """``Runnable.abatch`` over this object's ``ainvoke``."""
        from langchain_core.runnables import Runnable

        return await Runnable.abatch(self, inputs, config, return_exceptions=return_exceptions, **kwargs)  # type: ignore[arg-type]

    # -- the rest is the graph's --------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name == "graph":
            raise AttributeError(name)
        return getattr(self.graph, name)

    def __repr__(self) -> str:
        return f"serialize_threads({self.graph!r}, mode={self.mode!r}, timeout={self.timeout!r})"


def serialize_threads(graph: Any, *, mode: str = "enqueue", timeout: float | None = None) -> SerializedGraph:
    """``graph`` (compiled) with at most one run per ``thread_id`` at a time.

    ``mode="enqueue"`` makes a second run on a busy thread wait, in arrival order (at most
    ``timeout`` seconds, then ``CoordinationTimeoutError`` naming the thread's lock);
    ``mode="reject"`` refuses it at once with ``ThreadBusyError``. Runs on different
    threads never wait for each other; a run without a ``thread_id`` is not serialised.
    The grant's fencing number is put in the run's config as
    ``configurable["coordination_fencing"]`` so a checkpointer can refuse a stale writer.
    """
    if mode not in _MODES:
        raise ValueError(f"serialize_threads(mode=...) must be 'enqueue' or 'reject', not {mode!r}")
    seconds = check_timeout(timeout)
    if mode == "reject" and seconds is not None:
        raise ValueError(
            f"serialize_threads(timeout={timeout!r}) applies to mode='enqueue' only: mode='reject' never waits"
        )
    if isinstance(graph, SerializedGraph):
        graph = graph.graph
    if not callable(getattr(graph, "invoke", None)) or not callable(getattr(graph, "astream", None)):
        raise TypeError(
            f"serialize_threads() takes a compiled LangGraph graph (builder.compile()), not {type(graph).__name__} "
            f"{graph!r}"
        )
    return SerializedGraph(graph, mode, seconds)
