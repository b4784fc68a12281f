"""Rate and concurrency limits: ``limit("openai_api", rate="90000/min", requests="500/min")``.

A limit is declared once per process by name and shared by every thread and event
loop (and, on Redis, by every process and machine)::

    api = limit("openai_api", requests="500/min", rate="90000/min", concurrency=8)

    with api(cost=1200) as permit:          # 1 request and 1200 tokens, admitted together
        reply = client.chat(...)
        permit.report(reply.usage.total_tokens)   # correct the estimate after the call

``rate=`` counts the cost of each admission (tokens), ``requests=`` counts admissions
(each costs 1), ``concurrency=`` bounds the holders at once. Each rate is a sliding
window: in every window of the period the admitted cost never exceeds the rate.
Waiters are admitted strictly in arrival order. ``docs/limits.md`` explains the
algorithm and the guarantee.

The rate parser lives in ``core.rates``, the declared values and the ``LimitStore``
that backends implement in ``core.limit_store`` (both re-exported here); this module
holds the declarations and the user-facing objects, written once for sync and async code.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar, cast

from . import config as _config
from .limit_store import LimitSpec, LimitStore, LimitUsage
from .rates import ACCEPTED_RATES, Rate, _rates, parse_rate  # noqa: F401  (ACCEPTED_RATES lived here)
from .validation import check_name, check_timeout

__all__ = [
    "Limit",
    "LimitSpec",
    "LimitStore",
    "LimitUsage",
    "Permit",
    "Rate",
    "enter_async",
    "enter_sync",
    "exit_async",
    "exit_sync",
    "get_limit",
    "leave_async",
    "leave_sync",
    "limit",
    "limited_async",
    "limited_sync",
    "parse_rate",
]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("agentdiff_coordination")

# -- declarations ------------------------------------------------------------------------

_declared: dict[str, Limit] = {}
_declare_lock = threading.Lock()


def limit(
    name: str,
    *,
    rate: str | Rate | Iterable[str | Rate] | None = None,
    requests: str | Rate | Iterable[str | Rate] | None = None,
    concurrency: int | None = None,
) -> Limit:
    """Declare the named limit (or, with only a name, look up the declared one).

    ``rate`` is charged the cost of each admission (``"90000/min"`` tokens), ``requests``
    one per admission (``"500/min"``), ``concurrency`` bounds the holders at once. Give
    several rates as a list; all are admitted together or not at all. Declaring a name
    again with the same limits returns the same object; with different ones it is an error.
    """
    check_name(name, "limit name")
    if rate is None and requests is None and concurrency is None:
        found = _declared.get(name)
        if found is None:
            raise LookupError(
                f"limit {name!r} is not declared: declare it once with limit({name!r}, rate='500/min') "
                "and/or requests=..., concurrency=N before using it by name"
            )
        return found
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise TypeError(f"concurrency of limit {name!r} must be a whole number, not {concurrency!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency of limit {name!r} must be at least 1, not {concurrency}")
    spec = LimitSpec(name, _rates(rate, f"rate of limit {name!r}"), _rates(requests, f"requests of limit {name!r}"), concurrency)
    with _declare_lock:
        found = _declared.get(name)
        if found is not None:
            if found.spec != spec:
                raise ValueError(
                    f"limit {name!r} is already declared as {found.spec.describe()}; it cannot also be "
                    f"{spec.describe()}: use another name, or declare it the same way everywhere"
                )
            return found
        made = _declared[name] = Limit(spec)
        return made


def get_limit(name: str) -> Limit:
    """The declared limit called ``name`` (``LookupError`` naming it when undeclared)."""
    found = _declared.get(name)
    return found if found is not None else limit(name)


def _reset_for_tests() -> None:
    """Forget every declaration (test helper)."""
    with _declare_lock:
        _declared.clear()


def _store() -> LimitStore:
    backend = _config._backend or _config.get_backend()
    return backend.limit_store()


# -- permits and the call chain's held permits -------------------------------------------

_active: ContextVar[tuple[Permit, ...]] = ContextVar("agentdiff_limit_permits", default=())


class Permit:
    """One admission under a limit: report the actual cost, then release (or leave the ``with``).

    Releasing frees the concurrency slot; the rate budget it used stays spent for the
    period. Releasing twice does nothing.
    """

    __slots__ = ("limit", "cost", "_grant", "_store", "_released")

    def __init__(self, limit: Limit, cost: int, grant: Any, store: LimitStore) -> None:
        self.limit = limit
        self.cost = cost
        self._grant = grant
        self._store = store
        self._released = False

    def report(self, actual: int) -> None:
        """The call really cost ``actual`` (tokens used): correct the windows it counts in.

        Less than charged gives the difference back to waiters now; more is counted as
        spent at the admission, so later admissions wait for it.
        """
        if self._check_actual(actual):
            self._store.report(self.limit.spec, self._grant, actual)
            self.cost = actual

    async def report_async(self, actual: int) -> None:
        """``report`` from async code, without blocking the loop on a shared backend."""
        if self._check_actual(actual):
            await self._store.report_async(self.limit.spec, self._grant, actual)
            self.cost = actual

    def _check_actual(self, actual: object) -> bool:
        """Validate a reported cost; True when it differs from what was charged."""
        if isinstance(actual, bool) or not isinstance(actual, int):
            raise TypeError(f"actual cost reported to limit {self.limit.name!r} must be a whole number, not {actual!r}")
        if actual < 0:
            raise ValueError(f"actual cost reported to limit {self.limit.name!r} must be >= 0, not {actual}")
        return actual != self.cost

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

    async def release_async(self) -> None:
        """Free the slot from async code without blocking the loop; a cancellation of the
        caller meanwhile does not cut the release short."""
        if not self._released:
            self._released = True
            if self._store.nonblocking:
                self._store.release(self.limit.spec, self._grant)
            else:
                await asyncio.shield(self._store.release_async(self.limit.spec, self._grant))

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
        return f"<Permit {self.limit.name!r} cost={self.cost} {state}>"


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


def enter_sync(limit: Limit, cost: int, timeout: float | None) -> Permit:
    """Admit ``cost`` and record the permit in this call chain (``Limit.report`` finds it)."""
    return _push(limit.acquire(cost, timeout=timeout))


async def enter_async(limit: Limit, cost: int, timeout: float | None) -> Permit:
    """``enter_sync`` without blocking the loop."""
    return _push(await limit.acquire_async(cost, timeout=timeout))


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


def _wrap(find: Callable[[], Limit], cost: int, timeout: float | None, fn: Callable[..., Any], is_async: bool, quiet: bool) -> Any:
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


def _finder(name: str) -> Callable[[], Limit]:
    """Looks the limit ``name`` up at each call (it may be declared after the decoration)."""

    def find() -> Limit:
        found = _declared.get(name)
        return found if found is not None else limit(name)

    return find


def limited_sync(name: str, timeout: float | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` taking the limit called ``name`` (cost 1) around each call, looked up per call."""
    return cast(Callable[..., Any], _wrap(_finder(name), 1, timeout, fn, False, True))


