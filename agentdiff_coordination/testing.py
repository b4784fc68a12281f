"""Helpers for your own tests: a clean coordination state per test, and a recorder of events.

```python
from agentdiff_coordination.testing import EventRecorder, isolated

def test_research_chains_into_analysis():
    with isolated(), EventRecorder("*_complete") as seen:
        research_agent("agents")
        seen.wait_for_count(2, timeout=5)
        assert seen.names() == ["researcher_complete", "analyzer_complete"]
```

With pytest, wrap ``isolated()`` in an autouse fixture to give every test a fresh
in-memory backend and no leftover handlers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from .core import limits, locks, plugins
from .core.backends.base import Backend
from .core.errors import CoordinationTimeoutError
from .core.records import Ack, Event, SubscriptionSpec
from .core.runtime import RUNTIME
from .core.validation import check_name

__all__ = ["EventRecorder", "isolated", "reset"]


def reset() -> None:
    """Everything back to a fresh process: pending handlers drained (bounded), every
    subscription, dead letter and declared limit dropped, the backend closed, the settings
    and the plugins forgotten. The one reset the test suites use."""
    RUNTIME.reset()
    locks.forget_held()
    limits.forget_declarations()
    plugins.reset_plugins()


@contextmanager
def isolated(backend: Backend | str = "memory://", *, drain_timeout: float = 5.0) -> Iterator[None]:
    """A fresh backend and no subscriptions inside; afterwards, pending handlers are
    drained, every subscription made inside is removed, and the backend is closed (the
    next use makes one from the environment). Options set with ``configure`` are kept."""
    bus = RUNTIME.bus
    before = set(map(id, bus.subscriptions()))
    RUNTIME.configure(backend)
    try:
        yield
    finally:
        bus.drain(drain_timeout)
        for sub in bus.subscriptions():
            if id(sub) not in before:
                bus.remove(sub)
        RUNTIME.reset_backend()
        locks.forget_held()  # a lock the test left held must not leak into the next one


class _Recording(SubscriptionSpec):
    """Records matching events on the emitter's thread, in emit order (no handler thread).
    On a shared backend it reads the stream like a ``wait_for`` does: every event of the
    fleet after it started, on the backend's reader thread."""

    __slots__ = ("_recorder",)
    kind = "waiter"

    def __init__(self, pattern: str, recorder: EventRecorder) -> None:
        super().__init__(pattern, f"recorder:{pattern}")
        self._recorder = recorder

    def deliver(self, event: Event, ack: Ack | None = None) -> None:
        self._recorder._add(event)
        if ack is not None:
            ack()


class EventRecorder:
    """Records every event matching ``pattern`` from when it is entered (or ``start()``ed)
    until it is left (or ``stop()``ped). Events are recorded as they are emitted, in order,
    on the emitter's thread, so assertions need no sleeps."""

    def __init__(self, pattern: str = "*") -> None:
        check_name(pattern, "event pattern")
        self.pattern = pattern
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._sub: _Recording | None = None

    def _add(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def start(self) -> EventRecorder:
        if self._sub is None:
            self._sub = _Recording(self.pattern, self)
            RUNTIME.bus.add(self._sub)
        return self

    def stop(self) -> None:
        if self._sub is not None:
            RUNTIME.bus.remove(self._sub)
            self._sub = None

    def __enter__(self) -> EventRecorder:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def names(self) -> list[str]:
        """The names of the events recorded so far, in emit order."""
        with self._changed:
            return [event.name for event in self.events]

    def data(self, name: str) -> list[Any]:
        """The data of every recorded event called ``name``."""
        with self._changed:
            return [event.data for event in self.events if event.name == name]

    def wait_for_count(self, count: int, *, timeout: float = 5.0) -> list[Event]:
        """Wait until at least ``count`` events are recorded; returns them.
        ``CoordinationTimeoutError`` says how many arrived and which."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.events) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CoordinationTimeoutError(
                        f"{len(self.events)} of {count} events matching {self.pattern!r} arrived within "
                        f"{timeout}s: {[event.name for event in self.events]}",
                        resource=self.pattern,
                        timeout=timeout,
                    )
                self._changed.wait(remaining)
            return list(self.events)
