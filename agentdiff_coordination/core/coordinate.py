"""``@coordinate``: a named step that takes its locks (and limit) and reports its lifecycle.

``@coordinate("NAME", lock_name=...)`` emits, per call, with one ``run_id``:

- ``NAME_started``   ``{"args", "kwargs", "timestamp", "run_id"}``
- ``NAME_complete``  ``{"result", "timestamp", "duration", "run_id"}``
- ``NAME_failed``    ``{"error", "error_type", "timestamp", "duration", "run_id"}``
- ``NAME_cancelled`` ``{"error_type", "timestamp", "duration", "run_id"}`` (task cancelled,
  ``KeyboardInterrupt``, generator closed early)

``limit="NAME"`` takes the declared limit (cost 1) after the locks, right before the
call, so the limit counts calls when they are made, not while they wait for a lock;
it is given back first. ``timeout`` bounds each wait: the locks', then the limit's.

The lock is released before ``_complete``/``_failed`` is emitted, so a handler may take
the same lock. The step's own exception is re-raised unchanged. A payload is built only
when someone listens for that event: a step nobody watches costs a lock and a clock read.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from . import limits as _limits
from . import locks as _locks
from . import observers as _observers
from .locks import Waited
from .observers import LiveSpan
from .plugins import is_passthrough, wrap_with_plugins
from .records import new_run_id
from .runtime import RUNTIME
from .validation import check_decorator_name, check_name, check_timeout

__all__ = ["Coordinator", "Run", "coordinate"]

logger = logging.getLogger("agentdiff_coordination")

F = TypeVar("F", bound=Callable[..., Any])

#: exceptions that mean "stopped from outside", reported as ``NAME_cancelled``
CANCELLED: tuple[type[BaseException], ...] = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)

_bus = RUNTIME.bus


@dataclass(frozen=True, eq=False)
class Coordinator:
    """What ``@coordinate(...)`` applies to a step: its name, locks, timeout and limit.

    Adapters call ``call``/``acall``/``run`` to coordinate framework objects the same
    way the decorator coordinates functions. ``passthrough`` exceptions (a framework's
    control flow, such as a graph interrupt) end the run as ``NAME_interrupted``, not
    as a failure; ``meta`` adds fields to every lifecycle payload.
    """

    name: str
    locks: tuple[str, ...] = ()
    timeout: float | None = None
    limit: str | None = None
    passthrough: tuple[type[BaseException], ...] = ()
    meta: Callable[[], dict[str, Any]] | None = None
    #: True when the step wraps a framework's agent, task or node (set when a plugin wraps it)
    framework: bool = False
    started: str = field(init=False)
    complete: str = field(init=False)
    failed: str = field(init=False)
    cancelled: str = field(init=False)
    interrupted: str = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "started", f"{self.name}_started")
        set_(self, "complete", f"{self.name}_complete")
        set_(self, "failed", f"{self.name}_failed")
        set_(self, "cancelled", f"{self.name}_cancelled")
        set_(self, "interrupted", f"{self.name}_interrupted")

    def replace(self, **changes: Any) -> Coordinator:
        """A copy with some fields changed (the event names follow ``name``)."""
        return replace(self, **changes)

    def listened(self, event: str) -> bool:
        """Whether anyone may receive ``event`` (build a costly payload only then)."""
        return _bus.interested(event)

    # -- applying ------------------------------------------------------------------
    @overload
    def __call__(self, obj: F) -> F: ...

    @overload
    def __call__(self, obj: object) -> Any: ...

    def __call__(self, obj: Any) -> Any:
        """Coordinate ``obj``: a plugin's object (a graph node, a task, an agent) or a callable."""
        wrapped = wrap_with_plugins(obj, replace(self, framework=True))
        if wrapped is not None:
            return wrapped
        return self.wrap_callable(obj)

    def wrap_callable(self, obj: F) -> F:
        """Wrap a plain callable (function, method, generator, callable object)."""
        if isinstance(obj, (classmethod, staticmethod)):
            return cast(F, type(obj)(self.wrap_callable(obj.__func__)))
        if inspect.isasyncgenfunction(obj):
            wrapper: Callable[..., Any] = _async_gen_wrapper(self, obj)
        elif inspect.isgeneratorfunction(obj):
            wrapper = _gen_wrapper(self, obj)
        elif _is_async_callable(obj):
            wrapper = _async_wrapper(self, obj)
        elif callable(obj):
            wrapper = _sync_wrapper(self, obj)
        else:
            raise TypeError(
                f"@coordinate({self.name!r}) cannot wrap {type(obj).__name__} {obj!r}: it is not callable "
                "and no installed adapter recognises it"
            )
        wrapper.__agentdiff_coordinator__ = self  # type: ignore[attr-defined]
        return cast(F, wrapper)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` coordinated (locks, limit, lifecycle events)."""
        with Run(self, args, kwargs) as run:
            run.result = fn(*args, **kwargs)
        return run.result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` coordinated, without blocking the loop while waiting."""
        async with Run(self, args, kwargs) as run:
            run.result = await fn(*args, **kwargs)
        return run.result

    def run(self, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Run:
        """A coordinated run to enter by hand: ``with coordinator.run(...) as run: run.result = ...``."""
        return Run(self, args, kwargs or {})


def _is_async_callable(obj: Any) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)
    return not inspect.isclass(obj) and call is not None and inspect.iscoroutinefunction(call)


# -- the plan of a run: announce, take, call, give back, report ----------------------------
# Every driver (sync, async, generator, async generator, an adapter's Run) follows it:
# ``_announce`` (``NAME_started``, only when someone listens), the locks (all or none),
# the limit, the call, the limit and the locks given back, then ``_report`` with how the
# run ended. Only the waits differ between drivers. Payloads are built only when someone
# listens; the lock is released before the end is reported, so a handler may take it.


def _payload(c: Coordinator, data: dict[str, Any]) -> dict[str, Any]:
    if c.meta is not None:
        try:
            extra = c.meta()
        except Exception:
            logger.exception("metadata of coordinated step %r could not be read", c.name)
        else:
            for key, value in extra.items():
                data.setdefault(key, value)
    return data


def _announce(c: Coordinator, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Emit ``NAME_started`` if anyone listens; the run id, made only when needed."""
    if not _bus.interested(c.started):
        return None
    run_id = new_run_id()
    _bus.emit(c.started, _payload(c, {"args": args, "kwargs": kwargs, "timestamp": time.time(), "run_id": run_id}), c.name)
    return run_id


