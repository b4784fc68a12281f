"""Distributed locks on Redis: leases with tokens, fencing numbers, a watchdog and pushed hand-offs.

One grant of one name is one script run (``redis_lua.ACQUIRE``): the token is made
here, the fencing number is taken in the same script, and the lease is set from the
server's clock. A contended acquirer queues in Redis (arrival order, sync and async
callers alike) and waits on this process's wake channel: a release hands the lock to
the first live waiter and publishes the grant to it, so a hand-off costs about one
round trip. Waiters also poll, at most every ``POLL`` seconds and right when the
holder's lease is due to run out, so a lost message or a dead holder never leaves
them waiting longer than that.

The watchdog thread renews every lease this process holds (``EXTEND``, one script for
all of them) a third of the way into it. A lease that could not be renewed is
reported: the grant's ``lost`` turns into a ``LeaseLostError``, the lease-lost callback
runs, and releasing the grant raises that error.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from redis import exceptions as rx

from ..errors import CoordinationTimeoutError, LeaseLostError, LockNotHeldError
from .base import LockGrant
from .redis_conn import Link, RETRY_PAUSES, backend_error, is_unavailable
from .redis_lease import LocalWaiter, Watchdog, WakeListener, retrieve, uncancelled
from .redis_lua import ABANDON, ACQUIRE, RELEASE, Script

if TYPE_CHECKING:
    from .redis import RedisBackend

__all__ = ["RedisLockGrant", "RedisLocks"]

logger = logging.getLogger("agentdiff_coordination")

#: longest pause between two polls of a waiter (its safety net)
POLL = 0.5
#: a waiter that has not polled for this long is skipped by hand-offs (it is presumed dead)
WAITER_TTL_MS = 3000


class RedisLockGrant(LockGrant):
    """A grant of a Redis lock: a lease that the watchdog renews while this process lives.

    ``fencing`` grows with every grant of the name (across processes and Redis
    restarts); ``lease`` is the lease length in seconds; ``lost`` is the error that
    ended the lease early, or None while it is good.
    """

    __slots__ = ("lease", "valid_until", "renew_due", "released", "_lost", "_keys")

    def __init__(
        self, name: str, token: str, fencing: int, holder: str | None, lease: float,
        valid_until: float, keys: tuple[str, str, str, str],
    ) -> None:
        super().__init__(name, token, fencing, holder)
        self.lease = lease
        #: monotonic time until which the lease is surely still ours (a lower bound)
        self.valid_until = valid_until
        self.renew_due = valid_until - lease * 2 / 3
        self.released = False
        self._lost: LeaseLostError | None = None
        self._keys = keys

    @property
    def lost(self) -> BaseException | None:
        lost = self._lost
        if lost is None and not self.released and time.monotonic() > self.valid_until:
            return LeaseLostError(
                f"lock {self.name!r} (fencing {self.fencing}): its {self.lease:g}s lease ran out "
                "before it could be renewed (Redis unreachable, or this process was paused)",
                name=self.name, fencing=self.fencing,
            )
        return lost

    def __repr__(self) -> str:
        state = "lost" if self._lost else "released" if self.released else "held"
        return f"<RedisLockGrant {self.name!r} fencing={self.fencing} holder={self.holder!r} {state}>"


class _Attempt:
    """One acquisition of one name: the state its sync and async loops share."""

    __slots__ = ("locks", "name", "holder", "token", "keys", "stored", "lease_ms", "timeout", "deadline",
                 "doing", "sent", "reply", "waiter", "queued", "withdrawn", "loop")

    def __init__(self, locks: RedisLocks, name: str, holder: str | None, timeout: float | None,
                 lease: float | None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.locks = locks
        self.loop = loop  # the waiting task's loop; None for a waiting thread
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
        self.queued = False  # registered in the queue with this process's wake channel
        self.withdrawn = False  # nothing left in Redis to clean up

    @property
    def handoff_ms(self) -> int:
        return min(self.lease_ms, WAITER_TTL_MS)

    def expired(self) -> bool:
        return self.reply is not None and self.deadline is not None and time.monotonic() >= self.deadline

    def wants_listener(self) -> bool:
        return self.reply is not None and self.locks._listener is None

    def acquire_args(self) -> list[Any]:
        queue = self.timeout != 0 and self.locks._listener is not None
        self.queued = self.queued or queue
        channel = self.locks._listener.channel if queue and self.locks._listener is not None else ""
        return [self.token, self.stored, self.lease_ms, "wait" if queue else "try", WAITER_TTL_MS,
                channel, self.handoff_ms]

    def abandon_args(self, what: str) -> list[Any]:
        return [self.token, what, self.handoff_ms]

    def grant(self, fencing: int, granted_ms: int) -> RedisLockGrant:
        """The grant (valid from ``sent``: the lease began after it), renewed by the watchdog."""
        lease = self.lease_ms / 1000
        granted_ms = max(granted_ms, 1)
        grant = RedisLockGrant(self.name, self.token, fencing, self.holder, lease,
                               self.sent + granted_ms / 1000, self.keys)
        if granted_ms < self.lease_ms * 0.9:
            grant.renew_due = time.monotonic()  # a short hand-off lease: make it full at once
        self.withdrawn = True
        return self.locks.add_held(grant)

    def answered(self, reply: list[Any]) -> RedisLockGrant | None:
        """The grant if ACQUIRE gave one; else note the holder and start waiting."""
        if reply[0] == 1:
            return self.grant(int(reply[1]), int(reply[2]))
        self.reply = reply
        if self.timeout == 0:
            self.withdrawn = True  # never queued
            raise self.timeout_error()
        if self.queued and self.waiter is None:
            self.waiter = LocalWaiter(self.loop)
            self.locks.enter_wait(self.token, self.waiter)
        return None

    def pushed(self) -> RedisLockGrant:
        """The grant a release handed to us through the wake channel."""
        assert self.waiter is not None and self.waiter.fencing is not None
        return self.grant(self.waiter.fencing, self.handoff_ms)

    def gave_up(self, reply: list[Any]) -> RedisLockGrant:
        """After ABANDON 'keep' at the deadline: the grant if it raced in, else the timeout error."""
        self.withdrawn = True
        if reply[0] == 1:
            return self.grant(int(reply[1]), int(reply[2]))
        raise self.timeout_error()

    def wait_seconds(self) -> float:
        """How long to wait for a push before polling again."""
        assert self.reply is not None
        pttl = int(self.reply[1])
        wait = POLL if pttl <= 0 else min(POLL, pttl / 1000 + 0.002)
        if self.deadline is not None:
            wait = max(0.0, min(wait, self.deadline - time.monotonic()))
        return wait

    def timeout_error(self) -> CoordinationTimeoutError:
        reply = self.reply
        holder = None
        if reply is not None and reply[0] == 0 and reply[2]:
            who = reply[2].decode() if isinstance(reply[2], bytes) else str(reply[2])
            holder = f"{who} (fencing {int(reply[3])})"
        return CoordinationTimeoutError(
            f"lock {self.name!r} was not acquired within {self.timeout}s; it is held by {holder or 'nobody now'}",
            resource=self.name, holder=holder, timeout=self.timeout,
        )

    def close(self) -> None:
        if self.waiter is not None:
            self.locks.leave_wait(self.token)
            self.waiter = None


class RedisLocks:
    """The lock half of ``RedisBackend``: acquire, release, renew, hand on."""

    def __init__(self, backend: RedisBackend) -> None:
        self.b = backend
        self._mutex = threading.Lock()
        self._waiters: dict[str, LocalWaiter] = {}
        self._held: dict[str, RedisLockGrant] = {}  # token -> grant, while held
        self._keys: dict[str, tuple[str, str, str, str]] = {}
        self._described: dict[str | None, str] = {}
        self._token_prefix = secrets.token_hex(8) + "-"
        self._tokens = itertools.count(1)
        self._watchdog: Watchdog | None = None
        self._listener: WakeListener | None = None
        self.closed = False

    # -- helpers -------------------------------------------------------------------
    def link(self) -> Link:
        """This thread's own connection for short commands."""
        return self.b.link()

    def keys(self, name: str) -> tuple[str, str, str, str]:
        """The keys of lock ``name`` (cached for the most recent names)."""
        keys = self._keys.get(name)
        if keys is None:
            k = self.b.key
            keys = (k("lock", name), k("lockq", name), k("lockw", name), k("fencing"))
            if len(self._keys) >= 1024:
                self._keys.clear()
            self._keys[name] = keys
        return keys

    def new_token(self) -> str:
        """A token no other grant ever had: this process's random part and a counter."""
        return f"{self._token_prefix}{next(self._tokens)}"

    def describe(self, holder: str | None) -> str:
        described = self._described.get(holder)
        if described is None:
            described = self.b.describe_holder(holder)
            if len(self._described) < 1024:
                self._described[holder] = described
        return described

    def lease_ms(self, lease: float | None) -> int:
        seconds = self.b.lease if lease is None else lease
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"lease must be a positive number of seconds, not {lease!r}")
        return max(1, int(seconds * 1000))

    def _script(self, script: Script, keys: tuple[str, ...], args: list[Any], doing: str) -> Any:
        """Run a script that is safe to repeat, retrying briefly while Redis is unreachable."""
        try:
            return self.b.link().script(script, keys, args)
        except Exception:  # the slow path: retries, and our own error
            return self.b.retrying(doing, lambda link: link.script(script, keys, args))

    async def _script_async(self, script: Script, keys: tuple[str, ...], args: list[Any], doing: str) -> Any:
        client: Any = self.b.async_client()
        for pause in (*RETRY_PAUSES, None):
            try:
                try:
                    return await uncancelled(client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args))
                except rx.NoScriptError:
                    return await uncancelled(client.execute_command("EVAL", script.source, len(keys), *keys, *args))
            except Exception as exc:
                if pause is None or not is_unavailable(exc):
                    raise backend_error(exc, self.b.safe_url, doing) from exc
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _abandon_quietly(self, a: _Attempt) -> None:
        """Leave the queue, or release a grant that raced in (interrupt, error, cancel)."""
        try:
            self._script(ABANDON, a.keys, a.abandon_args("release"), a.doing)
        except Exception as exc:  # Redis away: the queue entry and any grant expire by themselves
            logger.warning("could not withdraw from lock %r (%s); its entry expires by itself", a.name, exc)

    async def _abandon_async(self, a: _Attempt) -> None:
        try:
            await self._script_async(ABANDON, a.keys, a.abandon_args("release"), a.doing)
        except Exception as exc:
            logger.warning("could not withdraw from lock %r (%s); its entry expires by itself", a.name, exc)

    def add_held(self, grant: RedisLockGrant) -> RedisLockGrant:
        with self._mutex:
            self._held[str(grant.token)] = grant
        self.watchdog().add(grant)
        return grant

    # -- acquiring -------------------------------------------------------------------
    def acquire(self, name: str, holder: str | None, timeout: float | None, lease: float | None) -> RedisLockGrant:
        a = _Attempt(self, name, holder, timeout, lease)
        try:
            while True:
                if a.expired():
                    return a.gave_up(self._script(ABANDON, a.keys, a.abandon_args("keep"), a.doing))
                if a.wants_listener():
                    self.listener()
                a.sent = time.monotonic()
                grant = a.answered(self._script(ACQUIRE, a.keys, a.acquire_args(), a.doing))
                if grant is not None:
                    return grant
                if a.waiter is not None:
                    wake = a.waiter.wake
                    assert wake is not None
                    if wake.acquire(timeout=a.wait_seconds()) and a.waiter.fencing is not None:
                        return a.pushed()
        except BaseException:
            if not a.withdrawn:
                self._abandon_quietly(a)
            raise
        finally:
            a.close()

    async def acquire_async(
        self, name: str, holder: str | None, timeout: float | None, lease: float | None
    ) -> RedisLockGrant:
        a = _Attempt(self, name, holder, timeout, lease, asyncio.get_running_loop())
        try:
            while True:
                if a.expired():
                    return a.gave_up(await self._script_async(ABANDON, a.keys, a.abandon_args("keep"), a.doing))
                if a.wants_listener():  # starting it waits for its subscription: not on the loop
                    await asyncio.get_running_loop().run_in_executor(None, self.listener)
                a.sent = time.monotonic()
                grant = a.answered(await self._script_async(ACQUIRE, a.keys, a.acquire_args(), a.doing))
                if grant is not None:
                    return grant
                if a.waiter is not None:
                    assert a.waiter.future is not None
                    try:
                        await uncancelled(asyncio.wait_for(asyncio.shield(a.waiter.future), a.wait_seconds()))
                    except TimeoutError:
                        pass
                    if a.waiter.fencing is not None:
                        return a.pushed()
        except BaseException:
            # cancelled (perhaps after the server granted), or failed: leave nothing behind
            if not a.withdrawn:
                cleanup = asyncio.ensure_future(self._abandon_async(a))
                try:
                    await asyncio.shield(cleanup)
                except BaseException:
                    pass  # cancelled again: the shielded cleanup still runs to its end
            raise
        finally:
            a.close()

    # -- releasing -------------------------------------------------------------------
    def _begin_release(self, grant: LockGrant) -> RedisLockGrant:
        if not isinstance(grant, RedisLockGrant):
            raise LockNotHeldError(f"lock {grant.name!r}: {grant!r} was not granted by this Redis backend")
        with self._mutex:
            if grant.released or self._held.pop(str(grant.token), None) is None:
                raise LockNotHeldError(f"lock {grant.name!r} (fencing {grant.fencing}) was already released")
            grant.released = True  # the watchdog stops renewing it
        return grant

    def _end_release(self, grant: RedisLockGrant, reply: Any, retried: bool) -> None:
        if reply == 1:
            return
        lost = grant._lost
        if lost is not None:
            reason = str(lost)
        elif retried:
            # the connection failed during the release: the interrupted attempt may have
            # released it, or the lease was lost (a restart); we cannot tell, so say so
            reason = (
                f"lock {grant.name!r} (fencing {grant.fencing}): the release could not be confirmed "
                "(the connection failed during it) and Redis no longer knows the grant; the lease may "
                "have been lost before the release"
            )
        else:
            reason = (
                f"lock {grant.name!r} (fencing {grant.fencing}) was no longer held at release: its lease "
                "expired, was taken over, or vanished with Redis's data"
            )
        error = LeaseLostError(
            f"{reason}. Another holder may have run inside it; a resource that checks fencing "
            f"numbers refuses writes made with {grant.fencing}",
            name=grant.name, fencing=grant.fencing,
        )
        if lost is None:
            self.b.report_lost(grant, error)
        raise error

    def release(self, grant: LockGrant) -> None:
        g = self._begin_release(grant)
        link = self.link()
        args = [g.token, min(int(g.lease * 1000), WAITER_TTL_MS)]
        retried = False
        for pause in (*RETRY_PAUSES, None):
            try:
                reply = link.script(RELEASE, g._keys, args)
                break
            except Exception as exc:
                link.reset()
                if pause is None or not is_unavailable(exc):
                    raise backend_error(
                        exc, self.b.safe_url, f"releasing lock {g.name!r} (its lease runs out by itself)"
                    ) from exc
                retried = True
                time.sleep(pause)
        self._end_release(g, reply, retried)

    async def release_async(self, grant: LockGrant) -> None:
        g = self._begin_release(grant)
        task = asyncio.ensure_future(self._release_async(g))
        task.add_done_callback(retrieve)
        await asyncio.shield(task)  # cancelled: the release still completes

    async def _release_async(self, g: RedisLockGrant) -> None:
        client: Any = self.b.async_client()
        args = [g.token, min(int(g.lease * 1000), WAITER_TTL_MS)]
        keys = g._keys
        retried = False
        for pause in (*RETRY_PAUSES, None):
            try:
                try:
                    reply = await client.execute_command("EVALSHA", RELEASE.sha, len(keys), *keys, *args)
                except rx.NoScriptError:
                    reply = await client.execute_command("EVAL", RELEASE.source, len(keys), *keys, *args)
                break
            except Exception as exc:
                if pause is None or not is_unavailable(exc):
                    raise backend_error(
                        exc, self.b.safe_url, f"releasing lock {g.name!r} (its lease runs out by itself)"
                    ) from exc
                retried = True
                await asyncio.sleep(pause)
        self._end_release(g, reply, retried)

    def holder(self, name: str) -> str | None:
        who, fencing = self.b.retrying(
            f"reading the holder of lock {name!r}",
            lambda link: link.call("HMGET", self.b.key("lock", name), "holder", "fencing"),
        )
        if who is None:
            return None
        return f"{who.decode()} (fencing {int(fencing)})"

    def enter_wait(self, token: str, waiter: LocalWaiter) -> None:
        with self._mutex:
            self._waiters[token] = waiter

    def leave_wait(self, token: str) -> None:
        with self._mutex:
            self._waiters.pop(token, None)

    def waiting_count(self) -> int:
        return len(self._waiters)

    def held_count(self) -> int:
        return len(self._held)

    # -- background threads ---------------------------------------------------------
    def watchdog(self) -> Watchdog:
        w = self._watchdog
        if w is None:
            with self._mutex:
                if self._watchdog is None:
                    self._watchdog = Watchdog(self)
                w = self._watchdog
        return w

    def listener(self) -> WakeListener:
        lst = self._listener
        if lst is None:
            with self._mutex:
                if self._listener is None:
                    new = WakeListener(self)
                    new.start()
                    self._listener = new
                lst = self._listener
        return lst

    def wake(self, token: str, fencing: int) -> None:
        with self._mutex:
            waiter = self._waiters.get(token)
        if waiter is not None:
            waiter.push(fencing)

    def close(self) -> None:
        self.closed = True
        for thread in (self._watchdog, self._listener):
            if thread is not None:
                thread.stop()
        with self._mutex:
            held = list(self._held.values())
        link = self.b.link()
        for grant in held:  # best effort, one try each: free what this process still holds
            try:
                g = self._begin_release(grant)
                link.script(RELEASE, g._keys, [g.token, min(int(g.lease * 1000), WAITER_TTL_MS)])
            except Exception:
                link.reset()  # the lease runs out by itself