def limited_async(name: str, timeout: float | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``limited_sync`` for a coroutine function: waits for the limit without blocking the loop."""
    return cast(Callable[..., Any], _wrap(_finder(name), 1, timeout, fn, True, True))


def _innermost(limit: Limit, *, released: bool = False) -> Permit:
    for permit in reversed(_active.get()):
        if permit.limit is limit and (released or not permit.released):
            return permit
    raise RuntimeError(
        f"no permit of limit {limit.name!r} is held in this call chain: call report() inside "
        f"'with limit({limit.name!r})' or a step coordinated with limit={limit.name!r}, or on the Permit itself"
    )


# -- the user-facing objects -------------------------------------------------------------


class _Use:
    """``limit(...)(cost=..., timeout=...)``: one kind of use, as ``with``, ``async with`` or decorator."""

    __slots__ = ("limit", "cost", "timeout")

    def __init__(self, limit: Limit, cost: int, timeout: float | None) -> None:
        self.limit = limit
        self.cost = cost
        self.timeout = timeout

    def __enter__(self) -> Permit:
        return enter_sync(self.limit, self.cost, self.timeout)

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        exit_sync(_innermost(self.limit, released=True))

    async def __aenter__(self) -> Permit:
        return await enter_async(self.limit, self.cost, self.timeout)

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await exit_async(_innermost(self.limit, released=True))

    def __call__(self, fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"limit({self.limit.name!r}) decorates a function, not {fn!r}")
        lim = self.limit
        return cast(F, _wrap(lambda: lim, self.cost, self.timeout, fn, inspect.iscoroutinefunction(fn), False))


class Limit(_Use):
    """A declared limit: ``with``, ``async with``, a decorator, or ``acquire()`` by hand.

    Used bare it admits cost 1 and waits as long as it takes; ``limit(cost=..., timeout=...)``
    gives the same with a cost (tokens) and a bound on the wait. One object serves every
    thread and task: each admission is recorded in the caller's context.
    """

    __slots__ = ("spec", "name")

    def __init__(self, spec: LimitSpec) -> None:
        super().__init__(self, 1, None)
        self.spec = spec
        self.name = spec.name

    def __call__(self, fn: Any = None, /, *, cost: int = 1, timeout: float | None = None) -> Any:
        """``@limit`` on a function, or ``limit(cost=..., timeout=...)`` for one kind of use."""
        if fn is not None:
            return _Use(self, self.spec.check_cost(cost), check_timeout(timeout))(fn)
        return _Use(self, self.spec.check_cost(cost), check_timeout(timeout))

    def acquire(self, cost: int = 1, *, timeout: float | None = None) -> Permit:
        """Wait (blocking the thread) until ``cost`` is admitted; the permit to release.

        ``timeout=0`` does not wait; past ``timeout`` seconds ``CoordinationTimeoutError``
        names the limit and its state.
        """
        cost = self.spec.check_cost(cost)
        if timeout is not None:
            timeout = check_timeout(timeout)
        store = (_config._backend or _config.get_backend()).limit_store()
        return Permit(self, cost, store.acquire(self.spec, cost, timeout), store)

    async def acquire_async(self, cost: int = 1, *, timeout: float | None = None) -> Permit:
        """Wait until ``cost`` is admitted without blocking the event loop."""
        cost = self.spec.check_cost(cost)
        if timeout is not None:
            timeout = check_timeout(timeout)
        store = (_config._backend or _config.get_backend()).limit_store()
        grant = store.admit_now(self.spec, cost)
        if grant is None:
            grant = await store.acquire_async(self.spec, cost, timeout)
        return Permit(self, cost, grant, store)

    @property
    def max_cost(self) -> int | None:
        """The largest cost one admission may ask for (the smallest ``rate=``), None when unbounded."""
        return min((r.limit for r in self.spec.rates), default=None)

    def report(self, actual: int) -> None:
        """Report the actual cost of the innermost admission this call chain holds."""
        _innermost(self).report(actual)

    def charge(self, cost: int) -> None:
        """Count ``cost`` spent now without waiting (usage learned after the fact)."""
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ValueError(f"cost charged to limit {self.name!r} must be a whole number >= 0, not {cost!r}")
        if cost and self.spec.rates:
            _store().charge(self.spec, cost)

    def usage(self) -> LimitUsage:
        """A snapshot: cost used in each window, holders and waiters."""
        return _store().usage(self.spec)

    def __repr__(self) -> str:
        return f"limit({self.name!r}, {self.spec.describe()})"
