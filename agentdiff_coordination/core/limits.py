"""Rate and concurrency limits: ``limit("openai_api", rate="90000/min", requests="500/min")``.

A limit is declared once per process by name and shared by every thread and event
loop (and, on Redis, by every process and machine)::

    api = limit("openai_api", requests="500/min", rate="90000/min", concurrency=8)

    with api(cost=1200) as permit:          # 1 request and 1200 tokens, admitted together
        reply = client.chat(...)
        permit.report(reply.usage.total_tokens)   # correct the estimate after the call

Dimensions: ``requests=`` counts admissions (each costs 1), ``tokens=`` (``rate=`` is its
older name) the cost of each admission, ``input_tokens=`` and ``output_tokens=`` what an
admission says of them (``api(input_tokens=i, output_tokens=o)``); ``concurrency=``
bounds the holders at once. Each rate is a sliding window: in every window of the
period the admitted cost never exceeds the rate. Waiters are admitted strictly in
arrival order. What the provider says feeds back: ``api.backoff(seconds)`` and
``api.observe_headers(response.headers)``. ``docs/limits.md`` explains it all.

The rate parser lives in ``core.rates``, the declared values and the ``LimitStore``
that backends implement in ``core.limit_values``, the header parser in
``core.provider_headers``, permits and their sync/async drivers in ``core.permits``
(all re-exported here); this module holds the declarations and the ``Limit`` object.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

from .runtime import RUNTIME
from .errors import BackendError
from .limit_values import DIMENSIONS, ONE, Cost, LimitSpec, LimitUsage, ProviderWord, WindowUsage
from .backends.base import LimitStore
from .permits import Permit, check_wait, enter_async, enter_sync, exit_async, exit_sync, innermost, leave_async, leave_sync, wrap
from .provider_headers import ProviderReport, parse_headers
from .rates import ACCEPTED_RATES, Rate, parse_rate, parse_rates  # noqa: F401  (ACCEPTED_RATES lived here)
from .validation import check_name, check_timeout

__all__ = [
    "Cost",
    "Limit",
    "LimitSpec",
    "LimitStore",
    "LimitUsage",
    "Permit",
    "ProviderReport",
    "ProviderWord",
    "Rate",
    "WindowUsage",
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
RateArg = str | Rate | Iterable[str | Rate] | None

logger = logging.getLogger("agentdiff_coordination")

# -- declarations ------------------------------------------------------------------------

_declared: dict[str, Limit] = {}
_declare_lock = threading.Lock()


def limit(
    name: str,
    *,
    rate: RateArg = None,
    requests: RateArg = None,
    concurrency: int | None = None,
    tokens: RateArg = None,
    input_tokens: RateArg = None,
    output_tokens: RateArg = None,
) -> Limit:
    """Declare the named limit (or, with only a name, look up the declared one).

    Each dimension takes a rate (``"90000/min"``) or a list of them: ``requests`` is
    charged 1 per admission, ``tokens`` (``rate`` is its older name) the cost of each
    admission, ``input_tokens`` and ``output_tokens`` what an admission says of them;
    ``concurrency`` bounds the holders at once. All are admitted together or not at
    all. Declaring a name again with the same limits returns the same object; with
    different ones it is an error.
    """
    check_name(name, "limit name")
    if all(v is None for v in (rate, requests, concurrency, tokens, input_tokens, output_tokens)):
        found = _declared.get(name)
        if found is None:
            raise LookupError(
                f"limit {name!r} is not declared: declare it once with limit({name!r}, requests='500/min') "
                "and/or tokens=..., input_tokens=..., output_tokens=..., concurrency=N before using it by name"
            )
        return found
    if rate is not None and tokens is not None:
        raise TypeError(f"limit {name!r}: give tokens= or rate=, not both (rate= is the older name of tokens=)")
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise TypeError(f"concurrency of limit {name!r} must be a whole number, not {concurrency!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency of limit {name!r} must be at least 1, not {concurrency}")
    spelling = "tokens" if tokens is not None else "rate"
    spec = LimitSpec(
        name,
        parse_rates(tokens if tokens is not None else rate, f"{spelling} of limit {name!r}"),
        parse_rates(requests, f"requests of limit {name!r}"),
        concurrency,
        parse_rates(input_tokens, f"input_tokens of limit {name!r}"),
        parse_rates(output_tokens, f"output_tokens of limit {name!r}"),
        spelling,
    )
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


def _finder(name: str) -> Callable[[], Limit]:
    """Looks the limit ``name`` up at each call (it may be declared after the decoration)."""

    def find() -> Limit:
        found = _declared.get(name)
        return found if found is not None else limit(name)

    return find


def limited_sync(name: str, timeout: float | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` taking the limit called ``name`` (cost 1) around each call, looked up per call."""
    return cast(Callable[..., Any], wrap(_finder(name), 1, timeout, fn, False, True))


