"""Distributed locks on Redis: leases with tokens, fencing numbers, a watchdog and pushed hand-offs.

One grant of one name is one script run (``ACQUIRE``): the token is made here, the
fencing number is taken in the same script, and the lease is set from the server's
clock. A contended acquirer queues in Redis (arrival order, sync and async callers
alike, from any number of processes) and waits, without polling, for a hint: a release
hands the lock to the first waiter whose process is alive and publishes the waiter's
token on that process's wake channel; the waiter then confirms the grant with Redis
(``ACQUIRE`` again, which also makes the short hand-off lease full) and enters. The
process's watchdog keeps its waiters' places alive in one script per tick, hands on a
name whose holder died, and finds a hand-off whose message was lost.

A lease that could not be renewed is reported no later than its end: the grant's
``lost`` turns into a ``LeaseLostError``, the lease-lost callback runs, and releasing the
grant raises that error.

Every call with a timeout returns within the timeout plus ``link.SLACK``: each command's
connect and read timeouts come from the call's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ...errors import CoordinationTimeoutError, LeaseLostError, LockNotHeldError
from ...records import LockGrant
from ...settings import check_seconds
from .grant import RedisLockGrant
from .lease import ALIVE_MS, LocalWaiter, Watchdog, WakeListener
from .status import holder_text
from .link import SLACK, Context, made_once
from .scripts import ABANDON, ACQUIRE, RELEASE

__all__ = ["RedisLocks"]

logger = logging.getLogger("agentdiff_coordination")

#: the first lease of a handed-on grant, until its waiter confirms it (ms)
HANDOFF_MS = 3000


class _Attempt:
    """One acquisition of one name: the state its sync and async drivers share."""

    __slots__ = ("locks", "name", "holder", "token", "keys", "stored", "lease_ms", "timeout", "deadline",
                 "doing", "sent", "reply", "waiter", "withdrawn")

    def __init__(self, locks: RedisLocks, name: str, holder: str | None, timeout: float | None,
                 lease: float | None) -> None:
        self.locks = locks
        self.name = name
        self.holder = holder
        self.lease_ms = locks.lease_ms(lease)
        self.token = locks.new_token()
        self.keys = locks.keys(name)
        self.stored = locks.describe(holder)
        self.timeout = timeout
        self.sent = time.monotonic()
        self.deadline = None if timeout is None else self.sent + timeout
        self.doing = f"acquiring lock {name!r}"
        self.reply: list[Any] | None = None
        self.waiter: LocalWaiter | None = None
        self.withdrawn = False  # nothing left in Redis to clean up

    @property
    def io_deadline(self) -> float | None:
        """Until when a command of this attempt may run (its deadline and the slack)."""
        return None if self.deadline is None else self.deadline + SLACK

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return self.reply is not None and self.deadline is not None and time.monotonic() >= self.deadline

    def wants_listener(self) -> bool:
        return self.reply is not None and self.timeout != 0 and self.locks.listener is None

    def acquire(self) -> tuple[Any, ...]:
        """The ACQUIRE script's keys and arguments (queueing once the wake channel listens)."""
        locks = self.locks
        queue = self.timeout != 0 and locks.listener is not None
        if queue and self.waiter is None:  # before the request: a hint may come before its reply
            self.waiter = locks.enter_wait(self.name, self.token, self.waiter_loop())
        self.sent = time.monotonic()
        return (self.keys + (locks.alive_key,),
                [self.token, self.stored, self.lease_ms, "wait" if queue else "try", ALIVE_MS,
                 locks.process, locks.ctx.prefix, locks.handoff_ms])

    def abandon(self, what: str) -> tuple[Any, ...]:
        return self.keys, [self.token, what, self.locks.handoff_ms, self.locks.ctx.prefix]

    def grant(self, fencing: int, granted_ms: int) -> RedisLockGrant:
        """The grant (valid from ``sent``: the lease began after it), renewed by the watchdog."""
        grant = RedisLockGrant(self.name, self.token, fencing, self.holder, self.lease_ms / 1000,
                               self.sent + max(granted_ms, 1) / 1000, self.keys)
        self.withdrawn = True
        return self.locks.add_held(grant)

    def answered(self, reply: list[Any]) -> RedisLockGrant | None:
        """The grant if ACQUIRE gave (or confirmed) one; else note the holder and wait."""
        if reply[0] == 1:
            return self.grant(int(reply[1]), int(reply[2]))
        self.reply = reply
        if self.timeout == 0:
            self.withdrawn = True  # never queued
            raise self.timeout_error()
        if self.waiter is not None:
            self.waiter.queued = True
        return None

    def waiter_loop(self) -> asyncio.AbstractEventLoop | None:
        return None

    def gave_up(self, reply: list[Any]) -> RedisLockGrant:
        """After ABANDON 'keep' at the deadline: the grant if it raced in, else the timeout error."""
        self.withdrawn = True
        if reply[0] == 1:
            return self.grant(int(reply[1]), int(reply[2]))
        raise self.timeout_error()

    def timeout_error(self) -> CoordinationTimeoutError:
        reply = self.reply
        holder = None
        if reply is not None and reply[0] == 0 and reply[2]:
            holder = f"{holder_text(reply[2])} (fencing {int(reply[3])})"
        return CoordinationTimeoutError(
            f"lock {self.name!r} was not acquired within {self.timeout}s; it is held by {holder or 'nobody now'}",
            resource=self.name, holder=holder, timeout=self.timeout,
        )

    def close(self) -> None:
        if self.waiter is not None:
            self.locks.leave_wait(self.name, self.token)
            self.waiter = None


