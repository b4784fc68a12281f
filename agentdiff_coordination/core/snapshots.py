"""The status snapshot: every lock, limit and event stream of a backend, now.

``status()`` returns a ``Status``; ``Status.to_json()`` is its JSON form, public API::

    {"backend": "redis://host:6379/0",
     "locks": [{"name", "holder", "fencing", "held_for", "lease_left", "waiting"}],
     "limits": [{"name", "rates": [{"rate", "used", "limit"}], "holders", "waiting"}],
     "events": {"pending", "dead_letters", "consumers": [{"group", "consumer", "pending", "idle"}]}}

``holder`` is ``{"host", "pid", "thread", "task", "step"}`` (any field null when the
backend does not know it; ``task`` is the asyncio task, ``step`` the coordinated step),
or null when nobody holds the lock. ``held_for`` and ``lease_left`` are seconds (null
when unknown; ``lease_left`` is null on the memory backend, which has no leases).
A limit's ``rates`` list each rate with the cost ``used`` in its current window:
``rate`` is the rate as declared (``"90000/min"``), followed by ``" requests"`` when it
counts admissions rather than cost; a concurrency limit appears as the rate
``"concurrency"`` with ``used`` holders of ``limit`` slots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ConsumerStatus", "EventsStatus", "HolderInfo", "LimitStatus", "LockStatus", "RateUse", "Status"]


def _field(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], what: str, optional: bool = False) -> Any:
    if not isinstance(data, Mapping):
        raise TypeError(f"{what} must be a JSON object, not {data!r}")
    if key not in data:
        raise ValueError(f"{what} has no {key!r}: {dict(data)!r}")
    value = data[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise TypeError(f"{what}[{key!r}] must be {types}, not {value!r}")
    if not isinstance(value, types):
        raise TypeError(f"{what}[{key!r}] must be {types}, not {value!r}")
    return value


_NUM = (int, float)


@dataclass(frozen=True, slots=True)
class HolderInfo:
    """Who holds a lock: host, process, thread or asyncio task, and coordinated step."""

    host: str | None = None
    pid: int | None = None
    thread: str | None = None
    task: str | None = None
    step: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "thread": self.thread, "task": self.task, "step": self.step}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HolderInfo:
        w = "holder"
        return cls(
            _field(data, "host", str, w, True), _field(data, "pid", int, w, True), _field(data, "thread", str, w, True),
            _field(data, "task", str, w, True), _field(data, "step", str, w, True),
        )

    def describe(self) -> str:
        """``step on host:pid thread T (task K)`` with what is known."""
        where = ":".join(str(p) for p in (self.host, self.pid) if p is not None)
        parts = [self.step or "(no step)"]
        if where:
            parts.append(f"on {where}")
        if self.task:
            parts.append(f"task {self.task}")
        elif self.thread:
            parts.append(f"thread {self.thread}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class LockStatus:
    """One lock: its holder (None when free), fencing, seconds held, lease left, waiters."""

    name: str
    holder: HolderInfo | None
    fencing: int | None
    held_for: float | None
    lease_left: float | None
    waiting: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "holder": None if self.holder is None else self.holder.to_json(),
            "fencing": self.fencing, "held_for": self.held_for, "lease_left": self.lease_left, "waiting": self.waiting,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockStatus:
        w = "lock"
        holder = _field(data, "holder", Mapping, w, True)
        return cls(
            _field(data, "name", str, w), None if holder is None else HolderInfo.from_json(holder),
            _field(data, "fencing", int, w, True), _field(data, "held_for", _NUM, w, True),
            _field(data, "lease_left", _NUM, w, True), _field(data, "waiting", int, w),
        )


@dataclass(frozen=True, slots=True)
class RateUse:
    """One rate of a limit: ``used`` of ``limit`` in its current window."""

    rate: str
    used: int
    limit: int

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "used": self.used, "limit": self.limit}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RateUse:
        w = "rate"
        return cls(_field(data, "rate", str, w), _field(data, "used", int, w), _field(data, "limit", int, w))


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """One limit: each rate's use, holders now, waiters."""

    name: str
    rates: tuple[RateUse, ...]
    holders: int
    waiting: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rates": [r.to_json() for r in self.rates], "holders": self.holders, "waiting": self.waiting}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LimitStatus:
        w = "limit"
        return cls(
            _field(data, "name", str, w), tuple(RateUse.from_json(r) for r in _field(data, "rates", list, w)),
            _field(data, "holders", int, w), _field(data, "waiting", int, w),
        )


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    """One consumer of a subscription group: events delivered but not yet handled, seconds idle."""

    group: str
    consumer: str
    pending: int
    idle: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "consumer": self.consumer, "pending": self.pending, "idle": self.idle}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsumerStatus:
        w = "consumer"
        return cls(
            _field(data, "group", str, w), _field(data, "consumer", str, w),
            _field(data, "pending", int, w), _field(data, "idle", _NUM, w, True),
        )


@dataclass(frozen=True, slots=True)
class EventsStatus:
    """Events not yet handled, dead letters kept, and the consumers of each group."""

    pending: int
    dead_letters: int
    consumers: tuple[ConsumerStatus, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"pending": self.pending, "dead_letters": self.dead_letters, "consumers": [c.to_json() for c in self.consumers]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventsStatus:
        w = "events"
        return cls(
            _field(data, "pending", int, w), _field(data, "dead_letters", int, w),
            tuple(ConsumerStatus.from_json(c) for c in _field(data, "consumers", list, w)),
        )


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of a backend: its URL, its locks, limits and events."""

    backend: str
    locks: tuple[LockStatus, ...] = ()
    limits: tuple[LimitStatus, ...] = ()
    events: EventsStatus = EventsStatus(0, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "locks": [lock.to_json() for lock in self.locks],
            "limits": [lim.to_json() for lim in self.limits], "events": self.events.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Status:
        w = "status"
        return cls(
            _field(data, "backend", str, w), tuple(LockStatus.from_json(x) for x in _field(data, "locks", list, w)),
            tuple(LimitStatus.from_json(x) for x in _field(data, "limits", list, w)),
            EventsStatus.from_json(_field(data, "events", Mapping, w)),
        )
