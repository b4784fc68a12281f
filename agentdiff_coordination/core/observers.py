"""Observers: who is told about every coordinated run, wait and hold.

The core calls ``observer.span(record)`` once for each finished span (a coordinated
run, a wait for a lock or limit, a hold of one, a handler's run) while at least one
observer is registered. An observer that also has ``begin(live)`` and ``end(live, token,
record, error)`` (a tracer, such as the OpenTelemetry one) is told when each span begins
too, so it can make the span current while the step runs, and at its end gets the
``LiveSpan`` with its attributes instead of ``span(record)``. The registry is a tuple
swapped atomically (``current``), so the hot path costs one truth test and observers
are added or removed from any thread.

``agentdiff_coordination.record(path)`` is an observer that writes JSON Lines; the
OpenTelemetry integration is another.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LiveSpan", "Observer", "SpanRecord", "add_observer", "carrier", "current", "notify", "observers", "outcome_of", "remove_observer"]

logger = logging.getLogger("agentdiff_coordination")

#: the kinds of span a recording holds, in the order a run meets them
SPAN_KINDS = ("run", "lock_wait", "lock_hold", "limit_wait", "limit_hold")
#: further kinds a tracer sees: a ``with lock()`` or ``with limit()`` outside a step, a handler's run
OUTER_KINDS = ("lock", "limit", "handle")


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span: a coordinated run, or a wait for / hold of locks or a limit.

    ``kind`` is ``"run"``, ``"lock_wait"``, ``"lock_hold"``, ``"limit_wait"`` or
    ``"limit_hold"``; ``step`` the coordinated step's name (None outside a step);
    ``resource`` the lock names joined with ``","`` or the limit's name (None for a
    run); ``start`` and ``end`` are ``time.time()`` seconds. ``outcome`` is, for a run,
    ``complete``, ``failed``, ``cancelled`` or ``interrupted``; for a wait, ``granted``,
    ``timeout`` or ``cancelled``; None for a hold. ``host``, ``pid``, ``thread`` and
    ``task`` say where it ran (``task`` is the asyncio task's name, None in sync code).
    """

    kind: str
    step: str | None
    run_id: str | None
    resource: str | None
    start: float
    end: float
    outcome: str | None
    fencing: int | None
    error: str | None
    host: str
    pid: int
    thread: str
    task: str | None


class Observer(Protocol):
    """Anything with a ``span(record)`` method. It is called on the thread that
    finished the span, so it must be quick, thread-safe and must not raise."""

    def span(self, record: SpanRecord) -> None: ...


_mutex = threading.Lock()
#: the observers registered now, each with whether it is a tracer (has ``begin``/``end``)
current: tuple[tuple[Observer, bool], ...] = ()


def add_observer(observer: Observer) -> None:
    """Tell ``observer`` about every span from now on (adding it twice tells it twice)."""
    global current
    if not callable(getattr(observer, "span", None)):
        raise TypeError(f"observer must have a span(record) method, not {observer!r}")
    tracer = callable(getattr(observer, "begin", None)) and callable(getattr(observer, "end", None))
    with _mutex:
        current = current + ((observer, tracer),)


def remove_observer(observer: Observer) -> None:
    """Stop telling ``observer`` (one registration of it); unknown observers are ignored."""
    global current
    with _mutex:
        found = [i for i, (o, _) in enumerate(current) if o is observer]
        if found:
            i = found[-1]
            current = current[:i] + current[i + 1 :]


def observers() -> tuple[Observer, ...]:
    """The observers registered now (empty when none)."""
    return tuple(o for o, _ in current)


_host = socket.gethostname()
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _task_name() -> str | None:
    loop = asyncio._get_running_loop()  # no exception to pay for outside a loop
    if loop is None:
        return None
    task = asyncio.current_task(loop)
    return None if task is None else task.get_name()


class LiveSpan:
    """A span being observed: made when it begins (tracers are told), ``finish``ed when it
    ends (every observer is told). ``attrs`` holds what a tracer shows as attributes
    (``coordination.*`` names); ``parent`` a trace context carried by an event."""

    __slots__ = ("kind", "step", "run_id", "resource", "start", "t0", "attrs", "parent", "_tokens", "_done")

    def __init__(
        self,
        kind: str,
        step: str | None,
        run_id: str | None,
        resource: str | None,
        attrs: dict[str, Any] | None = None,
        parent: Any = None,
    ) -> None:
        self.kind, self.step, self.run_id, self.resource = kind, step, run_id, resource
        self.start = time.time()
        self.t0 = time.perf_counter()
        self.attrs: dict[str, Any] = attrs if attrs is not None else {}
        self.parent = parent
        self._done = False
        tokens = []
        for observer, tracer in current:
            token = None
            if tracer:
                try:
                    token = observer.begin(self)  # type: ignore[attr-defined]
                except Exception:
                    logger.exception("observer %r failed at the start of a %s span", observer, kind)
            tokens.append((observer, tracer, token))
        self._tokens = tuple(tokens)

    @property
    def elapsed(self) -> float:
        """Seconds since the span began."""
        return time.perf_counter() - self.t0

    def finish(self, outcome: str | None = None, error: BaseException | None = None, fencing: int | None = None) -> None:
        """End the span (once) and tell every observer that was told it began."""
        if self._done:
            return
        self._done = True
        record = SpanRecord(
            self.kind, self.step, self.run_id, self.resource, self.start, self.start + self.elapsed, outcome, fencing,
            None if error is None else f"{type(error).__name__}: {error}", _host, _pid,
            threading.current_thread().name, _task_name(),
        )
        for observer, tracer, token in self._tokens:
            try:
                if tracer:
                    observer.end(self, token, record, error)  # type: ignore[attr-defined]
                elif self.kind in SPAN_KINDS:
                    observer.span(record)
            except Exception:
                logger.exception("observer %r failed at the end of a %s span", observer, self.kind)


def outcome_of(error: BaseException | None) -> str:
    """A wait's outcome: granted, timeout or cancelled (anything else that ended it: failed)."""
    if error is None:
        return "granted"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
        return "cancelled"
    return "failed"


def carrier() -> dict[str, str] | None:
    """The trace context of the caller, for an event to carry (from the first tracer
    that has ``inject()``), or None."""
    for observer, tracer in current:
        inject = getattr(observer, "inject", None) if tracer else None
        if inject is not None:
            try:
                found: dict[str, str] | None = inject()
            except Exception:
                logger.exception("observer %r failed to give the trace context", observer)
                return None
            return found
    return None


def notify(name: str, **attrs: Any) -> None:
    """Tell the observers that have a ``count(name, attrs)`` method about one occurrence
    (``dead_letter``)."""
    for observer, _ in current:
        count = getattr(observer, "count", None)
        if count is not None:
            try:
                count(name, attrs)
            except Exception:
                logger.exception("observer %r failed to count %s", observer, name)