class _AsyncAttempt(_Attempt):
    __slots__ = ()

    def waiter_loop(self) -> asyncio.AbstractEventLoop | None:
        return asyncio.get_running_loop()


class RedisLocks:
    """The lock half of ``RedisBackend``: acquire, release, renew, hand on."""

    def __init__(self, ctx: Context, process: str, lease: Callable[[], float],
                 report_lost: Callable[[RedisLockGrant, LeaseLostError], None],
                 describe: Callable[[str | None], str]) -> None:
        self.ctx = ctx
        self.process = process
        self._lease = lease
        self._arrivals: dict[tuple[int, str], list[Any]] = {}
        self._report_lost = report_lost
        self._describe = describe
        self._mutex = threading.Lock()
        self._waiters: dict[str, LocalWaiter] = {}  # token -> waiter
        self._by_name: dict[str, dict[str, LocalWaiter]] = {}  # name -> token -> waiter
        self.held: dict[str, RedisLockGrant] = {}  # token -> grant, while held
        self._keys: dict[str, tuple[str, str, str, str]] = {}
        self._token_prefix = secrets.token_hex(8) + "-"
        self._tokens = itertools.count(1)
        self._watchdog: Watchdog | None = None
        self.listener: WakeListener | None = None
        self.handoff_ms = HANDOFF_MS
        self.closed = False

    # -- names, tokens, options ------------------------------------------------------
    @property
    def alive_key(self) -> str:
        return self.ctx.key("alive", self.process)

    def keys(self, name: str) -> tuple[str, str, str, str]:
        """The keys of lock ``name``: the name is last, after fixed words (cached)."""
        keys = self._keys.get(name)
        if keys is None:
            k = self.ctx.key
            keys = (k("lock", name), k("lockq", name), k("lockw", name), k("fencing"))
            if len(self._keys) >= 1024:
                self._keys.clear()
            self._keys[name] = keys
        return keys

    def new_token(self) -> str:
        """A token no other grant ever had: this process's random part and a counter."""
        return f"{self._token_prefix}{next(self._tokens)}"

    def describe(self, holder: str | None) -> str:
        """The holder as stored with a grant (who, where: thread and task differ per call)."""
        return self._describe(holder)

    def lease_ms(self, lease: float | None) -> int:
        seconds = self._lease() if lease is None else check_seconds(lease, "lease", positive=True)
        return max(1, int(seconds * 1000))

    def add_held(self, grant: RedisLockGrant) -> RedisLockGrant:
        with self._mutex:
            self.held[str(grant.token)] = grant
        self.watchdog().add(grant)
        return grant

    def report_lost(self, grant: RedisLockGrant, error: LeaseLostError) -> None:
        if grant._lost is None:
            self._report_lost(grant, error)

    def _withdraw(self, a: _Attempt) -> Any:
        return ("leaving the queue of lock " + repr(a.name), ABANDON, *a.abandon("release"))

    # -- acquiring -------------------------------------------------------------------
    def acquire(self, name: str, holder: str | None, timeout: float | None, lease: float | None) -> RedisLockGrant:
        a = _Attempt(self, name, holder, timeout, lease)
        run = self.ctx.run
        try:
            while True:
                if a.expired():
                    return a.gave_up(run(a.doing, ABANDON, *a.abandon("keep"), deadline=a.io_deadline))
                if a.wants_listener():
                    self.start_listener(a.remaining())
                grant = a.answered(run(a.doing, ACQUIRE, *a.acquire(), deadline=a.io_deadline))
                if grant is not None:
                    return grant
                if a.waiter is not None:
                    a.waiter.wait(a.remaining())
        except BaseException:
            if not a.withdrawn:
                try:  # leave the queue, or release a grant that raced in
                    run(*self._withdraw(a), deadline=time.monotonic() + SLACK)
                except Exception as exc:  # Redis away: the entry and any grant expire by themselves
                    logger.warning("could not withdraw from lock %r (%s); its entry expires by itself", name, exc)
            raise
        finally:
            a.close()

    async def acquire_async(
        self, name: str, holder: str | None, timeout: float | None, lease: float | None
    ) -> RedisLockGrant:
        a = _AsyncAttempt(self, name, holder, timeout, lease)
        run = self.ctx.arun
        try:
            # the tasks of this loop join the queue in the order they asked (until granted or queued)
            async with self._arrival(name):
                while a.waiter is None:
                    if a.expired():
                        return a.gave_up(await run(a.doing, ABANDON, *a.abandon("keep"), deadline=a.io_deadline))
                    if a.wants_listener():  # starting it waits for its subscription: not on the loop
                        await asyncio.get_running_loop().run_in_executor(None, self.start_listener, a.remaining())
                    grant = a.answered(await run(a.doing, ACQUIRE, *a.acquire(), deadline=a.io_deadline))
                    if grant is not None:
                        return grant
            while True:  # queued: ask again on each hint
                await a.waiter.await_hint(a.remaining())
                if a.expired():
                    return a.gave_up(await run(a.doing, ABANDON, *a.abandon("keep"), deadline=a.io_deadline))
                grant = a.answered(await run(a.doing, ACQUIRE, *a.acquire(), deadline=a.io_deadline))
                if grant is not None:
                    return grant
        except BaseException:
            # cancelled (perhaps after the server granted), or failed: leave nothing behind
            if not a.withdrawn:
                cleanup = asyncio.ensure_future(run(*self._withdraw(a), deadline=time.monotonic() + SLACK))
                try:
                    await asyncio.shield(cleanup)
                except BaseException as exc:  # cancelled again: the shielded cleanup still runs to its end
                    if isinstance(exc, Exception):
                        logger.warning("could not withdraw from lock %r (%s); its entry expires by itself",
                                       name, exc)
            raise
        finally:
            a.close()

    @contextlib.asynccontextmanager
    async def _arrival(self, name: str) -> AsyncIterator[None]:
        """One queueing request at a time per event loop and lock name, in call order
        (``asyncio.Lock`` is FIFO), so concurrent requests cannot overtake each other."""
        key = (id(asyncio.get_running_loop()), name)
        entry = self._arrivals.get(key)
        if entry is None:
            entry = self._arrivals[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._arrivals.get(key) is entry:
                del self._arrivals[key]

    # -- releasing -------------------------------------------------------------------
    def _begin_release(self, grant: LockGrant) -> tuple[RedisLockGrant, str, tuple[Any, ...], list[Any]]:
        if not isinstance(grant, RedisLockGrant):
            raise LockNotHeldError(f"lock {grant.name!r}: {grant!r} was not granted by this Redis backend")
        with self._mutex:
            if grant.released or self.held.pop(str(grant.token), None) is None:
                raise LockNotHeldError(f"lock {grant.name!r} (fencing {grant.fencing}) was already released")
            grant.released = True  # the watchdog stops renewing it
        doing = f"releasing lock {grant.name!r} (its lease runs out by itself)"
        return grant, doing, grant._keys, [grant.token, self.handoff_ms, self.ctx.prefix]

    def _end_release(self, grant: RedisLockGrant, reply: Any) -> None:
        lost = grant._lost
        if reply == 1 and lost is None:
            return
        reason = str(lost) if lost is not None else (
            f"lock {grant.name!r} (fencing {grant.fencing}) was no longer held at release: its lease "
            "expired, was taken over, or vanished with Redis's data (or a release interrupted by a "
            "lost connection had already freed it)"
        )
        error = LeaseLostError(
            f"{reason.rstrip('.')}. Another holder may have run inside it; a resource that checks fencing "
            f"numbers refuses writes made with {grant.fencing}",
            name=grant.name, fencing=grant.fencing,
        )
        if lost is None:
            self.report_lost(grant, error)
        raise error

    def release(self, grant: LockGrant) -> None:
        g, doing, keys, args = self._begin_release(grant)
        self._end_release(g, self.ctx.run(doing, RELEASE, keys, args, deadline=self._release_deadline(g)))

    async def release_async(self, grant: LockGrant) -> None:
        g, doing, keys, args = self._begin_release(grant)
        task = asyncio.ensure_future(self.ctx.arun(doing, RELEASE, keys, args, deadline=self._release_deadline(g)))
        task.add_done_callback(_retrieve)
        self._end_release(g, await asyncio.shield(task))  # cancelled: the release still completes

    @staticmethod
    def _release_deadline(g: RedisLockGrant) -> float:
        """A release is tried until the lease would have run out anyway (and at least ``SLACK``)."""
        return max(g.valid_until, time.monotonic() + SLACK)

    def holder(self, name: str) -> str | None:
        who, fencing = self.ctx.run(f"reading the holder of lock {name!r}", ("HMGET", self.keys(name)[0],
                                                                            "holder", "fencing"))
        if who is None:
            return None
        return f"{holder_text(who)} (fencing {int(fencing)})"

    # -- local waiters ---------------------------------------------------------------
    def enter_wait(self, name: str, token: str, loop: asyncio.AbstractEventLoop | None) -> LocalWaiter:
        waiter = LocalWaiter(name, loop)
        with self._mutex:
            self._waiters[token] = waiter
            first = name not in self._by_name
            self._by_name.setdefault(name, {})[token] = waiter
        if first:
            self.watchdog().tend_soon()
        return waiter

    def leave_wait(self, name: str, token: str) -> None:
        with self._mutex:
            self._waiters.pop(token, None)
            tokens = self._by_name.get(name)
            if tokens is not None:
                tokens.pop(token, None)
                if not tokens:
                    del self._by_name[name]

    def waited_names(self) -> list[str]:
        with self._mutex:
            return list(self._by_name)

    def wake(self, token: str) -> None:
        """A hint from the wake channel: the waiter asks Redis whether it holds the lock now."""
        waiter = self._waiters.get(token)
        if waiter is not None:
            waiter.push()

    def tended(self, name: str, token: str) -> None:
        """The watchdog saw ``token`` holding ``name``: wake it if it is one of ours."""
        if token:
            self.wake(token)

    def hint_all(self) -> None:
        """Every local waiter asks Redis again (hints may have been lost, or places)."""
        with self._mutex:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.push()

    def waiting_count(self) -> int:
        """Local waiters that Redis has queued (a waiter registered before its request is not yet)."""
        with self._mutex:
            return sum(1 for waiter in self._waiters.values() if waiter.queued)

    # -- background threads ---------------------------------------------------------
    def watchdog(self) -> Watchdog:
        return self._watchdog or made_once(self, "_watchdog", self._mutex, lambda: Watchdog(self))

    def start_listener(self, timeout: float | None) -> WakeListener:
        """The wake channel's listener, started and subscribed (waiting at most ``timeout``)."""
        with self._mutex:
            lst = self.listener
            new = lst is None
            if lst is None:
                lst = self.listener = WakeListener(self)
        if new:
            lst.start(5.0 if timeout is None else min(5.0, timeout))
        return lst

    def close(self) -> None:
        self.closed = True
        for thread in (self._watchdog, self.listener):
            if thread is not None:
                thread.stop()
        with self._mutex:
            held = list(self.held.values())
        for grant in held:  # best effort, one try each: free what this process still holds
            try:
                g, doing, keys, args = self._begin_release(grant)
                self.ctx.run(doing, RELEASE, keys, args, retry=False, deadline=time.monotonic() + SLACK)
            except Exception:
                pass  # the lease runs out by itself


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background task's outcome as seen (its caller may have been cancelled)."""
    if not task.cancelled():
        task.exception()
