"""What runs beside a Redis lock's caller: the lease watchdog, the wake channel and its waiters.

``Watchdog`` renews every lease this process holds (one ``EXTEND`` script for all
that are due) a third of the way into the lease, and reports the leases it could
not renew: taken over or expired (the server says so), or not renewable for the
whole lease (Redis unreachable). A lease that Redis lost with its data (a restart
without persistence) is reported as lost too: another process may have taken the
name since, and its fencing number is higher.

``WakeListener`` subscribes to this process's wake channel; a release that hands
a lock to one of this process's waiters publishes the grant there, and the
listener wakes that ``LocalWaiter`` (a thread or a task).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import LeaseLostError
from .redis_conn import Link
from .redis_lua import EXTEND

if TYPE_CHECKING:
    from .redis_locks import RedisLockGrant, RedisLocks

__all__ = ["LocalWaiter", "Watchdog", "WakeListener", "retrieve", "uncancelled"]

logger = logging.getLogger("agentdiff_coordination")

T = TypeVar("T")


class LocalWaiter:
    """A local acquirer waiting for a pushed hand-off (a thread or a task)."""

    __slots__ = ("wake", "future", "loop", "fencing")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.fencing: int | None = None
        self.loop = loop
        if loop is None:
            self.wake: threading.Lock | None = threading.Lock()
            self.wake.acquire()
            self.future: asyncio.Future[None] | None = None
        else:
            self.wake = None
            self.future = loop.create_future()

    def push(self, fencing: int) -> None:
        self.fencing = fencing
        if self.wake is not None:
            try:
                self.wake.release()
            except RuntimeError:
                pass  # already woken
        elif self.loop is not None and self.future is not None:
            try:
                self.loop.call_soon_threadsafe(_resolve, self.future)
            except RuntimeError:
                pass  # the loop is closed: the waiter's poll finds the grant


async def uncancelled(awaitable: Awaitable[T]) -> T:
    """``await awaitable``, raising ``CancelledError`` if the task was cancelled meanwhile.

    On Python 3.11, ``asyncio.wait_for`` (used by redis-py around socket writes, and
    here) returns the result instead of raising when a cancellation arrives just as
    the inner work completes; the task's ``cancelling()`` count still shows it.
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    before = cancelling() if cancelling is not None else 0
    result = await awaitable
    if cancelling is not None and cancelling() > before:
        raise asyncio.CancelledError()
    return result


def retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background task's outcome as seen (its caller may have been cancelled)."""
    if not task.cancelled():
        task.exception()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Watchdog:
    """Renews every lease this process holds, a third of the way into it; reports losses."""

    def __init__(self, locks: RedisLocks) -> None:
        self.locks = locks
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, RedisLockGrant]] = []
        self._wake_at = float("-inf")  # when the thread wakes by itself (-inf: it is awake)
        self._seq = itertools.count()
        self._stopped = False
        self._link = Link(locks.b.new_connection)
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-watchdog", daemon=True)
        self._thread.start()

    def add(self, grant: RedisLockGrant) -> None:
        with self._cond:
            heap = self._heap
            heapq.heappush(heap, (grant.renew_due, next(self._seq), grant))
            if len(heap) > 1024 and len(heap) > 4 * (len(self.locks._held) + 1):
                # released grants leave the heap when due; short holds pile them up: sweep
                heap[:] = [entry for entry in heap if not entry[2].released]
                heapq.heapify(heap)
            if grant.renew_due < self._wake_at:  # due before the watchdog means to wake up
                self._wake_at = grant.renew_due
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _due(self) -> list[RedisLockGrant] | None:
        """Wait for the next renewals; None when stopped."""
        with self._cond:
            while True:
                if self._stopped:
                    return None
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    batch: list[RedisLockGrant] = []
                    horizon = now + 0.05  # renew those almost due too: fewer wake-ups
                    while self._heap and self._heap[0][0] <= horizon and len(batch) < 500:
                        grant = heapq.heappop(self._heap)[2]
                        if not grant.released and grant._lost is None:
                            batch.append(grant)
                    if batch:
                        return batch
                    continue
                self._wake_at = self._heap[0][0] if self._heap else float("inf")
                self._cond.wait(None if not self._heap else self._heap[0][0] - now)
                self._wake_at = float("-inf")  # awake: no need to notify

    def _run(self) -> None:
        b = self.locks.b
        while (batch := self._due()) is not None:
            keys: list[str] = []
            args: list[Any] = []
            sent = time.monotonic()
            for g in batch:
                keys.append(g._keys[0])
                args += [g.token, int(g.lease * 1000)]
            try:
                replies = self._link.script(EXTEND, keys, args)
            except Exception as exc:
                self._link.reset()
                self._unreachable(batch, exc)
                continue
            for g, r in zip(batch, replies):
                if g.released:
                    continue
                if r == 0:
                    b.report_lost(g, LeaseLostError(
                        f"lock {g.name!r} (fencing {g.fencing}) was lost: its lease expired, was taken "
                        "over, or vanished with Redis's data before it could be renewed",
                        name=g.name, fencing=g.fencing,
                    ))
                    continue
                g.valid_until = sent + g.lease
                g.renew_due = sent + g.lease / 3
                self.add(g)
        self._link.close()

    def _unreachable(self, batch: list[RedisLockGrant], exc: BaseException) -> None:
        now = time.monotonic()
        for g in batch:
            if g.released:
                continue
            if now >= g.valid_until:
                self.locks.b.report_lost(g, LeaseLostError(
                    f"lock {g.name!r} (fencing {g.fencing}): its {g.lease:g}s lease ran out while Redis "
                    f"could not be reached to renew it ({exc})", name=g.name, fencing=g.fencing,
                ))
            else:
                g.renew_due = now + min(0.1, (g.valid_until - now) / 2)
                self.add(g)
        if not self._stopped:
            time.sleep(0.05)


class WakeListener:
    """Receives this process's hand-offs on its own pub/sub channel and wakes the waiter."""

    def __init__(self, locks: RedisLocks) -> None:
        self.locks = locks
        self.channel = locks.b.key("wake", locks.b.process_id)
        self._link = Link(locks.b.new_connection)
        self._stopped = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-wake", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10.0)  # until subscribed (or failed): hand-offs are not missed

    def stop(self) -> None:
        self._stopped = True
        self._link.close()

    def _subscribe(self) -> None:
        self._link.send("SUBSCRIBE", self.channel)
        self._link.read()  # the confirmation

    def _run(self) -> None:
        pause = 0.05
        while not self._stopped:
            try:
                self._subscribe()
                self._ready.set()
                pause = 0.05
                while not self._stopped:
                    msg = self._link.read(timeout=1.0)
                    if msg is None or msg[0] != b"message":
                        continue
                    token, _, fencing = msg[2].decode().partition(" ")
                    self.locks.wake(token, int(fencing))
            except Exception as exc:
                self._link.reset()
                self._ready.set()  # waiters fall back on polling while this reconnects
                if self._stopped:
                    break
                logger.debug("lock wake channel lost (%s); reconnecting", exc)
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
        self._link.close()

