"""Observers: who is told about every coordinated run, wait and hold.

The core calls ``observer.span(record)`` once for each finished span (a coordinated
run, a wait for a lock or limit, a hold of one) while at least one observer is
registered. The registry is a tuple swapped atomically, so the hot path costs one
truth test (``if _observers:``) and observers are added or removed from any thread.

``agentdiff_coordination.record(path)`` is an observer that writes JSON Lines; the
OpenTelemetry integration is another.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Observer", "SpanRecord", "add_observer", "observers", "remove_observer"]

#: the kinds of span, in the order a run meets them
SPAN_KINDS = ("run", "lock_wait", "lock_hold", "limit_wait", "limit_hold")


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
_observers: tuple[Observer, ...] = ()


def add_observer(observer: Observer) -> None:
    """Tell ``observer`` about every span from now on (adding it twice tells it twice)."""
    global _observers
    if not callable(getattr(observer, "span", None)):
        raise TypeError(f"observer must have a span(record) method, not {observer!r}")
    with _mutex:
        _observers = _observers + (observer,)


def remove_observer(observer: Observer) -> None:
    """Stop telling ``observer`` (one registration of it); unknown observers are ignored."""
    global _observers
    with _mutex:
        found = [i for i, o in enumerate(_observers) if o is observer]
        if found:
            i = found[-1]
            _observers = _observers[:i] + _observers[i + 1 :]


def observers() -> tuple[Observer, ...]:
    """The observers registered now (empty when none)."""
    return _observers
