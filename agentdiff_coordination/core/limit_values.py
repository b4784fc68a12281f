"""What a limit is, as values: ``LimitSpec``, ``Cost``, ``LimitUsage``, ``ProviderGate``.

``LimitSpec`` is a declared limit (its rates per dimension and its concurrency), ``Cost``
what one admission charges in each dimension, ``LimitUsage`` a snapshot of its state,
``ProviderGate`` what the provider imposed (backoff, caps). The ``LimitStore`` a backend
implements to keep that state is part of the backend protocol (``backends/base.py``);
``core.limits`` builds the user-facing objects on these.

Dimensions: ``tokens`` (``rate=`` is its older name), ``requests`` (1 per admission),
``input_tokens`` and ``output_tokens``; ``concurrency`` is not a rate but slots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

from .provider_headers import ProviderReport
from .rates import Rate

__all__ = [
    "SLICES",
    "DIMENSIONS",
    "Cost",
    "LimitSpec",
    "LimitUsage",
    "ProviderGate",
    "ProviderWord",
    "Window",
    "WindowUsage",
    "check_amount",
]

#: slices of a period that share one log entry: bounds memory, costs at most 1/SLICES of the rate
SLICES = 1000

#: the rate dimensions, in the order of a ``Cost`` and of a limit's windows
DIMENSIONS = ("tokens", "requests", "input_tokens", "output_tokens")
TOKENS, REQUESTS, INPUT_TOKENS, OUTPUT_TOKENS = range(4)


class Cost(NamedTuple):
    """What one admission charges in each dimension (``requests`` is 1 for an admission)."""

    tokens: int = 1
    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0

    def describe(self) -> str:
        """``"1200"`` (tokens), or with input and output ``"1200 (input_tokens=1000, output_tokens=200)"``."""
        if not (self.input_tokens or self.output_tokens):
            return str(self.tokens)
        return f"{self.tokens} (input_tokens={self.input_tokens}, output_tokens={self.output_tokens})"


#: a bare admission: one request, one unit of ``tokens`` (the ``cost=1`` of ``rate=`` limits)
ONE = Cost()


class Window(NamedTuple):
    """One rate of a limit and the dimension it counts."""

    rate: Rate
    dimension: int  # an index of DIMENSIONS

    @property
    def weighted(self) -> bool:
        """Whether it counts a cost (tokens) rather than admissions."""
        return self.dimension != REQUESTS


def check_amount(value: object, what: str) -> int:
    """``value`` as a whole number >= 0, or an error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a whole number >= 0, not {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be a whole number >= 0, not {value!r}")
    return value


@dataclass(frozen=True)
class LimitSpec:
    """What a limit allows: ``rates`` (the ``tokens`` dimension, charged each admission's
    cost), ``requests`` (charged 1 per admission), ``input_tokens``, ``output_tokens`` and
    at most ``concurrency`` holders. ``spelling`` is how the tokens dimension was declared
    (``rate=`` or ``tokens=``), for messages only."""

    name: str
    rates: tuple[Rate, ...] = ()
    requests: tuple[Rate, ...] = ()
    concurrency: int | None = None
    input_tokens: tuple[Rate, ...] = ()
    output_tokens: tuple[Rate, ...] = ()
    spelling: str = field(default="rate", compare=False)

    def rates_of(self, dimension: int) -> tuple[Rate, ...]:
        """The rates declared for one dimension."""
        return (self.rates, self.requests, self.input_tokens, self.output_tokens)[dimension]

    @property
    def windows(self) -> tuple[Window, ...]:
        """Every rate with the dimension it counts, in ``DIMENSIONS`` order."""
        return tuple(Window(r, d) for d in range(len(DIMENSIONS)) for r in self.rates_of(d))

    def describe(self) -> str:
        """The declaration as it would be written, e.g. ``rate='90000/min', concurrency=8``."""
        parts = []
        for d, label in enumerate((self.spelling, *DIMENSIONS[1:])):
            rates = self.rates_of(d)
            if len(rates) == 1:
                parts.append(f"{label}={str(rates[0])!r}")
            elif rates:
                parts.append(f"{label}={[str(r) for r in rates]!r}")
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        return ", ".join(parts)

    def check_cost(self, cost: object) -> int:
        """``cost`` as an admission cost of this limit (its ``tokens``), or a clear error."""
        if cost == 1 and type(cost) is int:  # the common case: one request
            return 1
        if isinstance(cost, bool) or not isinstance(cost, int):
            raise TypeError(f"cost of limit {self.name!r} must be a whole number, not {cost!r}")
        if cost < 1:
            raise ValueError(f"cost of limit {self.name!r} must be at least 1, not {cost}")
        self._fits(TOKENS, cost)
        return cost

    def _fits(self, dimension: int, amount: int) -> None:
        for rate in self.rates_of(dimension):
            if amount > rate.limit:
                label = self.spelling if dimension == TOKENS else DIMENSIONS[dimension]
                raise ValueError(
                    f"cost {amount} is larger than limit {self.name!r} allows in any window of its "
                    f"{DIMENSIONS[dimension]} ({label}={str(rate)!r}): it could never be admitted; split the "
                    "request or declare a larger rate"
                )

    def cost(
        self,
        cost: object = None,
        tokens: object = None,
        input_tokens: object = None,
        output_tokens: object = None,
        *,
        admission: bool = True,
    ) -> Cost:
        """The ``Cost`` an admission (or, ``admission=False``, a charge) asks for.

        ``cost`` is ``tokens`` by its older name. Without ``tokens``, ``input_tokens`` and
        ``output_tokens`` add up to it; with none of them an admission costs 1 token.
        An amount larger than a rate of its dimension is an error naming the dimension.
        """
        if cost is not None:
            if tokens is not None:
                raise TypeError(f"give cost= or tokens= to limit {self.name!r}, not both (cost is tokens' older name)")
            tokens = self.check_cost(cost) if admission else check_amount(cost, f"cost charged to limit {self.name!r}")
        i = 0 if input_tokens is None else check_amount(input_tokens, f"input_tokens of limit {self.name!r}")
        o = 0 if output_tokens is None else check_amount(output_tokens, f"output_tokens of limit {self.name!r}")
        if tokens is None:
            t = i + o if (input_tokens is not None or output_tokens is not None) else (1 if admission else 0)
        else:
            t = check_amount(tokens, f"tokens of limit {self.name!r}")
        if admission:
            for d, amount in ((TOKENS, t), (INPUT_TOKENS, i), (OUTPUT_TOKENS, o)):
                if amount > 1:
                    self._fits(d, amount)
        return Cost(t, 1 if admission else 0, i, o)


class WindowUsage(NamedTuple):
    """One rate of a limit in a snapshot: its dimension, the rate and the cost counted now."""

    dimension: str
    rate: Rate
    used: int


class ProviderWord(NamedTuple):
    """What the provider last said about one dimension (times are wall-clock seconds)."""

    dimension: str
    limit: int | None
    remaining: int | None
    reset_at: float | None
    observed_at: float


@dataclass(frozen=True)
class LimitUsage:
    """A snapshot of one limit: the cost counted in each window, holders, waiters, a backoff
    in force (``backoff`` seconds left, ``backoff_until`` wall-clock) and the provider's
    last word per dimension."""

    name: str
    windows: tuple[WindowUsage, ...]
    holders: int
    waiting: int
    backoff: float = 0.0
    provider: tuple[ProviderWord, ...] = ()
    taken_at: float = field(default_factory=time.time)

    @property
    def used(self) -> tuple[tuple[Rate, bool, int], ...]:
        """``(rate, weighted, used)`` per window (the form of earlier releases)."""
        return tuple((w.rate, w.dimension != "requests", w.used) for w in self.windows)

    @property
    def backoff_until(self) -> float | None:
        """When the backoff in force ends (wall-clock seconds), None when there is none."""
        return self.taken_at + self.backoff if self.backoff > 0 else None

    def describe(self) -> str:
        parts = [
            f"{w.used} of {w.rate} used" + ("" if w.dimension == "tokens" else f" ({w.dimension})") for w in self.windows
        ]
        parts.append(f"{self.holders} holding")
        parts.append(f"{self.waiting} waiting")
        if self.backoff > 0:
            until = time.strftime("%H:%M:%S", time.gmtime(self.taken_at + self.backoff))
            parts.append(f"backing off for {self.backoff:.3g}s more (until {until} UTC)")
        for word in self.provider:
            said = [f"{word.remaining} of {word.limit}" if word.limit is not None else f"{word.remaining}"]
            if word.reset_at is not None:
                left = word.reset_at - self.taken_at
                said.append(f"resets in {left:.3g}s" if left > 0 else "reset since")
            parts.append(f"provider: {word.dimension} {', '.join(said)} (said {self.taken_at - word.observed_at:.3g}s ago)")
        return ", ".join(parts)


class ProviderGate:
    """What the provider imposed on a limit, on a store's clock: a backoff (nothing admitted
    before ``until``) and caps (at most ``remaining`` of a dimension before its ``reset``),
    with its last word. Pure logic: the memory store uses it, the Redis store runs the same in Lua."""

    __slots__ = ("until", "caps", "words")

    def __init__(self) -> None:
        self.until = 0.0
        self.caps: dict[int, list[float]] = {}  # dimension -> [remaining, reset]
        self.words: dict[int, tuple[int | None, int | None, float | None, float]] = {}  # limit, remaining, reset, at

    def wait(self, now: float, cost: Cost) -> float:
        """Seconds until ``cost`` may be admitted as far as the provider is concerned."""
        wait = self.until - now if self.until > now else 0.0
        for dimension, (remaining, reset) in self.caps.items():
            if reset > now and cost[dimension] > remaining and reset - now > wait:
                wait = reset - now
        return wait

    def spend(self, now: float, cost: Cost) -> None:  # an admission takes its cost from the caps
        for dimension, cap in self.caps.items():
            if cap[1] > now:
                cap[0] -= cost[dimension]

    def observe(self, now: float, report: ProviderReport) -> None:
        for said in report.dimensions:
            dimension = DIMENSIONS.index(said.dimension)
            reset = None if said.reset is None else now + said.reset
            self.words[dimension] = (said.limit, said.remaining, reset, now)
            if said.remaining is not None and reset is not None and reset > now:
                self.caps[dimension] = [float(said.remaining), reset]
        if report.retry_after:
            self.until = max(self.until, now + report.retry_after)