def _outcome(c: Coordinator, exc: BaseException | None) -> str:
    """The event that reports a run ended by ``exc`` (None: completed)."""
    if exc is None:
        return c.complete
    if isinstance(exc, c.passthrough):
        return c.interrupted
    if isinstance(exc, CANCELLED):
        return c.cancelled
    if is_passthrough(exc):  # a framework's control flow (a graph interrupt), asked only on failure
        return c.interrupted
    return c.failed


def _report(c: Coordinator, run_id: str | None, t0: float, exc: BaseException | None, result: Any = None) -> None:
    """Emit how the run ended (``_complete``, ``_failed``, ``_cancelled``, ``_interrupted``)
    if anyone listens; never raises."""
    try:
        name = _outcome(c, exc)
        if not _bus.interested(name):
            return
        data: dict[str, Any] = {"timestamp": time.time(), "duration": time.perf_counter() - t0,
                                "run_id": run_id or new_run_id()}
        if exc is None:
            data["result"] = result
        else:
            data["error_type"] = type(exc).__name__
            if name == c.failed:
                data["error"] = str(exc)
        _bus.emit(name, _payload(c, data), c.name)
    except Exception:
        logger.exception("could not report the end of coordinated step %r", c.name)


def _released_after(owner: object, c: Coordinator, original: BaseException) -> None:
    """Release after the step raised: a release error is logged, the step's error wins."""
    try:
        _locks.release_sync(owner)
    except Exception:
        logger.exception("releasing %s after %r raised %s also failed", c.locks, c.name, type(original).__name__)


async def _areleased_after(owner: object, c: Coordinator, original: BaseException) -> None:
    try:
        await _locks.release_async(owner)
    except Exception:
        logger.exception("releasing %s after %r raised %s also failed", c.locks, c.name, type(original).__name__)


# -- the drivers -------------------------------------------------------------------------


