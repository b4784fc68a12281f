"""Limits on Redis: the sliding log and the FIFO queue of ``memory.limits``, in Lua.

Each step (admit, release, report, abandon) is one script run (``scripts.py``,
which also lists the keys of a limit), atomic on the server and timed by the
server's clock (``TIME``), so every process and machine shares one limit with no
clock of its own. The algorithm is the memory store's, step for step: a log per rate
whose entries share a slice of the period, a queue in arrival order of which only
the head is admitted, slots with leases. Every key of a limit expires by itself once
the limit is idle for longer than its longest period, lease and waiter TTL.

A waiter blocks on its own wake key (``BLPOP``) until the head of the queue moves to
it, a slot is released, a cost is reported lower, or its own computed time comes;
it polls at least every ``POLL`` seconds, which keeps it alive in the queue. A
waiter that stops polling (its process died) is dropped after ``WAITER_TTL``; a
holder that stops renewing its slot loses it after the lease.
"""

from __future__ import annotations

import asyncio
import os
import weakref
import logging
import secrets
import threading
import time
from collections.abc import Generator
from typing import Any, Protocol, cast

from ...errors import CoordinationTimeoutError
from ...limit_values import SLICES, DIMENSIONS, Cost, LimitSpec, LimitUsage, ProviderWord, WindowUsage
from ..base import LimitStore
from ...provider_headers import ProviderReport
from .link import Context
from .scripts import (
    LIMIT_ABANDON as ABANDON,
    LIMIT_ACQUIRE as ACQUIRE,
    LIMIT_BACKOFF as BACKOFF,
    LIMIT_CHARGE as CHARGE,
    LIMIT_OBSERVE as OBSERVE,
    LIMIT_RELEASE as RELEASE,
    LIMIT_RENEW as RENEW,
    LIMIT_REPORT as REPORT,
    LIMIT_USAGE as USAGE,
    Script,
)

__all__ = ["LimitHost", "RedisAdmission", "RedisLimitStore"]

logger = logging.getLogger("agentdiff_coordination")

#: longest wait between two polls of a waiter (keeps it alive in the queue)
POLL = 1.0
#: a waiter that has not polled for this long is dropped from the queue
WAITER_TTL = 5.0
#: the last stretch of a known wait, slept exactly rather than blocked on Redis
FINE = 0.15

# the steps an admission plan asks its driver for: run a script, block on a key, sleep
_RUN, _BLOCK, _SLEEP = "run", "block", "sleep"
Plan = Generator[tuple[Any, ...], Any, "RedisAdmission"]


def _cancelling() -> bool:
    """Whether this task was asked to stop, even if a redis-py wait swallowed the request
    (``asyncio.wait_for`` can lose a cancellation on Python 3.11)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling and cancelling())


def _raise_if_cancelling() -> None:
    if _cancelling():
        raise asyncio.CancelledError()


class RedisAdmission:
    """One admission on Redis: its token, when (server seconds), its cost, the stamps of
    the log entries it was added to, and whether it holds a concurrency slot."""

    __slots__ = ("token", "at", "cost", "stamps", "slot")

    def __init__(self, token: str, at: float, cost: Cost, stamps: list[str], slot: bool) -> None:
        self.token = token
        self.at = at
        self.cost = cost
        self.stamps = stamps
        self.slot = slot


def _spec_args(spec: LimitSpec) -> list[Any]:
    """The limit's shape as script arguments: concurrency, rate count, then per rate
    (limit, period µs, dimension 1-4, slice µs)."""
    args: list[Any] = [spec.concurrency or 0, len(spec.windows)]
    for rate, dimension in spec.windows:
        period = int(round(rate.period * 1_000_000))
        args += [rate.limit, period, dimension + 1, max(1, period // SLICES)]
    return args


def _us(seconds: float | None) -> int:
    return -1 if seconds is None else int(seconds * 1_000_000)


def _observe_args(report: ProviderReport) -> list[Any]:
    """What the provider said as script arguments: retry µs, then per dimension limit, remaining, reset µs."""
    args: list[Any] = [_us(report.retry_after)]
    for dimension in DIMENSIONS:
        said = report.get(dimension)
        if said is None:
            args += [-1, -1, -1]
        else:
            args += [-1 if said.limit is None else said.limit, -1 if said.remaining is None else said.remaining, _us(said.reset)]
    return args


def _word(dimension: str, raw: Any) -> ProviderWord | None:
    """A provider's word stored as ``limit|remaining|reset µs|said µs``."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    if not text:
        return None
    limit, remaining, reset, said = (int(v) for v in text.split("|"))
    return ProviderWord(
        dimension, None if limit < 0 else limit, None if remaining < 0 else remaining,
        None if reset < 0 else reset / 1_000_000, said / 1_000_000,
    )


