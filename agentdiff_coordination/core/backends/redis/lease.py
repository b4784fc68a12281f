"""What runs beside a Redis lock's callers: the watchdog, the wake channel and its waiters.

``Watchdog`` is one thread per process. It renews every lease this process holds (one
``EXTEND`` script for all that are due) a third of the way into the lease, and reports
each lease it could not renew no later than the lease's end, by its own clock: every
command it sends is bounded by the earliest lease end it guards. While this process has
waiters it also keeps their places alive: one ``TEND`` script per tick for all the names
they wait for renews the process's liveness key (a waiter is served only while its
process is alive), hands on a name whose holder died, and tells which token holds each
name (a hand-off whose message was lost is found there).

``WakeListener`` subscribes to this process's wake channel. A release that hands a lock
to one of this process's waiters publishes the waiter's token there; the message is only
a hint: the waiter then asks Redis (``ACQUIRE`` confirms a grant made to its token) and
enters only on a grant Redis confirmed. A forged message costs one round trip, no more.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from ...errors import LeaseLostError
from .grant import RedisLockGrant
from .link import IO_TIMEOUT, Context, Pauses
from .scripts import EXTEND, TEND

__all__ = ["ALIVE_MS", "TICK", "LeaseKeeper", "LocalWaiter", "Watchdog", "WakeListener"]

logger = logging.getLogger("agentdiff_coordination")

#: a process whose watchdog has not spoken for this long is presumed dead: its waiters are skipped
ALIVE_MS = 5000
#: seconds between two heartbeats of a process with waiters
TICK = 1.0
#: a lease is reported lost this long before its end when it could not be renewed
MARGIN = 0.05


class LeaseKeeper(Protocol):
    """What the watchdog and the wake listener need of the locks they serve (``RedisLocks``)."""

    @property
    def ctx(self) -> Context: ...

    @property
    def process(self) -> str: ...  # this process's name (wake channel, liveness key)

    @property
    def held(self) -> Mapping[str, RedisLockGrant]: ...  # token -> grant, while held

    @property
    def handoff_ms(self) -> int: ...

    def keys(self, name: str) -> tuple[str, str, str, str]: ...

    def report_lost(self, grant: RedisLockGrant, error: LeaseLostError) -> None: ...

    def waited_names(self) -> list[str]: ...

    def tended(self, name: str, token: str) -> None: ...

    def wake(self, token: str) -> None: ...

    def hint_all(self) -> None: ...


class LocalWaiter:
    """A local acquirer (a thread or a task) waiting for a hint to ask Redis again."""

    __slots__ = ("name", "wake", "loop", "future", "hinted", "queued")

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop | None) -> None:
        self.name = name
        self.loop = loop
        self.hinted = False
        #: Redis has the waiter in the lock's queue (its ACQUIRE answered "wait")
        self.queued = False
        self.future: asyncio.Future[None] | None = None
        self.wake: threading.Lock | None = None
        if loop is None:
            self.wake = threading.Lock()
            self.wake.acquire()

    def push(self) -> None:
        """A hint (from any thread): the lock may be ours now, ask Redis."""
        if self.wake is not None:
            try:
                self.wake.release()
            except RuntimeError:
                pass  # already hinted
        elif self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._hint)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

    def _hint(self) -> None:
        self.hinted = True
        future = self.future
        if future is not None and not future.done():
            future.set_result(None)

    def wait(self, timeout: float | None) -> bool:
        """(A thread) wait for a hint; True when hinted."""
        assert self.wake is not None
        return self.wake.acquire(timeout=-1 if timeout is None else max(0.0, timeout))

    async def await_hint(self, timeout: float | None) -> bool:
        """(A task) wait for a hint; True when hinted."""
        if not self.hinted:
            assert self.loop is not None
            self.future = future = self.loop.create_future()
            # not asyncio.wait_for: on 3.11 it swallows a cancellation that meets a hint
            timer = None if timeout is None else self.loop.call_later(max(0.0, timeout), _settle, future)
            try:
                await future
            finally:
                if timer is not None:
                    timer.cancel()
                self.future = None
        hinted, self.hinted = self.hinted, False
        return hinted


def _settle(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


class Watchdog:
    """Renews this process's leases and keeps its waiters' places; reports lost leases in time."""

    def __init__(self, locks: LeaseKeeper) -> None:
        self.locks = locks
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, RedisLockGrant]] = []
        self._wake_at = float("-inf")  # when the thread wakes by itself (-inf: it is awake)
        self._seq = itertools.count()
        self._tend_at = float("inf")
        self._stopped = False
        self._link = locks.ctx.new_link()
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-watchdog", daemon=True)
        self._thread.start()

    def add(self, grant: RedisLockGrant) -> None:
        with self._cond:
            heap = self._heap
            heapq.heappush(heap, (grant.renew_due, next(self._seq), grant))
            if len(heap) > 1024 and len(heap) > 4 * (len(self.locks.held) + 1):
                # released grants leave the heap when due; short holds pile them up: sweep
                heap[:] = [entry for entry in heap if not entry[2].released]
                heapq.heapify(heap)
            self._notify(grant.renew_due)

    def tend_by(self, when: float) -> None:
        """Tend the waiters' places no later than ``when`` (monotonic)."""
        with self._cond:
            if when < self._tend_at:
                self._tend_at = when
                self._notify(when)

    def tend_soon(self) -> None:
        """A name got its first local waiter: keep its place from the next tick on."""
        self.tend_by(time.monotonic() + TICK)

    def _notify(self, when: float) -> None:
        if when < self._wake_at:  # due before the watchdog means to wake up
            self._wake_at = when
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _due(self) -> tuple[list[RedisLockGrant], bool] | None:
        """Wait for the next renewals or heartbeat; None when stopped."""
        with self._cond:
            while True:
                if self._stopped:
                    return None
                now = time.monotonic()
                tend = self._tend_at <= now
                batch: list[RedisLockGrant] = []
                if self._heap and self._heap[0][0] <= now:
                    horizon = now + 0.05  # renew those almost due too: fewer wake-ups
                    while self._heap and self._heap[0][0] <= horizon and len(batch) < 500:
                        grant = heapq.heappop(self._heap)[2]
                        if not grant.released and grant._lost is None:
                            batch.append(grant)
                if batch or tend:
                    if tend:
                        self._tend_at = float("inf")
                    return batch, tend
                if self._heap and self._heap[0][0] <= now:
                    continue
                self._wake_at = min(self._heap[0][0] if self._heap else float("inf"), self._tend_at)
                self._cond.wait(None if self._wake_at == float("inf") else self._wake_at - now)
                self._wake_at = float("-inf")  # awake: no need to notify

    def _budget(self) -> float:
        """Seconds the next command may take: it must not outlast any lease it guards."""
        ends = [g.valid_until for g in self.locks.held.values()]
        limit = min(ends) - MARGIN - time.monotonic() if ends else IO_TIMEOUT
        return max(0.01, min(IO_TIMEOUT, limit))

    def _run(self) -> None:
        while (due := self._due()) is not None:
            batch, tend = due
            if batch:
                self._renew(batch)
            if tend:
                self._tend()
        self._link.close()

    def _renew(self, batch: list[RedisLockGrant]) -> None:
        keys: list[str] = []
        args: list[Any] = []
        sent = time.monotonic()
        for g in batch:
            keys.append(g._keys[0])
            args += [g.token, int(g.lease * 1000)]
        try:
            replies = self._link.script(EXTEND, keys, args, timeout=self._budget())
        except Exception as exc:
            self._link.reset()
            self._unreachable(batch, exc)
            return
        for g, r in zip(batch, replies):
            if g.released:
                continue
            if r == 0:
                self.locks.report_lost(g, LeaseLostError(
                    f"lock {g.name!r} (fencing {g.fencing}) was lost: its lease expired, was taken "
                    "over, or vanished with Redis's data before it could be renewed",
                    name=g.name, fencing=g.fencing,
                ))
                continue
            g.valid_until = sent + g.lease
            g.renew_due = sent + g.lease / 3
            self.add(g)

    def _unreachable(self, batch: list[RedisLockGrant], exc: BaseException) -> None:
        now = time.monotonic()
        for g in batch:
            if g.released:
                continue
            if now >= g.valid_until - MARGIN - 0.01:
                self.locks.report_lost(g, LeaseLostError(
                    f"lock {g.name!r} (fencing {g.fencing}): its {g.lease:g}s lease ran out while Redis "
                    f"could not be reached to renew it ({exc})", name=g.name, fencing=g.fencing,
                ))
            else:
                g.renew_due = now + min(0.1, (g.valid_until - MARGIN - now) / 2)
                self.add(g)
        with self._cond:
            if not self._stopped:
                self._cond.wait(0.02)

    def _tend(self) -> None:
        names = self.locks.waited_names()
        if not names:
            return
        ctx = self.locks.ctx
        keys = [ctx.key("alive", self.locks.process), ctx.key("fencing")]
        for name in names:
            keys += self.locks.keys(name)[:3]
        try:
            known, states = self._link.script(
                TEND, keys, [ALIVE_MS, ctx.prefix, self.locks.handoff_ms], timeout=min(self._budget(), TICK)
            )
        except Exception as exc:
            self._link.reset()
            logger.debug("could not keep the lock waiters' places (%s); trying again", exc)
            self.tend_by(time.monotonic() + 0.1)
            return
        soonest = TICK
        for name, (token, pttl) in zip(names, states):
            if pttl > 0:
                soonest = min(soonest, pttl / 1000 + 0.002)
            self.locks.tended(name, token.decode() if token else "")
        if not known:  # presumed dead meanwhile (a long pause): every waiter queues again
            self.locks.hint_all()
        self.tend_by(time.monotonic() + soonest)


