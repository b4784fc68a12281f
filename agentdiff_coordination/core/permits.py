"""Permits of limits and the admissions a call chain holds, taken by sync and async code.

A ``Permit`` is one admission: report its actual cost, then release it. ``enter_*``
admits and records the permit in the caller's context (so ``Limit.report`` finds the
innermost one), ``exit_*`` forgets and releases it, ``leave_*`` does so at the end of a
coordinated step (a failure logged, never raised), and ``wrap`` is the one decorator
of limits and coordinated steps. Each pair shares its rule; only the waiting differs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Protocol

from . import observers as _observers
from .limit_values import ONE, Cost, LimitSpec
from .backends.base import LimitStore
from .observers import LiveSpan, outcome_of
from .limit_values import check_amount as _amount
from .validation import check_timeout


class Limit(Protocol):
    """What a permit needs of its limit (``core.limits.Limit`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> LimitSpec: ...
    def admit(self, cost: Cost, timeout: float | None) -> Permit: ...
    async def admit_async(self, cost: Cost, timeout: float | None) -> Permit: ...

__all__ = ["Permit", "check_wait", "enter_async", "enter_sync", "exit_async", "exit_sync", "innermost", "leave_async", "leave_sync", "wrap"]

logger = logging.getLogger("agentdiff_coordination")

_active: ContextVar[tuple[Permit, ...]] = ContextVar("agentdiff_limit_permits", default=())


class Permit:
    """One admission under a limit: report the actual cost, then release (or leave the ``with``).

    Releasing frees the concurrency slot; the rate budget it used stays spent for the
    period. Releasing twice does nothing.
    """

    __slots__ = ("limit", "charged", "_grant", "_store", "_released", "waited", "_spans")

    def __init__(self, limit: Limit, cost: Cost, grant: Any, store: LimitStore) -> None:
        self.limit = limit
        self.charged = cost  # what the admission counts for, per dimension
        self._grant = grant
        self._store = store
        self._released = False
        #: seconds the admission waited, when observed (else None)
        self.waited: float | None = None
        self._spans: tuple[LiveSpan, ...] = ()

    def _ended(self) -> None:
        """Observed: the hold (and a ``with limit()``'s own span) end with the release."""
        spans, self._spans = self._spans, ()
        for span in spans:
            span.finish(None if span.kind == "limit_hold" else "granted")

    @property
    def cost(self) -> int:
        """The ``tokens`` this admission counts for (its ``cost``)."""
        return self.charged.tokens

    def report(
        self, actual: int | None = None, *, tokens: int | None = None, input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """The call really cost ``actual`` tokens (or ``tokens=``, ``input_tokens=``, ``output_tokens=``):
        correct the windows it counts in.

        Less than charged gives the difference back to waiters now; more is counted as
        spent at the admission, so later admissions wait for it. Given ``input_tokens``
        or ``output_tokens`` without ``tokens``, the tokens are their sum.
        """
        new = self._actual(actual, tokens, input_tokens, output_tokens)
        if new is not None:
            self._store.report(self.limit.spec, self._grant, new)
            self.charged = new

    async def report_async(
        self, actual: int | None = None, *, tokens: int | None = None, input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """``report`` from async code, without blocking the loop on a shared backend."""
        new = self._actual(actual, tokens, input_tokens, output_tokens)
        if new is not None:
            await self._store.report_async(self.limit.spec, self._grant, new)
            self.charged = new

    def _actual(self, actual: object, tokens: object, input_tokens: object, output_tokens: object) -> Cost | None:
        """The reported cost, checked; None when it is what was charged."""
        name = self.limit.name
        if actual is not None:
            if tokens is not None:
                raise TypeError(f"report to limit {name!r}: give the actual cost or tokens=, not both")
            tokens = actual
        if tokens is None and input_tokens is None and output_tokens is None:
            raise TypeError(f"report to limit {name!r} needs the actual cost: report(n) or report(tokens=..., input_tokens=..., output_tokens=...)")
        old = self.charged
        i = old.input_tokens if input_tokens is None else _amount(input_tokens, f"input_tokens reported to limit {name!r}")
        o = old.output_tokens if output_tokens is None else _amount(output_tokens, f"output_tokens reported to limit {name!r}")
        t = i + o if tokens is None else _amount(tokens, f"actual cost reported to limit {name!r}")
        new = Cost(t, old.requests, i, o)
        return None if new == old else new

    @property
    def released(self) -> bool:
        """Whether the permit was released."""
        return self._released

    @property
    def admitted_at(self) -> float:
        """When the store admitted it, on the store's clock (monotonic seconds in memory,
        the server's clock in seconds on Redis)."""
        return float(self._grant.at)

    def release(self) -> None:
        """Free the concurrency slot (if the limit has one)."""
        if not self._released:
            self._released = True
            self._store.release(self.limit.spec, self._grant)
            if self._spans:
                self._ended()

    async def release_async(self) -> None:
        """Free the slot from async code without blocking the loop; a cancellation of the
        caller meanwhile does not cut the release short."""
        if not self._released:
            self._released = True
            if self._store.nonblocking:
                self._store.release(self.limit.spec, self._grant)
            else:
                await asyncio.shield(self._store.release_async(self.limit.spec, self._grant))
            if self._spans:
                self._ended()

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    async def __aenter__(self) -> Permit:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.release_async()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<Permit {self.limit.name!r} cost={self.charged.describe()} {state}>"


def _push(permit: Permit) -> Permit:
    _active.set(_active.get() + (permit,))
    return permit


def _pop(permit: Permit) -> Permit:
    held = _active.get()
    if held and held[-1] is permit:
        _active.set(held[:-1])
    elif permit in held:  # left out of order (a generator, a hand-off): drop just this one
        _active.set(tuple(p for p in held if p is not permit))
    return permit


def _as_cost(limit: Limit, cost: int | Cost) -> Cost:
    if type(cost) is Cost:
        return cost
    return ONE if cost == 1 and type(cost) is int else limit.spec.cost(cost)


class _Watched:
    """An observed admission: a ``limit NAME`` span around it outside a step, the wait as a
    span, then the hold (ended by the permit's release)."""

    __slots__ = ("outer", "wait")

    def __init__(self, limit: Limit, step: str | None, run_id: str | None) -> None:
        attrs = {"coordination.limit.name": limit.name}
        self.outer = None if step is not None else LiveSpan("limit", None, None, limit.name, dict(attrs))
        self.wait = LiveSpan("limit_wait", step, run_id, limit.name, dict(attrs))

    def failed(self, error: BaseException) -> None:
        for span in (self.wait, self.outer):
            if span is not None:
                span.finish(outcome_of(error), error)

    def admitted(self, permit: Permit) -> Permit:
        wait = self.wait
        permit.waited = wait.elapsed
        wait.finish("granted")
        hold = LiveSpan("limit_hold", wait.step, wait.run_id, wait.resource)
        if self.outer is not None:
            self.outer.attrs["coordination.limit.wait_duration"] = permit.waited
            permit._spans = (hold, self.outer)
        else:
            permit._spans = (hold,)
        return permit


def enter_sync(
    limit: Limit, cost: int | Cost, timeout: float | None, step: str | None = None, run_id: str | None = None
) -> Permit:
    """Admit ``cost`` and record the permit in this call chain (``Limit.report`` finds it);
    ``step`` and ``run_id`` name the coordinated run it is taken for, if any."""
    if not _observers.current:
        return _push(limit.admit(_as_cost(limit, cost), check_wait(timeout)))
    watched = _Watched(limit, step, run_id)
    try:
        permit = limit.admit(_as_cost(limit, cost), check_wait(timeout))
    except BaseException as exc:
        watched.failed(exc)
        raise
    return _push(watched.admitted(permit))


async def enter_async(
    limit: Limit, cost: int | Cost, timeout: float | None, step: str | None = None, run_id: str | None = None
) -> Permit:
    """``enter_sync`` without blocking the loop."""
    if not _observers.current:
        return _push(await limit.admit_async(_as_cost(limit, cost), check_wait(timeout)))
    watched = _Watched(limit, step, run_id)
    try:
        permit = await limit.admit_async(_as_cost(limit, cost), check_wait(timeout))
    except BaseException as exc:
        watched.failed(exc)
        raise
    return _push(watched.admitted(permit))


def exit_sync(permit: Permit) -> None:
    """Forget ``permit`` in this call chain and release it."""
    _pop(permit).release()


async def exit_async(permit: Permit) -> None:
    """``exit_sync`` without blocking the loop; the release survives a cancellation."""
    await _pop(permit).release_async()


class _Logged:
    """Around the release at the end of a coordinated step: a failure is logged, never raised.

    A slot that could not be released (the Redis server went away) is recovered when
    its lease runs out, so the step's own outcome stands.
    """

    __slots__ = ("permit",)

    def __init__(self, permit: Permit) -> None:
        self.permit = permit

    def __enter__(self) -> None:
        pass

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> bool:
        if isinstance(e, Exception):
            logger.exception("releasing limit %r after a coordinated step failed", self.permit.limit.name)
            return True
        return False


def leave_sync(permit: Permit) -> None:
    """Release ``permit`` at the end of a coordinated step; a failure is logged, never raised."""
    with _Logged(permit):
        exit_sync(permit)


async def leave_async(permit: Permit) -> None:
    """``leave_sync`` from async code; the release survives the step's cancellation."""
    with _Logged(permit):
        await exit_async(permit)


def wrap(find: Callable[[], Limit], cost: int | Cost, timeout: float | None, fn: Callable[..., Any], is_async: bool, quiet: bool) -> Any:
    """``fn`` taking the limit ``find()`` gives around each call: the one wrapper of
    decorators and coordinated steps (``quiet``: a failed release is logged, not raised)."""
    if is_async:
        leave_a = leave_async if quiet else exit_async

        @functools.wraps(fn)
        async def async_limited(*args: Any, **kwargs: Any) -> Any:
            permit = await enter_async(find(), cost, timeout)
            try:
                return await fn(*args, **kwargs)
            finally:
                await leave_a(permit)

        return async_limited
    leave = leave_sync if quiet else exit_sync

    @functools.wraps(fn)
    def limited(*args: Any, **kwargs: Any) -> Any:
        permit = enter_sync(find(), cost, timeout)
        try:
            return fn(*args, **kwargs)
        finally:
            leave(permit)

    return limited


def innermost(limit: Limit, *, released: bool = False) -> Permit:
    for permit in reversed(_active.get()):
        if permit.limit is limit and (released or not permit.released):
            return permit
    raise RuntimeError(
        f"no permit of limit {limit.name!r} is held in this call chain: call report() inside "
        f"'with limit({limit.name!r})' or a step coordinated with limit={limit.name!r}, or on the Permit itself"
    )


def check_wait(timeout: float | None) -> float | None:
    """A wait's ``timeout`` checked (None: wait as long as it takes)."""
    return None if timeout is None else check_timeout(timeout)


