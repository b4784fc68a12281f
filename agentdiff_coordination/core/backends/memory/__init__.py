"""The in-memory backend: one process, every thread and every event loop.

The reference implementation of the backend protocol. One mutex guards all lock
state; a name nobody holds or waits for has no state at all, so a million distinct
names leave nothing behind. Ownership passes from the releasing holder straight to
the first waiter (sync or async alike), so waiters are served strictly in arrival
order and a released lock can never be barged.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
import warnings
import weakref
from collections import deque
from asyncio import _get_running_loop
from typing import TYPE_CHECKING

from ...errors import CoordinationTimeoutError, LockNotHeldError
from ...records import BackendStatistics, Event, LockGrant
from ...snapshots import HolderInfo, LockStatus, Status
from ..base import Backend

if TYPE_CHECKING:
    from .limits import MemoryLimitStore

__all__ = ["MemoryBackend"]


class _Waiter:
    """One queued acquirer. ``grant`` is set under the backend mutex when served."""

    __slots__ = ("holder", "grant", "cancelled", "wake", "loop", "future")

    def __init__(self, holder: str | None) -> None:
        self.holder = holder
        self.grant: LockGrant | None = None
        self.cancelled = False
        # sync waiters block on a pre-acquired lock; async ones await a future
        self.wake: threading.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future[None] | None = None


_instances: weakref.WeakSet[MemoryBackend] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # the parent's other threads do not exist here: a mutex one of them held would never
    # be released, and their waiters will never come
    for backend in list(_instances):
        backend._mutex = backend._users_mutex = threading.Lock()
        backend._queues.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MemoryBackend(Backend):
    """Locks, limits and events for the threads and event loops of this process."""

    shared = False
    nonblocking_release = True

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._mutex = threading.Lock()
        self._grants: dict[str, LockGrant] = {}  # name -> current grant
        self._queues: dict[str, deque[_Waiter]] = {}  # name -> waiters, only while contended
        self._fencing = itertools.count(1)
        self._users_mutex = self._mutex  # re-entry counts kept under the same mutex
        _instances.add(self)
        self._limit_store: MemoryLimitStore | None = None

    # -- locks -------------------------------------------------------------------
    def _timeout_error(self, name: str, timeout: float | None) -> CoordinationTimeoutError:
        grant = self._grants.get(name)  # under the mutex
        holder = grant.describe() if grant is not None else None
        return CoordinationTimeoutError(
            f"lock {name!r} was not acquired within {timeout}s; it is held by {holder or 'nobody now'}",
            resource=name,
            holder=holder,
            timeout=timeout,
        )

    def _enqueue(self, name: str, waiter: _Waiter) -> None:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = deque()
        queue.append(waiter)

    def _discard(self, name: str, waiter: _Waiter) -> None:
        """Under the mutex: drop a waiter that gave up."""
        waiter.cancelled = True
        queue = self._queues.get(name)
        if queue is not None:
            try:
                queue.remove(waiter)
            except ValueError:
                pass
            if not queue:
                del self._queues[name]

    def try_acquire_lock(self, name: str, holder: str | None) -> LockGrant | None:
        mutex = self._mutex
        mutex.acquire()
        try:
            if name in self._grants:
                return None
            n = next(self._fencing)
            grant = self._grants[name] = LockGrant(name, n, n, holder)
            return grant
        finally:
            mutex.release()

    def acquire_lock(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> LockGrant:
        mutex = self._mutex
        mutex.acquire()
        if name not in self._grants:  # uncontended: the hot path, inline
            n = next(self._fencing)
            grant = self._grants[name] = LockGrant(name, n, n, holder)
            mutex.release()
            return grant
        mutex.release()
        waiter = _Waiter(holder)
        waiter.wake = wake = threading.Lock()
        wake.acquire()
        with mutex:
            taken = self._take_or_enqueue(name, waiter, timeout)
        if taken is not None:
            return taken
        if _get_running_loop() is not None:
            warnings.warn(
                f"waiting for lock {name!r} with a blocking 'with' inside a running event loop blocks the "
                "loop (and never ends if a task of this loop holds it): use 'async with lock(...)' or an "
                "async coordinated function",
                RuntimeWarning,
                stacklevel=4,
            )
        try:
            got = wake.acquire(timeout=-1 if timeout is None else timeout)
        except BaseException:
            # interrupted (KeyboardInterrupt): leave the queue, or pass on a grant that raced in
            self._abandon(name, waiter)
            raise
        if not got:
            with self._mutex:
                if waiter.grant is None:
                    self._discard(name, waiter)
                    raise self._timeout_error(name, timeout)
        # served (possibly just as the timeout fired: then the grant is ours anyway)
        assert waiter.grant is not None
        return waiter.grant

    async def acquire_lock_async(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> LockGrant:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(holder)
        waiter.loop = loop
        waiter.future = future = loop.create_future()
        with self._mutex:
            taken = self._take_or_enqueue(name, waiter, timeout)
        if taken is not None:
            return taken
        try:
            if timeout is None:
                await future
            else:
                await asyncio.wait_for(future, timeout)
        except (TimeoutError, asyncio.TimeoutError):  # distinct before 3.11
            with self._mutex:
                if waiter.grant is None:
                    self._discard(name, waiter)
                    raise self._timeout_error(name, timeout) from None
        except BaseException:
            self._abandon(name, waiter)
            raise
        assert waiter.grant is not None
        return waiter.grant

    def _take_or_enqueue(self, name: str, waiter: _Waiter, timeout: float | None) -> LockGrant | None:
        """Under the mutex: a grant if ``name`` is free now, else queue ``waiter``
        (or, with ``timeout == 0``, fail at once)."""
        if name not in self._grants:
            n = next(self._fencing)
            grant = self._grants[name] = LockGrant(name, n, n, waiter.holder)
            return grant
        if timeout == 0:
            raise self._timeout_error(name, timeout)
        self._enqueue(name, waiter)
        return None

    def _abandon(self, name: str, waiter: _Waiter) -> None:
        """A waiter gives up (cancelled, interrupted): leave the queue or hand on its grant."""
        with self._mutex:
            grant = waiter.grant
            if grant is None:
                self._discard(name, waiter)
        if grant is not None:
            self.release_lock(grant)

    def release_counted(self, grant: LockGrant) -> None:
        """Count one user out and, if it was the last, release: all under one mutex."""
        name = grant.name
        mutex = self._mutex
        mutex.acquire()
        count = grant.count - 1
        if count < 0 or self._grants.get(name) is not grant:
            mutex.release()
            raise LockNotHeldError(f"lock {name!r} was already released (fencing {grant.fencing})")
        grant.count = count
        if count:  # another user of this call chain still holds it
            mutex.release()
            return
        if name not in self._queues:
            del self._grants[name]
            mutex.release()
            return
        mutex.release()
        self.release_lock(grant)  # contended: hand it on

    def release_lock(self, grant: LockGrant) -> None:
        """Free ``name``, or hand it straight to its first live waiter."""
        name = grant.name
        with self._mutex:
            if self._grants.get(name) is not grant:
                raise LockNotHeldError(f"lock {name!r} is not held by this grant (fencing {grant.fencing})")
            queue = self._queues.get(name)
            while queue:
                waiter = queue.popleft()
                if not queue:
                    del self._queues[name]
                if waiter.cancelled:
                    continue
                n = next(self._fencing)
                new = LockGrant(name, n, n, waiter.holder)
                if waiter.wake is not None:
                    self._grants[name] = waiter.grant = new
                    waiter.wake.release()
                    return
                loop, future = waiter.loop, waiter.future
                assert loop is not None and future is not None
                # the grant is in place before the waiter can wake and look at it
                self._grants[name] = waiter.grant = new
                if loop is _get_running_loop():  # the waiter's own loop: no wake-up across threads
                    if not future.done():  # (a cancelled waiter gives the grant back itself)
                        future.set_result(None)
                    return
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:
                    # the waiter's event loop is closed: nobody will take this grant
                    waiter.grant = None
                    self._grants[name] = grant
                    continue
                return
            del self._grants[name]

    def lock_holder(self, name: str) -> str | None:
        with self._mutex:
            grant = self._grants.get(name)
            return grant.describe() if grant is not None else None

    # -- limits ------------------------------------------------------------------
    def limit_store(self) -> MemoryLimitStore:
        """This backend's limits (made on first use)."""
        store = self._limit_store
        if store is None:
            from .limits import MemoryLimitStore

            with self._mutex:
                if self._limit_store is None:
                    self._limit_store = MemoryLimitStore()
                store = self._limit_store
        return store

    # -- events ------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        self.sink.dispatch_local(event)

    # -- diagnostics -------------------------------------------------------------
    def statistics(self) -> BackendStatistics:
        with self._mutex:
            return BackendStatistics(
                locks_held=len(self._grants), lock_waiters=sum(len(q) for q in self._queues.values())
            )

    def snapshot(self) -> Status:
        """This process's locks (holder, fencing, how long, waiters), limits and events."""
        host, pid, now = socket.gethostname(), os.getpid(), time.monotonic()
        with self._mutex:
            grants = dict(self._grants)
            waiting = {name: sum(not w.cancelled for w in queue) for name, queue in self._queues.items()}
        locks = []
        for name in sorted(set(grants) | set(waiting)):
            grant = grants.get(name)
            holder = None
            if grant is not None:
                holder = HolderInfo(host, pid, grant.thread_name(), None, grant.holder)
            held_for = None if grant is None else max(now - grant.acquired_at, 0.0)
            locks.append(LockStatus(name, holder, None if grant is None else grant.fencing, held_for, None, waiting.get(name, 0)))
        store = self._limit_store
        limits = () if store is None else store.statuses()
        return Status(self.url, tuple(locks), limits, self.sink.events_status())
