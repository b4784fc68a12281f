"""The one small protocol every backend meets: locks, limits (``LimitStore``) and events.

A backend owns the shared state: who holds each named lock (and who waits for it, in
arrival order), the state of each limit, and the transport of events. Everything users
see (re-entry, several names at once, lifecycle events, handler threads, retries) is
built on these primitives in the core, once, for every backend.

A backend knows nothing of the bus, the settings or ``@coordinate``. What it needs from
above it is given to it: ``attach(sink, defaults)`` hands it the ``EventSink`` that
takes the events it receives for this process and the ``BackendDefaults`` (key prefix,
lease, lease-lost callback, exit bound) for whatever its URL or constructor left unset.

The in-memory backend is the reference implementation; every backend passes the same
conformance tests (``tests/conformance``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import LeaseLostError, LockNotHeldError
from ..limit_values import Cost, LimitSpec, LimitUsage
from ..provider_headers import ProviderReport
from ..records import BackendStatistics, DeadLetter, Event, LockGrant, SubscriptionSpec
from ..snapshots import EventsStatus, LimitStatus, RateUse, Status

__all__ = ["Backend", "BackendDefaults", "EventSink", "LimitStore", "LockGrant"]


class EventSink(Protocol):
    """What a backend hands the events it carries to: this process's bus."""

    def dispatch_local(self, event: Event) -> None:
        """Hand ``event`` to every matching subscription of this process."""

    @property
    def pending(self) -> int:
        """Deliveries queued in this process and not yet handled."""

    def subscriptions(self) -> list[SubscriptionSpec]:
        """This process's subscriptions (a forked child subscribes them again)."""

    def events_status(self) -> EventsStatus:
        """This process's side of the events: pending deliveries, dead letters, consumers."""

    def unsent(self, event: Event, error: BaseException) -> None:
        """An event this process emitted could not be sent (the backend gave up): keep it in
        ``dead_letters()`` so that it is never lost silently."""


@dataclass(frozen=True)
class BackendDefaults:
    """What a backend takes from the settings when its URL or constructor does not say."""

    key_prefix: str = "agentdiff"
    lease: float = 30.0
    on_lease_lost: Callable[[LockGrant, LeaseLostError], Any] | None = None
    #: seconds ``close`` and interpreter exit may wait for events not yet sent
    exit_flush: float = 10.0
    #: most events waiting to be sent before ``emit`` waits for room, and how long it waits
    max_pending: int = 100_000
    pending_timeout: float = 30.0


class _NoSink:
    """The sink of a backend not attached yet: events go nowhere but are not an error."""

    pending = 0

    def dispatch_local(self, event: Event) -> None:
        pass

    def subscriptions(self) -> list[SubscriptionSpec]:
        return []

    def events_status(self) -> EventsStatus:
        return EventsStatus(0, 0, ())

    def unsent(self, event: Event, error: BaseException) -> None:
        pass


class LimitStore(ABC):
    """Where a backend keeps the state of limits; the memory store is the reference.

    ``acquire`` admits ``cost`` under ``spec`` (FIFO, blocking the thread up to
    ``timeout``), ``acquire_async`` waits without blocking the loop; both return an
    opaque grant that ``release`` ends (it frees a concurrency slot) and ``report``
    corrects with the actual cost. ``timeout=0`` tries without waiting or queueing.
    ``backoff`` and ``observe`` apply what the provider said, for every process sharing
    the store.
    """

    #: True when ``release`` never blocks, so async code may call it directly
    nonblocking: bool = True

    @abstractmethod
    def acquire(self, spec: LimitSpec, cost: Cost, timeout: float | None) -> Any:
        """Admit ``cost``; raise ``CoordinationTimeoutError`` naming the limit on timeout."""

    @abstractmethod
    async def acquire_async(self, spec: LimitSpec, cost: Cost, timeout: float | None) -> Any:
        """Admit ``cost`` without blocking the loop; cancellation leaves nothing held or queued."""

    def admit_now(self, spec: LimitSpec, cost: Cost) -> Any:
        """A grant if ``cost`` is admitted at once without waiting or I/O, else None.

        The fast path of async admission; a store that cannot answer locally returns
        None and ``acquire_async`` does the work.
        """
        return None

    @abstractmethod
    def release(self, spec: LimitSpec, grant: Any) -> None:
        """End ``grant``: free its concurrency slot (rates are spent, never given back)."""

    async def release_async(self, spec: LimitSpec, grant: Any) -> None:
        """Release from async code; the default calls the non-blocking ``release``."""
        self.release(spec, grant)

    @abstractmethod
    def report(self, spec: LimitSpec, grant: Any, actual: Cost) -> None:
        """Replace the cost charged for ``grant`` by ``actual`` in the windows it still counts in."""

    async def report_async(self, spec: LimitSpec, grant: Any, actual: Cost) -> None:
        """``report`` from async code; the default calls the non-blocking ``report``."""
        self.report(spec, grant, actual)

    @abstractmethod
    def charge(self, spec: LimitSpec, cost: Cost) -> None:
        """Record ``cost`` spent now outside any admission (usage that already happened)."""

    @abstractmethod
    def backoff(self, spec: LimitSpec, seconds: float) -> None:
        """Admit nothing under ``spec`` for ``seconds`` from now (a longer backoff in force stays)."""

    @abstractmethod
    def observe(self, spec: LimitSpec, report: ProviderReport) -> None:
        """Apply what the provider said: a cap of its remaining per dimension until its
        reset, its ``retry_after`` as a backoff, and its word kept for ``usage``."""

    async def backoff_async(self, spec: LimitSpec, seconds: float) -> None:
        """``backoff`` from async code; the default calls the non-blocking ``backoff``."""
        self.backoff(spec, seconds)

    async def observe_async(self, spec: LimitSpec, report: ProviderReport) -> None:
        """``observe`` from async code; the default calls the non-blocking ``observe``."""
        self.observe(spec, report)

    @abstractmethod
    def usage(self, spec: LimitSpec) -> LimitUsage:
        """A snapshot of the limit's state."""

    def specs(self) -> tuple[LimitSpec, ...]:
        """The limits this store keeps state for (what ``statuses`` shows)."""
        return ()

    def statuses(self) -> tuple[LimitStatus, ...]:
        """Each kept limit as the status snapshot shows it: every rate's use, holders, waiters."""
        out = []
        for spec in sorted(self.specs(), key=lambda s: s.name):
            usage = self.usage(spec)
            rates = [
                RateUse(str(w.rate) + ("" if w.dimension == "tokens" else f" {w.dimension}"), w.used, w.rate.limit)
                for w in usage.windows
            ]
            if spec.concurrency is not None:
                rates.append(RateUse("concurrency", usage.holders, spec.concurrency))
            out.append(LimitStatus(spec.name, tuple(rates), usage.holders, usage.waiting))
        return tuple(out)

    def close(self) -> None:
        """Release connections and threads."""