class WakeListener:
    """Receives this process's hand-off hints on its own pub/sub channel and wakes the waiter."""

    def __init__(self, locks: LeaseKeeper) -> None:
        self.locks = locks
        self.channel = locks.ctx.key("wake", locks.process)
        self._link = locks.ctx.new_link()
        self._stopped = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-wake", daemon=True)

    def start(self, timeout: float) -> None:
        self._thread.start()
        self._ready.wait(timeout)  # until subscribed (or failed): hand-offs are not missed

    def stop(self) -> None:
        self._stopped = True
        self._link.close()

    def _run(self) -> None:
        pauses = Pauses()
        while not self._stopped:
            try:
                self._link.send("SUBSCRIBE", self.channel)
                self._link.read(IO_TIMEOUT)  # the confirmation
                if self._ready.is_set():
                    self.locks.hint_all()  # hints may have been lost while this reconnected
                self._ready.set()
                pauses.reset()
                while not self._stopped:
                    msg = self._link.read(timeout=1.0)
                    if msg is not None and msg[0] == b"message":
                        self.locks.wake(msg[2].decode(errors="replace"))
            except Exception as exc:
                self._link.reset()
                self._ready.set()  # waiters rely on the watchdog's heartbeat while this reconnects
                if self._stopped:
                    break
                logger.debug("lock wake channel lost (%s); reconnecting", exc)
                time.sleep(pauses.next())
        self._link.close()
