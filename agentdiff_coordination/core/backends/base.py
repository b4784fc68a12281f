"""The small protocol every backend meets.

A backend owns the shared state: who holds each named lock (and who waits for it,
in arrival order), the state of each limit, and the transport of events. Everything
users see (re-entry, several names at once, lifecycle events, handler threads,
retries) is built on these primitives in the core, once, for every backend.

The in-memory backend is the reference implementation; every backend passes the
same conformance tests (``tests/conformance``).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ..errors import LockNotHeldError

if TYPE_CHECKING:
    from ..events import Bus, Event, Subscription
    from ..limit_store import LimitStore

__all__ = ["Backend", "LockGrant"]


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

    def describe(self) -> str:
        """Who holds this grant, for error messages."""
        who = repr(self.holder) if self.holder else "an anonymous holder"
        thread = threading._active.get(self.thread)  # type: ignore[attr-defined]
        where = f"thread {thread.name!r}" if thread is not None else f"thread id {self.thread}"
        held_for = time.monotonic() - self.acquired_at
        return f"{who} ({where}, held for {held_for:.3f}s, fencing {self.fencing})"

    def __repr__(self) -> str:
        return f"<LockGrant {self.name!r} fencing={self.fencing} holder={self.holder!r}>"


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

    # -- locks -------------------------------------------------------------------
    @abstractmethod
    def acquire_lock(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> LockGrant:
        """Wait (blocking the thread) for ``name``; raise ``CoordinationTimeoutError`` on timeout."""

    def try_acquire_lock(self, name: str, holder: str | None) -> LockGrant | None:
        """A grant if ``name`` is free right now without waiting or I/O, else None.

        The fast path of async acquisition; a backend that cannot answer locally
        returns None and ``acquire_lock_async`` does the work.
        """
        return None

    @abstractmethod
    async def acquire_lock_async(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> LockGrant:
        """Wait for ``name`` without blocking the event loop; cancellation leaves nothing held."""

    @abstractmethod
    def release_lock(self, grant: LockGrant) -> None:
        """Release ``grant``; raise ``LockNotHeldError`` when it is not the current grant."""

    # -- users of one grant (re-entry by one call chain) ----------------------------
    # A grant may be shared by the users of one call chain (``count``); it is released
    # when the last one leaves. A backend with a mutex of its own may override these to
    # count under it (the memory backend does: one mutex per release instead of two).
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

    async def release_lock_async(self, grant: LockGrant) -> None:
        """Release from async code; the default calls the non-blocking sync release."""
        self.release_lock(grant)

    def lock_holder(self, name: str) -> str | None:
        """A description of who holds ``name`` now, or None when free or unknown."""
        return None

    # -- limits ------------------------------------------------------------------
    def limit_store(self) -> LimitStore:
        """The store that keeps this backend's rate and concurrency limits (one per backend)."""
        raise NotImplementedError(
            f"{type(self).__name__} ({self.url or 'no URL'}) keeps no limits: implement limit_store() "
            "returning a LimitStore (see agentdiff_coordination.core.limit_store)"
        )

    # -- events ------------------------------------------------------------------
    def bind(self, bus: Bus) -> None:
        """Give the backend the local bus that runs this process's handlers."""
        self._bus = bus

    @abstractmethod
    def publish(self, event: Event) -> None:
        """Carry ``event`` to every subscription that matches it (here and elsewhere)."""

    def subscribe(self, subscription: Subscription) -> None:
        """A subscription was added in this process; a shared backend starts consuming for it."""

    def unsubscribe(self, subscription: Subscription) -> None:
        """A subscription was removed in this process."""

    def drain(self, timeout: float | None) -> bool:
        """Wait for work the backend holds outside this process's bus; True when none is left."""
        return True

    # -- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        """Release connections and threads. Locks still held are released where possible."""

    def statistics(self) -> dict[str, Any]:
        """Counters for tests and diagnostics (names held, waiters, ...)."""
        return {}
