"""The plain records that travel between layers: events, subscriptions' specs, lock grants,
dead letters and backend statistics; and the ids that name events and runs.

Nothing here knows of a backend, the bus, the settings or ``@coordinate``: every layer
above may import this module, and it imports nothing of the package but the errors.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "Ack",
    "BackendStatistics",
    "DeadLetter",
    "Event",
    "LockGrant",
    "SubscriptionSpec",
    "new_event_id",
    "new_run_id",
]

#: called once an event is handled, so a shared backend can acknowledge it
Ack = Callable[[], None]


class Event(NamedTuple):
    """One event: its ``name``, its ``data`` (what handlers receive), a unique ``id``,
    the ``sender`` given to ``emit`` (or the coordinated step's name), the wall
    ``timestamp`` at emit, and the ``trace`` context of the code that emitted it (a
    carrier dict, when a tracer observes). Immutable (a named tuple: cheap to make)."""

    name: str
    data: Any
    id: str
    sender: str | None
    timestamp: float
    trace: dict[str, str] | None = None


# -- ids: a per-process random prefix and counters; cheap, unique across processes ----------

_prefix = secrets.token_hex(4) + "-"
_event_ids = itertools.count(1)
_run_ids = itertools.count(1)


def new_event_id() -> str:
    """A new event id, unique across processes (``"1f2e3d4c-17"``)."""
    return _prefix + str(next(_event_ids))


def new_run_id() -> str:
    """A new run id for the lifecycle events of one coordinated call (``"run-1f2e3d4c-3"``)."""
    return f"run-{_prefix}{next(_run_ids)}"


def _new_prefix() -> None:  # after fork, the child gets its own prefix
    global _prefix, _event_ids, _run_ids
    _prefix = secrets.token_hex(4) + "-"
    _event_ids = itertools.count(1)
    _run_ids = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


class SubscriptionSpec:
    """What a backend knows of a subscription: its ``pattern``, its ``group`` (the name the
    processes that share its events know it by) and where matching events go (``deliver``).

    ``kind`` is ``"handler"`` (at-least-once work shared by the group) or ``"waiter"`` (one
    ``wait_for``: the next matching event, in this process only).
    """

    __slots__ = ("pattern", "group", "active", "_exact", "_regex", "__weakref__")

    kind = "handler"

    def __init__(self, pattern: str, group: str) -> None:
        self.pattern = pattern
        self.group = group
        self.active = True
        self._exact = not any(c in pattern for c in "*?[")
        self._regex = None if self._exact else re.compile(fnmatch.translate(pattern))

    def matches(self, name: str) -> bool:
        """Whether an event called ``name`` matches the pattern (``fnmatch`` wildcards)."""
        if self._exact:
            return name == self.pattern
        assert self._regex is not None
        return self._regex.match(name) is not None

    def deliver(self, event: Event, ack: Ack | None = None) -> None:
        """Hand ``event`` on; ``ack`` runs once it has been handled."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.pattern!r} -> {self.group}>"


class LockGrant:
    """One grant of one named lock, as handed out by a backend.

    ``token`` identifies the grant (only its holder can release it), ``fencing`` is a
    number that grows with every grant of that name: pass it to the resource you
    protect so that a write from a holder whose lease was lost can be refused.
    ``count`` is kept by the core: how many users of one call chain share the grant.
    """

    __slots__ = ("name", "token", "fencing", "holder", "thread", "acquired_at", "count", "__weakref__")

    def __init__(self, name: str, token: str | int, fencing: int, holder: str | None) -> None:
        self.name = name
        self.token = token
        self.fencing = fencing
        self.holder = holder
        self.thread = threading.get_ident()
        self.acquired_at = time.monotonic()
        self.count = 1

    @property
    def lost(self) -> BaseException | None:
        """The error that ended this grant early (a lost lease), or None while it is good."""
        return None

    def thread_name(self) -> str:
        """The name of the thread that took the grant (its id when it has ended)."""
        thread = threading._active.get(self.thread)  # type: ignore[attr-defined]
        return thread.name if thread is not None else f"thread id {self.thread}"

    def describe(self) -> str:
        """Who holds this grant, for error messages."""
        who = repr(self.holder) if self.holder else "an anonymous holder"
        where = f"thread {self.thread_name()!r}"
        held_for = time.monotonic() - self.acquired_at
        return f"{who} ({where}, held for {held_for:.3f}s, fencing {self.fencing})"

    def __repr__(self) -> str:
        return f"<LockGrant {self.name!r} fencing={self.fencing} holder={self.holder!r}>"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a handler could not handle after all its attempts."""

    event: Event
    handler: str
    error: BaseException
    traceback: str
    attempts: int


@dataclass(frozen=True, slots=True)
class BackendStatistics:
    """Counters of a backend, for tests and diagnostics: lock names held now and callers
    waiting for a lock (by this process, on a shared backend); on a shared backend also the
    event groups this process reads, events accepted by ``emit`` and not yet sent, events read
    and not yet acknowledged, and events given up on (refused by the server; they are in
    ``dead_letters()``)."""

    locks_held: int = 0
    lock_waiters: int = 0
    event_groups: int = 0
    events_queued: int = 0
    events_in_flight: int = 0
    events_lost: int = 0