def _observed(c: Coordinator, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A watched call: the run plan entered by hand, with its spans."""
    with Run(c, args, kwargs) as run:
        run.result = fn(*args, **kwargs)
    return run.result


async def _aobserved(c: Coordinator, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    async with Run(c, args, kwargs) as run:
        run.result = await fn(*args, **kwargs)
    return run.result


def _sync_wrapper(c: Coordinator, fn: Callable[..., Any]) -> Callable[..., Any]:
    names, timeout, holder, started, complete = c.locks, c.timeout, c.name, c.started, c.complete
    quiet = _bus.listeners.get  # () means: nobody here listens for that name
    original = fn
    if c.limit is not None:  # decided once, here: a step without a limit pays nothing per call
        fn = _limits.limited_sync(c.limit, timeout, fn)
    acquire, release, perf = _locks.acquire_sync, _locks.release_sync, time.perf_counter

    @functools.wraps(fn)
    def coordinated(*args: Any, **kwargs: Any) -> Any:
        if _observers.current:  # watched: the run plan with its spans
            return _observed(c, original, args, kwargs)
        run_id = None if _bus.local_only and quiet(started) == () else _announce(c, args, kwargs)
        t0 = perf()
        held = False
        try:
            if names:
                acquire(names, timeout, holder, c)
                held = True
            result = fn(*args, **kwargs)
            if held:
                held = False
                release(c)  # a lost lease raises here: the run did not end well
        except BaseException as exc:
            if held:
                _released_after(c, c, exc)
            _report(c, run_id, t0, exc)
            raise
        if not (_bus.local_only and quiet(complete) == ()):
            _report(c, run_id, t0, None, result)
        return result

    coordinated.__wrapped__ = original  # the user's function, even under a limit
    return coordinated


def _async_wrapper(c: Coordinator, fn: Callable[..., Any]) -> Callable[..., Any]:
    names, timeout, holder, started, complete = c.locks, c.timeout, c.name, c.started, c.complete
    quiet = _bus.listeners.get
    original = fn
    if c.limit is not None:
        fn = _limits.limited_async(c.limit, timeout, fn)
    acquire, release, perf = _locks.acquire_async, _locks.release_async, time.perf_counter

    @functools.wraps(fn)
    async def coordinated(*args: Any, **kwargs: Any) -> Any:
        if _observers.current:
            return await _aobserved(c, original, args, kwargs)
        run_id = None if _bus.local_only and quiet(started) == () else _announce(c, args, kwargs)
        t0 = perf()
        held = False
        try:
            if names:
                await acquire(names, timeout, holder, c)
                held = True
            result = await fn(*args, **kwargs)
            if held:
                held = False
                await release(c)
        except BaseException as exc:
            if held:
                await _areleased_after(c, c, exc)
            _report(c, run_id, t0, exc)
            raise
        if not (_bus.local_only and quiet(complete) == ()):
            _report(c, run_id, t0, None, result)
        return result

    coordinated.__wrapped__ = original
    return coordinated


def _gen_wrapper(c: Coordinator, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def coordinated(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        with Run(c, args, kwargs) as run:
            run.result = yield from fn(*args, **kwargs)
        return run.result

    return coordinated


def _async_gen_wrapper(c: Coordinator, fn: Callable[..., AsyncGenerator[Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def coordinated(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        async with Run(c, args, kwargs):
            agen = fn(*args, **kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                try:
                    if thrown is not None:
                        error, thrown = thrown, None
                        item = await agen.athrow(error)
                    else:
                        item = await agen.asend(sent)
                except StopAsyncIteration:
                    break
                try:
                    sent = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    thrown = exc

    return coordinated


class Run:
    """One coordinated run entered by hand, with ``with`` or ``async with`` (generators,
    adapters and observed steps use it): entering announces the run and takes the locks
    and the limit; leaving gives them back and reports how it ended. Set ``run.result``
    before leaving. Observed, the run is a span (``coordinate NAME``) around its waits."""

    __slots__ = ("coordinator", "args", "kwargs", "run_id", "result", "_t0", "_held", "_permit", "_span")

    def __init__(self, coordinator: Coordinator, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
        self.coordinator = coordinator
        self.args = args
        self.kwargs = kwargs or {}
        self.run_id: str | None = None
        self.result: Any = None
        self._t0 = 0.0
        self._held = False
        self._permit: _limits.Permit | None = None
        self._span: LiveSpan | None = None

    def _begin(self) -> Coordinator:
        c = self.coordinator
        self.run_id = _announce(c, self.args, self.kwargs)
        if _observers.current:
            self.run_id = self.run_id or new_run_id()
            attrs: dict[str, Any] = {"coordination.step": c.name, "coordination.run_id": self.run_id}
            if c.framework:
                attrs["gen_ai.agent.name"] = c.name
            self._span = LiveSpan("run", c.name, self.run_id, None, attrs)
        self._t0 = time.perf_counter()
        return c

    def _took(self, waited: Waited | None, permit: _limits.Permit | None = None) -> None:
        """Observed: what the locks and the limit waited, as the run's attributes."""
        span = self._span
        if span is None:
            return
        c = self.coordinator
        if waited is not None:
            span.attrs["coordination.lock.names"] = list(c.locks)
            span.attrs.update(waited.attributes())
        if permit is not None:
            span.attrs["coordination.limit.name"] = c.limit
            span.attrs["coordination.limit.wait_duration"] = permit.waited

    def _end(self, exc: BaseException | None) -> None:
        c = self.coordinator
        _report(c, self.run_id, self._t0, exc, self.result)
        if self._span is not None:
            self._span.finish(_outcome(c, exc)[len(c.name) + 1:], exc)

    def __enter__(self) -> Run:
        c = self._begin()
        try:
            if c.locks:
                waited = _locks.acquire_sync(c.locks, c.timeout, c.name, self, None, self.run_id)
                self._held = True
                self._took(waited)
            if c.limit is not None:
                self._permit = _limits.enter_sync(_limits.get_limit(c.limit), 1, c.timeout, c.name, self.run_id)
                self._took(None, self._permit)
        except BaseException as exc:  # the run was announced: report how it ended
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        c = self.coordinator
        permit, self._permit = self._permit, None
        if permit is not None:  # the limit first: it was taken last
            _limits.leave_sync(permit)
        held, self._held = self._held, False
        try:
            if held and exc is not None:
                _released_after(self, c, exc)
            elif held:
                _locks.release_sync(self)
        except BaseException as error:  # a lost lease: the run did not end well
            self._end(error)
            raise
        self._end(exc)

    async def __aenter__(self) -> Run:
        c = self._begin()
        try:
            if c.locks:
                waited = await _locks.acquire_async(c.locks, c.timeout, c.name, self, None, self.run_id)
                self._held = True
                self._took(waited)
            if c.limit is not None:
                self._permit = await _limits.enter_async(_limits.get_limit(c.limit), 1, c.timeout, c.name, self.run_id)
                self._took(None, self._permit)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, t: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        c = self.coordinator
        permit, self._permit = self._permit, None
        if permit is not None:
            await _limits.leave_async(permit)
        held, self._held = self._held, False
        try:
            if held and exc is not None:
                await _areleased_after(self, c, exc)
            elif held:
                await _locks.release_async(self)
        except BaseException as error:
            self._end(error)
            raise
        self._end(exc)


def coordinate(
    name: str,
    lock_name: str | Iterable[str] | None = None,
    *,
    timeout: float | None = None,
    limit: str | None = None,
) -> Coordinator:
    """Coordinate a step: take ``lock_name`` (one name or several, all or none) around
    each call, and emit ``NAME_started`` / ``NAME_complete`` / ``NAME_failed``.

    Works on sync and async functions, methods, generators, and through adapters on
    LangGraph nodes, CrewAI tasks and AutoGen agents. ``timeout`` bounds the wait for the
    lock (``CoordinationTimeoutError`` names the lock and its holder); ``limit`` names a
    rate or concurrency limit declared with ``limit(...)``, taken (cost 1) after the locks
    around each call; ``timeout`` bounds that wait too. Inside the step,
    ``limit(NAME).report(tokens)`` corrects the cost with what the call really used.
    """
    check_decorator_name(name, "coordinate", "step_name")
    RUNTIME.settings()  # the environment's options (tracing, recording) apply from the first step
    locks = () if lock_name is None else _locks.normalize_names(lock_name)
    seconds = check_timeout(timeout)
    if limit is not None:
        check_name(limit, "limit name")
    return Coordinator(name, locks, seconds, limit)
