"""What a limit is and where its state lives: ``LimitSpec``, ``LimitUsage``, ``LimitStore``.

``LimitSpec`` is a declared limit as values (its rates and concurrency), ``LimitUsage`` a
snapshot of its state, and ``LimitStore`` the interface a backend implements to keep
that state (``MemoryLimitStore`` is the reference, ``RedisLimitStore`` shares it across
processes). ``core.limits`` builds the user-facing objects on these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from .rates import Rate

__all__ = ["LimitSpec", "LimitStore", "LimitUsage"]


@dataclass(frozen=True)
class LimitSpec:
    """What a limit allows: weighted ``rates`` (charged the cost of each admission),
    ``requests`` rates (charged 1 per admission) and at most ``concurrency`` holders."""

    name: str
    rates: tuple[Rate, ...] = ()
    requests: tuple[Rate, ...] = ()
    concurrency: int | None = None

    @property
    def windows(self) -> tuple[tuple[Rate, bool], ...]:
        """Every rate with whether it is weighted by cost (True) or counts admissions."""
        return tuple((r, True) for r in self.rates) + tuple((r, False) for r in self.requests)

    def describe(self) -> str:
        """The declaration as it would be written, e.g. ``rate='90000/min', concurrency=8``."""
        parts = []
        for label, rates in (("rate", self.rates), ("requests", self.requests)):
            if len(rates) == 1:
                parts.append(f"{label}={str(rates[0])!r}")
            elif rates:
                parts.append(f"{label}={[str(r) for r in rates]!r}")
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        return ", ".join(parts)

    def check_cost(self, cost: object) -> int:
        """``cost`` as an admission cost of this limit, or a clear error."""
        if cost == 1 and type(cost) is int:  # the common case: one request
            return 1
        if isinstance(cost, bool) or not isinstance(cost, int):
            raise TypeError(f"cost of limit {self.name!r} must be a whole number, not {cost!r}")
        if cost < 1:
            raise ValueError(f"cost of limit {self.name!r} must be at least 1, not {cost}")
        for rate in self.rates:
            if cost > rate.limit:
                raise ValueError(
                    f"cost {cost} is larger than limit {self.name!r} allows in any window ({rate}): it could "
                    "never be admitted; split the request or declare a larger rate"
                )
        return cost


@dataclass(frozen=True)
class LimitUsage:
    """A snapshot of one limit: cost used in the current window of each rate, holders, waiters."""

    name: str
    used: tuple[tuple[Rate, bool, int], ...]  # (rate, weighted, cost admitted in the last period)
    holders: int
    waiting: int

    def describe(self) -> str:
        parts = [f"{used} of {rate} used" + ("" if weighted else " (requests)") for rate, weighted, used in self.used]
        parts.append(f"{self.holders} holding")
        parts.append(f"{self.waiting} waiting")
        return ", ".join(parts)


class LimitStore(ABC):
    """Where a backend keeps the state of limits; the memory store is the reference.

    ``acquire`` admits ``cost`` under ``spec`` (FIFO, blocking the thread up to
    ``timeout``), ``acquire_async`` waits without blocking the loop; both return an
    opaque grant that ``release`` ends (it frees a concurrency slot) and ``report``
    corrects with the actual cost. ``timeout=0`` tries without waiting or queueing.
    """

    #: True when ``release`` never blocks, so async code may call it directly
    nonblocking: bool = True

    @abstractmethod
    def acquire(self, spec: LimitSpec, cost: int, timeout: float | None) -> Any:
        """Admit ``cost``; raise ``CoordinationTimeoutError`` naming the limit on timeout."""

    @abstractmethod
    async def acquire_async(self, spec: LimitSpec, cost: int, timeout: float | None) -> Any:
        """Admit ``cost`` without blocking the loop; cancellation leaves nothing held or queued."""

    def admit_now(self, spec: LimitSpec, cost: int) -> Any:
        """A grant if ``cost`` is admitted at once without waiting or I/O, else None.

        The fast path of async admission; a store that cannot answer locally returns
        None and ``acquire_async`` does the work.
        """
        return None

    @abstractmethod
    def release(self, spec: LimitSpec, grant: Any) -> None:
        """End ``grant``: free its concurrency slot (rates are spent, never given back)."""

    async def release_async(self, spec: LimitSpec, grant: Any) -> None:
        """Release from async code; the default calls the non-blocking ``release``."""
        self.release(spec, grant)

    @abstractmethod
    def report(self, spec: LimitSpec, grant: Any, actual: int) -> None:
        """Replace the cost charged for ``grant`` by ``actual`` in the windows it still counts in."""

    async def report_async(self, spec: LimitSpec, grant: Any, actual: int) -> None:
        """``report`` from async code; the default calls the non-blocking ``report``."""
        self.report(spec, grant, actual)

    @abstractmethod
    def charge(self, spec: LimitSpec, cost: int) -> None:
        """Record ``cost`` spent now outside any admission (usage that already happened)."""

    @abstractmethod
    def usage(self, spec: LimitSpec) -> LimitUsage:
        """A snapshot of the limit's state."""

    def close(self) -> None:
        """Release connections and threads."""