def limited_async(name: str, timeout: float | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``limited_sync`` for a coroutine function: waits for the limit without blocking the loop."""
    return cast(Callable[..., Any], wrap(_finder(name), 1, timeout, fn, True, True))


def forget_declarations() -> None:
    """Forget every declared limit (``testing.reset()`` calls it)."""
    with _declare_lock:
        _declared.clear()


def _store() -> LimitStore:
    backend = RUNTIME.current or RUNTIME.backend()
    return backend.limit_store()


class _Use:
    """``limit(...)(tokens=..., timeout=...)``: one kind of use, as ``with``, ``async with`` or decorator."""

    __slots__ = ("limit", "cost", "timeout")

    def __init__(self, limit: Limit, cost: Cost, timeout: float | None) -> None:
        self.limit = limit
        self.cost = cost
        self.timeout = timeout

    def __enter__(self) -> Permit:
        return enter_sync(self.limit, self.cost, self.timeout)

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        exit_sync(innermost(self.limit, released=True))

    async def __aenter__(self) -> Permit:
        return await enter_async(self.limit, self.cost, self.timeout)

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await exit_async(innermost(self.limit, released=True))

    def __call__(self, fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"limit({self.limit.name!r}) decorates a function, not {fn!r}")
        lim = self.limit
        return cast(F, wrap(lambda: lim, self.cost, self.timeout, fn, inspect.iscoroutinefunction(fn), False))


class Limit(_Use):
    """A declared limit: ``with``, ``async with``, a decorator, or ``acquire()`` by hand.

    Used bare it admits one request (cost 1) and waits as long as it takes;
    ``limit(tokens=..., timeout=...)`` (or ``cost=``, ``input_tokens=``, ``output_tokens=``)
    gives the same with a cost and a bound on the wait. One object serves every thread
    and task: each admission is recorded in the caller's context.
    """

    __slots__ = ("spec", "name", "_warned")

    def __init__(self, spec: LimitSpec) -> None:
        super().__init__(self, ONE, None)
        self.spec = spec
        self.name = spec.name
        self._warned: set[str] = set()

    def _cost(self, cost: object, tokens: object, input_tokens: object, output_tokens: object) -> Cost:
        if cost is None and tokens is None and input_tokens is None and output_tokens is None:
            return ONE
        return self.spec.cost(cost, tokens, input_tokens, output_tokens)

    def __call__(
        self, fn: Any = None, /, *, cost: int | None = None, tokens: int | None = None, input_tokens: int | None = None,
        output_tokens: int | None = None, timeout: float | None = None,
    ) -> Any:
        """``@limit`` on a function, or ``limit(tokens=..., timeout=...)`` for one kind of use."""
        use = _Use(self, self._cost(cost, tokens, input_tokens, output_tokens), check_timeout(timeout))
        return use if fn is None else use(fn)

    def acquire(
        self, cost: int | None = None, *, tokens: int | None = None, input_tokens: int | None = None,
        output_tokens: int | None = None, timeout: float | None = None,
    ) -> Permit:
        """Wait (blocking the thread) until the cost is admitted; the permit to release.

        ``timeout=0`` does not wait; past ``timeout`` seconds ``CoordinationTimeoutError``
        names the limit and its state.
        """
        return self.admit(self._cost(cost, tokens, input_tokens, output_tokens), check_wait(timeout))

    async def acquire_async(
        self, cost: int | None = None, *, tokens: int | None = None, input_tokens: int | None = None,
        output_tokens: int | None = None, timeout: float | None = None,
    ) -> Permit:
        """Wait until the cost is admitted without blocking the event loop."""
        return await self.admit_async(self._cost(cost, tokens, input_tokens, output_tokens), check_wait(timeout))

    def admit(self, cost: Cost, timeout: float | None) -> Permit:
        """``acquire`` with a ``Cost`` already checked (``spec.cost(...)``) and a checked timeout."""
        store = _store()
        return Permit(self, cost, store.acquire(self.spec, cost, timeout), store)

    async def admit_async(self, cost: Cost, timeout: float | None) -> Permit:
        """``acquire_async`` with a checked ``Cost`` and timeout."""
        store = _store()
        grant = store.admit_now(self.spec, cost)
        if grant is None:
            grant = await store.acquire_async(self.spec, cost, timeout)
        return Permit(self, cost, grant, store)

    @property
    def max_cost(self) -> int | None:
        """The largest cost one admission may ask for (the smallest ``tokens`` rate), None when unbounded."""
        return min((r.limit for r in self.spec.rates), default=None)

    def report(
        self, actual: int | None = None, *, tokens: int | None = None, input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """Report the actual cost of the innermost admission this call chain holds."""
        innermost(self).report(actual, tokens=tokens, input_tokens=input_tokens, output_tokens=output_tokens)

    def charge(
        self, cost: int | None = None, *, tokens: int | None = None, input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """Count a cost spent now without waiting (usage learned after the fact)."""
        if cost is None and tokens is None and input_tokens is None and output_tokens is None:
            raise TypeError(f"charge to limit {self.name!r} needs a cost: charge(n) or charge(tokens=..., input_tokens=..., output_tokens=...)")
        spent = self.spec.cost(cost, tokens, input_tokens, output_tokens, admission=False)
        if any(spent[w.dimension] for w in self.spec.windows):
            _store().charge(self.spec, spent)

    # -- what the provider says ------------------------------------------------------------
    def backoff(self, seconds: float) -> None:
        """Admit nothing under this limit, in any process sharing the backend, for ``seconds``.

        Waiters keep their places and are served in order after it; a longer backoff
        already in force stays.
        """
        seconds = _seconds(seconds, f"backoff of limit {self.name!r}")
        if seconds > 0:
            _store().backoff(self.spec, seconds)

    async def backoff_async(self, seconds: float) -> None:
        """``backoff`` without blocking the loop on a shared backend."""
        seconds = _seconds(seconds, f"backoff of limit {self.name!r}")
        if seconds > 0:
            await _store().backoff_async(self.spec, seconds)

    def observe_headers(self, headers: Mapping[str, str]) -> ProviderReport:
        """Learn from a response's rate-limit headers (OpenAI's and Anthropic's); what they said.

        Until the provider's reset, no more than the remaining it gave is admitted in
        that dimension, fleet-wide; a ``retry-after`` becomes a ``backoff``. Unreadable
        values are ignored; a backend failure here is logged, never raised.
        """
        report = parse_headers(headers)
        if report:
            self._check_declared(report)
            try:
                _store().observe(self.spec, report)
            except BackendError:
                logger.warning("limit %r: could not record what the provider said", self.name, exc_info=True)
        return report

    async def observe_headers_async(self, headers: Mapping[str, str]) -> ProviderReport:
        """``observe_headers`` without blocking the loop on a shared backend."""
        report = parse_headers(headers)
        if report:
            self._check_declared(report)
            try:
                await _store().observe_async(self.spec, report)
            except BackendError:
                logger.warning("limit %r: could not record what the provider said", self.name, exc_info=True)
        return report

    def _check_declared(self, report: ProviderReport) -> None:
        """Warn once per dimension when the provider's limit is not one declared here."""
        for said in report.dimensions:
            declared = self.spec.rates_of(DIMENSIONS.index(said.dimension))
            if said.limit is None or not declared or said.limit in {r.limit for r in declared}:
                continue
            if said.dimension not in self._warned:
                self._warned.add(said.dimension)
                label = self.spec.spelling if said.dimension == "tokens" else said.dimension
                logger.warning(
                    "limit %r: the provider says its %s limit is %d, but it is declared as %s=%s; the "
                    "declaration is probably wrong (said once)",
                    self.name, said.dimension, said.limit, label, [str(r) for r in declared],
                )

    def usage(self) -> LimitUsage:
        """A snapshot: cost used in each window, holders, waiters, a backoff, the provider's last word."""
        return _store().usage(self.spec)

    def describe(self) -> str:
        """The declaration and the state now, in words."""
        return f"limit {self.name!r} ({self.spec.describe()}): {self.usage().describe()}"

    def __repr__(self) -> str:
        return f"limit({self.name!r}, {self.spec.describe()})"


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{what} must be a number of seconds >= 0, not {value!r}")
    return float(value)