class Backend(ABC):
    """Where locks, limits and events live.

    Lock methods take one name at a time; the core orders several names canonically
    and gives all or none. ``timeout=None`` waits forever, ``0`` does not wait.
    Waiters of one name, sync and async alike, are served in arrival order.
    """

    #: the URL this backend was made from, e.g. ``memory://`` or ``redis://host:6379/0``
    url: str = ""
    #: True when events may have subscribers outside this process, so the core
    #: cannot skip publishing an event that no local subscription matches
    shared: bool = False
    #: True when ``release_lock`` never blocks, so async code may call it directly
    nonblocking_release: bool = False

    sink: EventSink = _NoSink()
    defaults: BackendDefaults = BackendDefaults()

    def attach(self, sink: EventSink, defaults: BackendDefaults) -> None:
        """Take events to ``sink`` and fill what the URL left unset from ``defaults``.
        Called when the backend is put in use, and again when the settings change."""
        self.sink = sink
        self.defaults = defaults

    # -- locks -------------------------------------------------------------------
    @abstractmethod
    def acquire_lock(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> LockGrant:
        """Wait (blocking the thread) for ``name``; raise ``CoordinationTimeoutError`` on timeout."""

    def try_acquire_lock(self, name: str, holder: str | None) -> LockGrant | None:
        """A grant if ``name`` is free right now without waiting or I/O, else None (the
        fast path of async acquisition; ``acquire_lock_async`` does the rest)."""
        return None

    @abstractmethod
    async def acquire_lock_async(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> LockGrant:
        """Wait for ``name`` without blocking the event loop; cancellation leaves nothing held."""

    @abstractmethod
    def release_lock(self, grant: LockGrant) -> None:
        """Release ``grant``; raise ``LockNotHeldError`` when it is not the current grant."""

    async def release_lock_async(self, grant: LockGrant) -> None:
        """Release from async code; the default calls the non-blocking sync release."""
        self.release_lock(grant)

    # A grant is shared by the users of one call chain (``count``) and released when the
    # last one leaves. A backend with a mutex of its own counts under it (``_users_mutex``).
    _users_mutex = threading.Lock()

    def reenter(self, grant: LockGrant) -> bool:
        """Count one more user of ``grant``; False if it was already released."""
        with self._users_mutex:
            if grant.count > 0:
                grant.count += 1
                return True
        return False

    def leave(self, grant: LockGrant) -> bool:
        """Count one user of ``grant`` out; True when it was the last (release it then)."""
        with self._users_mutex:
            count = grant.count
            if count <= 0:
                raise LockNotHeldError(f"lock {grant.name!r} was already released")
            grant.count = count - 1
        return count == 1

    def release_counted(self, grant: LockGrant) -> None:
        """``leave``, then ``release_lock`` if that was the last user (sync callers)."""
        if self.leave(grant):
            self.release_lock(grant)

    def lock_holder(self, name: str) -> str | None:
        """A description of who holds ``name`` now, or None when free or unknown."""
        return None

    # -- limits ------------------------------------------------------------------
    def limit_store(self) -> LimitStore:
        """The store that keeps this backend's rate and concurrency limits (one per backend)."""
        raise NotImplementedError(
            f"{type(self).__name__} ({self.url or 'no URL'}) keeps no limits: implement limit_store() "
            "returning a LimitStore (see agentdiff_coordination.core.backends.base)"
        )

    # -- events ------------------------------------------------------------------
    @abstractmethod
    def publish(self, event: Event) -> None:
        """Carry ``event`` to every subscription that matches it (here and elsewhere)."""

    def subscribe(self, subscription: SubscriptionSpec) -> None:
        """A subscription was added in this process; a shared backend starts consuming for it."""

    def unsubscribe(self, subscription: SubscriptionSpec) -> None:
        """A subscription was removed in this process."""

    def drain(self, timeout: float | None) -> bool:
        """Wait for work the backend holds outside this process's bus; True when none is left."""
        return True

    def record_dead_letter(self, letter: DeadLetter) -> None:
        """A handler of this process gave up on an event it received from this backend: a
        shared backend keeps it where every process sees it (``dead-letters`` command)."""

    # -- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        """Release connections and threads. Locks still held are released where possible."""

    def statistics(self) -> BackendStatistics:
        """Counters for tests and diagnostics (names held, waiters, ...)."""
        return BackendStatistics()

    def snapshot(self) -> Status:
        """Every lock, limit and event stream of this backend, now (``status()``)."""
        raise NotImplementedError(f"{type(self).__name__} ({self.url or 'no URL'}) cannot report its status")