def _ttl_ms(spec: LimitSpec, lease: float) -> int:
    longest = max([r.period for r, _ in spec.windows] + [lease, WAITER_TTL])
    return int(longest * 1000) + 1000


class LimitHost(Protocol):
    """What the limit store needs of its backend (``RedisBackend``)."""

    @property
    def ctx(self) -> Context: ...

    @property
    def lease(self) -> float: ...

    def key(self, *parts: str) -> str: ...


def _advance(plan: Generator[Any, Any, RedisAdmission], reply: Any) -> Any:
    """The plan's next step, or its admission once it is done."""
    try:
        return plan.send(reply)
    except StopIteration as done:
        return cast(RedisAdmission, done.value)


class RedisLimitStore(LimitStore):
    """The limits of a ``RedisBackend``, shared by every process that uses its server."""

    nonblocking = False

    def __init__(self, backend: LimitHost) -> None:
        self.b = backend
        self._held: dict[str, tuple[LimitSpec, RedisAdmission]] = {}  # token -> slot, while held
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def forked() -> None:
                store = ref()
                if store is not None:
                    store._forked()

            os.register_at_fork(after_in_child=forked)
        self._mutex = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self._args_cache: dict[LimitSpec, tuple[str, list[Any], int]] = {}

    def _forked(self) -> None:
        """In a forked child: no slots (the parent holds those), no renewer."""
        self._held = {}
        self._mutex = threading.Lock()
        self._renewer = None

    # -- helpers ---------------------------------------------------------------------
    def _shape(self, spec: LimitSpec) -> tuple[str, list[Any], int]:
        """(key base, spec arguments, key TTL ms) of a limit, computed once."""
        found = self._args_cache.get(spec)
        if found is None:
            found = self._args_cache[spec] = (self.b.key("limit", spec.name), _spec_args(spec), _ttl_ms(spec, self._lease()))
        return found

    def _lease(self) -> float:
        return float(self.b.lease)

    def _run(self, script: Script, args: list[Any], doing: str) -> Any:
        """A limit script on this thread's link (not repeated: an admission must not count twice)."""
        return self.b.ctx.run(doing, script, (), args, retry=False)

    def _block(self, key: str, seconds: float, doing: str) -> None:
        """Wait on a wake key for up to ``seconds`` (this thread's connection blocks meanwhile)."""
        self.b.ctx.run(doing, ("BLPOP", key, f"{seconds:.3f}"), retry=False, deadline=time.monotonic() + seconds + 1.0)

    async def _arun(self, script: Script, args: list[Any], doing: str) -> Any:
        return await self.b.ctx.arun(doing, script, (), args, retry=False)

    def _acquire_args(self, spec: LimitSpec, token: str, cost: Cost, wait: bool) -> list[Any]:
        base, shape, ttl = self._shape(spec)
        lease_us = int(self._lease() * 1_000_000)
        return [base, ttl, token, "wait" if wait else "try", lease_us, int(WAITER_TTL * 1_000_000), *cost, *shape]

    def _admitted(self, spec: LimitSpec, token: str, cost: Cost, reply: list[Any]) -> RedisAdmission:
        stamps = [s.decode() if isinstance(s, bytes) else str(s) for s in reply[2:]]
        grant = RedisAdmission(token, int(reply[1]) / 1_000_000, cost, stamps, spec.concurrency is not None)
        if grant.slot:
            with self._mutex:
                self._held[token] = (spec, grant)
            self._ensure_renewer()
        return grant

    def _timeout(self, spec: LimitSpec, cost: Cost, timeout: float | None) -> CoordinationTimeoutError:
        try:
            now = f"; now {self.usage(spec).describe()}"
        except Exception:
            now = ""
        return CoordinationTimeoutError(
            f"limit {spec.name!r} ({spec.describe()}) did not admit cost {cost.describe()} within {timeout}s{now}",
            resource=spec.name,
            timeout=timeout,
        )

    @staticmethod
    def _pause(reply: list[Any], deadline: float | None) -> tuple[float, bool] | None:
        """How to wait before the next try: (seconds, block on the wake key?); None past the deadline.

        An open wait (behind the head, or no free slot) blocks on the wake key. A known
        one (the head waiting for its cost to fit) blocks too while it is long, so a
        report or a departure can still wake it, and sleeps its last stretch here: Redis
        times a ``BLPOP`` out only to about 0.1 s, the sleep is as exact as the server's figure.
        """
        known = int(reply[1])
        wait = POLL if known < 0 else min(POLL, known / 1_000_000)
        block = known < 0 or wait > FINE
        if known >= 0 and block:
            wait -= FINE
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait = min(wait, left)
        return max(wait, 0.001), block  # BLPOP's 0 would mean forever

    # -- acquiring: one plan, a sync and an async driver ----------------------------------
    def _plan(self, spec: LimitSpec, token: str, cost: Cost, timeout: float | None) -> Plan:
        """The steps of one admission: it yields what to do (run a script, block on the wake
        key, sleep) and is sent the script replies; it returns the admission. The drivers
        only do the I/O; leaving the queue on an interruption is theirs too."""
        doing = f"admitting to limit {spec.name!r}"
        reply = yield (_RUN, ACQUIRE, self._acquire_args(spec, token, cost, timeout != 0), doing)
        if int(reply[0]) == 1:
            return self._admitted(spec, token, cost, reply)
        if timeout == 0:
            raise self._timeout(spec, cost, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        wake = f"{self._shape(spec)[0]}:k:{token}"
        while True:
            pause = self._pause(reply, deadline)
            if pause is None:
                yield (_RUN, ABANDON, self._abandon_args(spec, token), f"leaving the queue of limit {spec.name!r}")
                raise self._timeout(spec, cost, timeout)
            yield (_BLOCK, wake, pause[0], f"waiting for limit {spec.name!r}") if pause[1] else (_SLEEP, pause[0])
            reply = yield (_RUN, ACQUIRE, self._acquire_args(spec, token, cost, True), doing)
            if int(reply[0]) == 1:
                return self._admitted(spec, token, cost, reply)

    def acquire(self, spec: LimitSpec, cost: Cost, timeout: float | None) -> RedisAdmission:
        token = secrets.token_hex(8)
        plan = self._plan(spec, token, cost, timeout)
        try:
            step = _advance(plan, None)
            while not isinstance(step, RedisAdmission):
                step = _advance(plan, self._step(step))
            return step
        except CoordinationTimeoutError:
            raise
        except BaseException:  # interrupted or failed while queued: leave the queue
            self._abandon_quietly(spec, token)
            raise

    def _step(self, step: tuple[Any, ...]) -> Any:
        """One step of the plan, blocking the thread: a script's reply, or None after a wait."""
        kind = step[0]
        if kind is _RUN:
            return self._run(step[1], step[2], step[3])
        if kind is _BLOCK:
            self._block(step[1], step[2], step[3])
        else:
            time.sleep(step[1])
        return None

    async def acquire_async(self, spec: LimitSpec, cost: Cost, timeout: float | None) -> RedisAdmission:
        token = secrets.token_hex(8)
        plan = self._plan(spec, token, cost, timeout)
        try:
            grant = _advance(plan, None)
            while not isinstance(grant, RedisAdmission):
                grant = _advance(plan, await self._astep(grant))
        except CoordinationTimeoutError:
            raise
        except BaseException:
            # cancelled or failed while queued: leave the queue, on a worker thread so that
            # the cancellation of this task cannot cut the clean-up short
            threading.Thread(target=self._abandon_quietly, args=(spec, token), daemon=True).start()
            raise
        if _cancelling():  # cancelled as the reply came: give the admission back
            await self._give_back(spec, grant)
            raise asyncio.CancelledError()
        return grant

    async def _astep(self, step: tuple[Any, ...]) -> Any:
        """One step of the plan without blocking the loop."""
        kind = step[0]
        if kind is _RUN:
            return await self._arun(step[1], step[2], step[3])
        if kind is _BLOCK:
            await self.b.ctx.arun(step[3], ("BLPOP", step[1], f"{step[2]:.3f}"), retry=False,
                                  deadline=time.monotonic() + step[2] + 1.0)
        else:
            await asyncio.sleep(step[1])
        _raise_if_cancelling()
        return None

    async def _give_back(self, spec: LimitSpec, grant: RedisAdmission) -> None:
        """Undo an admission its waiter no longer wants: free the slot, uncount the cost
        (a requests rate keeps counting it: the safe side)."""
        try:
            args = self._report_args(spec, grant, Cost(0, grant.cost.requests, 0, 0))
            if args is not None:
                await self._arun(REPORT, args, "giving back an admission")
            if grant.slot:
                grant.slot = False
                await self._arun(RELEASE, self._release_args(spec, grant), "giving back an admission")
        except Exception:
            logger.warning("could not give back an admission of limit %r after a cancellation", spec.name)

    def _report_args(self, spec: LimitSpec, grant: RedisAdmission, actual: Cost) -> list[Any] | None:
        """The arguments of ``REPORT`` changing ``grant``'s cost to ``actual`` (None: nothing to change)."""
        delta = [new - old for new, old in zip(actual, grant.cost)]
        grant.cost = actual
        if not any(delta[dimension] for _, dimension in spec.windows):
            return None
        base, shape, ttl = self._shape(spec)
        return [base, ttl, *delta, *shape, *grant.stamps]

    def _abandon_args(self, spec: LimitSpec, token: str) -> list[Any]:
        base, _, ttl = self._shape(spec)
        return [base, ttl, token]

    def _abandon(self, spec: LimitSpec, token: str) -> None:
        self._run(ABANDON, self._abandon_args(spec, token), f"leaving the queue of limit {spec.name!r}")

    def _abandon_quietly(self, spec: LimitSpec, token: str) -> None:
        try:
            self._abandon(spec, token)
        except Exception:
            logger.warning("could not leave the queue of limit %r; it drops this waiter within %ss", spec.name, WAITER_TTL)

    # -- releasing, reporting, charging ----------------------------------------------
    def _release_args(self, spec: LimitSpec, grant: RedisAdmission) -> list[Any]:
        with self._mutex:
            self._held.pop(grant.token, None)
        base, _, ttl = self._shape(spec)
        return [base, ttl, grant.token]

    def release(self, spec: LimitSpec, grant: Any) -> None:
        if grant.slot:
            grant.slot = False
            self._run(RELEASE, self._release_args(spec, grant), f"releasing a slot of limit {spec.name!r}")

    async def release_async(self, spec: LimitSpec, grant: Any) -> None:
        if grant.slot:
            grant.slot = False
            await self._arun(RELEASE, self._release_args(spec, grant), f"releasing a slot of limit {spec.name!r}")

    def report(self, spec: LimitSpec, grant: Any, actual: Cost) -> None:
        args = self._report_args(spec, grant, actual)
        if args is not None:
            self._run(REPORT, args, f"reporting the cost to limit {spec.name!r}")

    async def report_async(self, spec: LimitSpec, grant: Any, actual: Cost) -> None:
        args = self._report_args(spec, grant, actual)
        if args is not None:
            await self._arun(REPORT, args, f"reporting the cost to limit {spec.name!r}")

    def charge(self, spec: LimitSpec, cost: Cost) -> None:
        base, shape, ttl = self._shape(spec)
        self._run(CHARGE, [base, ttl, *cost, *shape], f"charging limit {spec.name!r}")

    # -- what the provider said: a gate on the server, in server time ----------------------
    def _backoff_args(self, spec: LimitSpec, seconds: float) -> list[Any]:
        base, _, ttl = self._shape(spec)
        return [base, ttl, _us(seconds)]

    def backoff(self, spec: LimitSpec, seconds: float) -> None:
        self._run(BACKOFF, self._backoff_args(spec, seconds), f"backing off limit {spec.name!r}")

    async def backoff_async(self, spec: LimitSpec, seconds: float) -> None:
        await self._arun(BACKOFF, self._backoff_args(spec, seconds), f"backing off limit {spec.name!r}")

    def _observe_args(self, spec: LimitSpec, report: ProviderReport) -> list[Any]:
        base, _, ttl = self._shape(spec)
        return [base, ttl, *_observe_args(report)]

    def observe(self, spec: LimitSpec, report: ProviderReport) -> None:
        self._run(OBSERVE, self._observe_args(spec, report), f"recording what the provider said to limit {spec.name!r}")

    async def observe_async(self, spec: LimitSpec, report: ProviderReport) -> None:
        await self._arun(OBSERVE, self._observe_args(spec, report), f"recording what the provider said to limit {spec.name!r}")

    def usage(self, spec: LimitSpec) -> LimitUsage:
        base, shape, ttl = self._shape(spec)
        reply = self._run(USAGE, [base, ttl, *shape], f"reading limit {spec.name!r}")
        windows = tuple(
            WindowUsage(DIMENSIONS[dimension], rate, int(total)) for (rate, dimension), total in zip(spec.windows, reply[8:])
        )
        words = tuple(w for w in (_word(d, raw) for d, raw in zip(DIMENSIONS, reply[4:8])) if w is not None)
        backoff, now = int(reply[2]) / 1_000_000, int(reply[3]) / 1_000_000
        return LimitUsage(spec.name, windows, int(reply[0]), int(reply[1]), backoff, words, now)

    # -- leases of held slots ----------------------------------------------------------
    def _ensure_renewer(self) -> None:
        if self._renewer is None:
            with self._mutex:
                if self._renewer is None and not self._stop.is_set():
                    self._renewer = threading.Thread(target=self._renew_loop, name="agentdiff-limit-leases", daemon=True)
                    self._renewer.start()

    def _renew_loop(self) -> None:
        lease = self._lease()
        while not self._stop.wait(lease / 3):
            with self._mutex:
                held = list(self._held.items())
            by_limit: dict[str, list[str]] = {}
            specs: dict[str, LimitSpec] = {}
            for token, (spec, _) in held:
                by_limit.setdefault(spec.name, []).append(token)
                specs[spec.name] = spec
            for name, tokens in by_limit.items():
                base, _, ttl = self._shape(specs[name])
                try:
                    lost = self._run(RENEW, [base, ttl, int(lease * 1_000_000), *tokens], f"renewing slots of limit {name!r}")
                except Exception:
                    logger.warning("could not renew the slots this process holds in limit %r; retrying", name, exc_info=True)
                    continue
                for token in lost or ():
                    token = token.decode() if isinstance(token, bytes) else token
                    logger.warning(
                        "a slot of limit %r held by this process outlived its %ss lease and was given to others", name, lease
                    )
                    with self._mutex:
                        self._held.pop(token, None)

    def close(self) -> None:
        self._stop.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=5)
