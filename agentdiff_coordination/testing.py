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

from .core import config, events
from .core.backends.base import Backend
from .core.errors import CoordinationTimeoutError
from .core.events import Event
from .core.subscriptions import Subscription
from .core.validation import check_name

__all__ = ["EventRecorder", "isolated"]


@contextmanager
def isolated(backend: Backend | str = "memory://", *, drain_timeout: float = 5.0) -> Iterator[None]:
    """A fresh backend and no subscriptions inside; afterwards, pending handlers are
    drained, every subscription made inside is removed, and the backend is closed (the
    next use makes one from the environment). Options set with ``configure`` are kept."""
    before = set(map(id, events.bus().subscriptions()))
    config.configure(backend)
    try:
        yield
    finally:
        bus = events.bus()
        bus.drain(drain_timeout)
        for sub in bus.subscriptions():
            if id(sub) not in before:
                bus.remove(sub)
        config.reset_backend()


class _Recording(Subscription):
    """Records matching events on the emitter's thread, in emit order (no handler thread).
    On a shared backend it reads the stream like a ``wait_for`` does: every event of the
    fleet after it started, on the backend's reader thread."""

    __slots__ = ("_recorder",)
    kind = "waiter"

    def __init__(self, pattern: str, recorder: EventRecorder) -> None:
        super().__init__(pattern, None, group=f"recorder:{pattern}")
        self._recorder = recorder

    def deliver(self, event: Event, ack: Any = None) -> None:
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
            events.bus().add(self._sub)
        return self

    def stop(self) -> None:
        if self._sub is not None:
            events.bus().remove(self._sub)
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
