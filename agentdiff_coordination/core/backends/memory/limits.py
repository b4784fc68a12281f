"""Limits in one process: the admission algorithm (pure, clock-injected) and its store.

``SlidingLog`` is one rate: a log of admissions (time, cost) and their running total.
A cost is admitted at ``now`` only if the cost logged in ``(now - period, now]`` plus
the new cost fits the rate, which is exactly "in every window of the period the
admitted cost never exceeds the rate". Admissions that fall in the same slice of
the period (``period / SLICES``) share one entry, stamped with the slice's end: an
entry never counts earlier than its admissions did, so the guarantee holds, memory
is at most ``SLICES + 1`` entries per rate, and at most a slice of each period
(0.1%) is lost to the rounding.

``LimitState`` combines a limit's rates and its concurrency slots behind one FIFO
queue: only the waiter at the head may be admitted, so a large cost is never
starved by small ones. It knows nothing of threads or loops; ``MemoryLimitStore``
adds the waiting (a ``threading.Event`` per sync waiter, a future per async one)
and wakes the head whenever the state changes in its favour.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ...errors import CoordinationTimeoutError
from ...limit_values import SLICES, DIMENSIONS, REQUESTS, TOKENS, Cost, LimitSpec, LimitUsage, ProviderGate, ProviderWord, WindowUsage
from ..base import LimitStore
from ...provider_headers import ProviderReport

__all__ = ["Admission", "LimitState", "MemoryLimitStore", "SlidingLog", "Waiter"]

INF = math.inf


class SlidingLog:
    """One rate: at most ``limit`` cost in any ``period`` seconds, as an exact log.

    It counts one ``dimension`` of an admission's ``Cost`` (an index of ``DIMENSIONS``).
    Entries are ``[time, cost]`` lists in time order; ``total`` is their sum.
    """

    __slots__ = ("limit", "period", "dimension", "resolution", "entries", "total")

    def __init__(self, limit: int, period: float, dimension: int = TOKENS, resolution: float | None = None) -> None:
        self.limit = limit
        self.period = period
        self.dimension = dimension
        self.resolution = period / SLICES if resolution is None else resolution
        self.entries: deque[list[float]] = deque()
        self.total = 0

    def expire(self, now: float) -> None:
        """Forget the entries that no window ending at ``now`` or later contains."""
        entries, period = self.entries, self.period
        while entries and entries[0][0] + period <= now:
            self.total -= int(entries.popleft()[1])

    def wait(self, now: float, charged: int) -> float:
        """Seconds from ``now`` until ``charged`` fits (0.0 when it fits now); after ``expire(now)``."""
        excess = self.total + charged - self.limit
        if excess <= 0:
            return 0.0
        freed = 0
        for stamp, spent in self.entries:
            freed += int(spent)
            if freed >= excess:
                return max(stamp + self.period - now, 0.0)
        return max(self.entries[-1][0] + self.period - now, 0.0) if self.entries else 0.0

    def record(self, now: float, charged: int) -> list[float]:
        """Log ``charged`` admitted at ``now``; the entry it was added to."""
        entries = self.entries
        if entries and entries[-1][0] >= now:  # within the last entry's slice (or a clock step back)
            entry = entries[-1]
            entry[1] += charged
            self.total += charged
            return entry
        stamp = now
        resolution = self.resolution
        if resolution > 0:
            index = math.ceil(now / resolution)
            stamp = index * resolution
            if stamp < now:  # float rounding: never stamp earlier than the admission
                stamp = (index + 1) * resolution
        if entries and entries[-1][0] >= stamp:  # same slice: share the entry
            entry = entries[-1]
            entry[1] += charged
        else:
            entry = [stamp, charged]
            entries.append(entry)
        self.total += charged
        return entry

    def adjust(self, entry: list[float], delta: int, now: float) -> None:
        """Change an entry's cost by ``delta`` if it still counts in the window at ``now``."""
        self.expire(now)
        if entry[0] + self.period > now:
            entry[1] += delta
            self.total += delta


class Waiter:
    """A queued acquirer; ``queued`` is kept by ``LimitState``."""

    __slots__ = ("queued",)

    def __init__(self) -> None:
        self.queued = False

    def arm(self) -> None:
        """Before waiting, under the state's mutex: ready to be woken."""


class Admission:
    """What one admission took: when (``at``), the log entries it was added to, its cost, its slot."""

    __slots__ = ("at", "entries", "cost", "slot")

    def __init__(self, at: float, entries: tuple[list[float], ...], cost: Cost, slot: bool) -> None:
        self.at = at
        self.entries = entries
        self.cost = cost
        self.slot = slot


class LimitState:
    """A limit's rates, concurrency slots and FIFO queue; pure logic on an injected ``now``."""

    __slots__ = ("spec", "logs", "capacity", "holders", "queue", "mutex", "gate")

    def __init__(self, spec: LimitSpec, resolution: float | None = None) -> None:
        self.spec = spec
        self.logs = tuple(
            SlidingLog(rate.limit, rate.period, dimension, None if resolution is None else resolution)
            for rate, dimension in spec.windows
        )
        self.capacity = spec.concurrency
        self.holders = 0
        self.queue: deque[Waiter] = deque()
        self.mutex = threading.Lock()  # used by the store; the logic itself is single-threaded
        self.gate: ProviderGate | None = None  # made when the provider first says something

    def attempt(self, now: float, cost: Cost, waiter: Waiter | None) -> Admission | float:
        """Admit ``cost`` now, or say how long to wait before trying again.

        A ``waiter`` that cannot be admitted joins the queue; only the head of the queue
        is ever admitted. ``None`` tries without queueing. The wait is ``INF`` when only
        a release or the head's admission can help (a full concurrency limit, or not
        the head); the caller is woken then.
        """
        queue = self.queue
        if queue and queue[0] is not waiter:
            if waiter is not None and not waiter.queued:
                waiter.queued = True
                queue.append(waiter)
            return INF
        delay = 0.0
        gate = self.gate
        if self.capacity is not None and self.holders >= self.capacity:
            delay = INF
        else:
            for log in self.logs:
                entries, period = log.entries, log.period
                while entries and entries[0][0] + period <= now:  # log.expire(now), inlined
                    log.total -= int(entries.popleft()[1])
                charged = cost[log.dimension]
                if log.total + charged > log.limit:
                    wait = log.wait(now, charged)
                    if wait > delay:
                        delay = wait
            if gate is not None:
                wait = gate.wait(now, cost)
                if wait > delay:
                    delay = wait
        if delay > 0.0:
            if waiter is not None and not waiter.queued:
                waiter.queued = True
                queue.append(waiter)
            return delay
        if waiter is not None and waiter.queued:
            queue.popleft()
            waiter.queued = False
        slot = self.capacity is not None
        if slot:
            self.holders += 1
        if gate is not None:
            gate.spend(now, cost)
        return Admission(now, tuple(log.record(now, cost[log.dimension]) for log in self.logs), cost, slot)

    def head(self) -> Waiter | None:
        """The waiter to wake after a change: the only one that may be admitted next."""
        return self.queue[0] if self.queue else None

    def abandon(self, waiter: Waiter) -> None:
        """A waiter gives up (timeout, cancellation); the caller wakes the new head."""
        if waiter.queued:
            waiter.queued = False
            self.queue.remove(waiter)

    def release(self, admission: Admission) -> None:
        """Free the admission's concurrency slot (once)."""
        if admission.slot:
            admission.slot = False
            self.holders -= 1

    def report(self, admission: Admission, actual: Cost, now: float) -> None:
        """The admission really cost ``actual``: correct the weighted logs it still counts in."""
        charged, admission.cost = admission.cost, actual
        for log, entry in zip(self.logs, admission.entries):
            d = log.dimension
            if d != REQUESTS and actual[d] != charged[d]:
                log.adjust(entry, actual[d] - charged[d], now)

    def charge(self, now: float, cost: Cost) -> None:
        """Log ``cost`` spent at ``now`` in the weighted logs, admitted or not."""
        for log in self.logs:
            if log.dimension != REQUESTS and cost[log.dimension]:
                log.expire(now)
                log.record(now, cost[log.dimension])

    def backoff(self, now: float, seconds: float) -> None:
        """Admit nothing before ``now + seconds`` (a longer backoff in force stays)."""
        gate = self.gate = self.gate or ProviderGate()
        gate.until = max(gate.until, now + seconds)

    def observe(self, now: float, report: ProviderReport) -> None:
        """Apply the provider's word: caps until its resets, ``retry_after`` as a backoff."""
        gate = self.gate = self.gate or ProviderGate()
        gate.observe(now, report)

    def usage(self, now: float, wall: float | None = None) -> LimitUsage:
        """A snapshot at ``now``; ``wall`` is the wall-clock time of ``now`` (for the provider's times)."""
        windows = []
        for log, (rate, dimension) in zip(self.logs, self.spec.windows):
            log.expire(now)
            windows.append(WindowUsage(DIMENSIONS[dimension], rate, log.total))
        backoff, words = 0.0, []
        gate = self.gate
        if gate is not None:
            backoff = max(gate.until - now, 0.0)
            wall = time.time() if wall is None else wall
            for dimension, (limit, remaining, reset, at) in sorted(gate.words.items()):
                reset_at = None if reset is None else wall + reset - now
                words.append(ProviderWord(DIMENSIONS[dimension], limit, remaining, reset_at, wall + at - now))
        return LimitUsage(self.spec.name, tuple(windows), self.holders, len(self.queue), backoff, tuple(words))


# -- the store: waiting with threads and event loops -------------------------------------


class _SyncWaiter(Waiter):
    __slots__ = ("event",)

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def arm(self) -> None:
        self.event.clear()

    def wake(self) -> bool:
        self.event.set()
        return True

    def sleep(self, seconds: float) -> None:
        """Block the thread until woken or ``seconds`` (``INF``: until woken) pass."""
        self.event.wait(None if seconds == INF else seconds)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AsyncWaiter(Waiter):
    __slots__ = ("loop", "future")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] | None = None

    def arm(self) -> None:
        self.future = self.loop.create_future()

    async def sleep(self, seconds: float) -> None:
        """Wait, without blocking the loop, until woken or ``seconds`` (``INF``: until woken) pass."""
        future = self.future
        assert future is not None
        timer = None if seconds == INF else self.loop.call_later(seconds, _resolve, future)
        try:
            await future
        finally:
            if timer is not None:
                timer.cancel()

    def wake(self) -> bool:
        future = self.future
        if future is None or future.done():
            return True
        try:
            self.loop.call_soon_threadsafe(_resolve, future)
        except RuntimeError:  # its loop is closed: nobody will come for this place
            return False
        return True


def _wake_head(state: LimitState) -> None:
    """Under the state's mutex: wake the head, dropping waiters whose loop is gone."""
    while state.queue:
        head = state.queue[0]
        if head.wake():  # type: ignore[attr-defined]
            return
        state.abandon(head)


def _timeout_error(state: LimitState, cost: Cost, timeout: float | None, now: float) -> CoordinationTimeoutError:
    spec = state.spec
    return CoordinationTimeoutError(
        f"limit {spec.name!r} ({spec.describe()}) did not admit cost {cost.describe()} within {timeout}s; "
        f"now {state.usage(now).describe()}",
        resource=spec.name,
        timeout=timeout,
    )


class _Wait:
    """One wait for admission, the same for threads and tasks: ``step`` tries again under
    the state's mutex and says how long to wait; the drivers only do the waiting.

    The waiter is armed (its event cleared, or a new future made) inside the mutexed
    step, and wake-ups happen only under that mutex, so none is lost between a step
    and the wait that follows it.
    """

    __slots__ = ("state", "cost", "timeout", "deadline", "clock", "waiter")

    def __init__(self, state: LimitState, cost: Cost, timeout: float | None, clock: Callable[[], float], waiter: Any) -> None:
        self.state = state
        self.cost = cost
        self.timeout = timeout
        self.deadline = None if timeout is None else clock() + timeout
        self.clock = clock
        self.waiter = waiter

    def step(self) -> Admission | float:
        """The admission, or the seconds to wait (``INF``: until woken); a timeout past the deadline."""
        state, waiter = self.state, self.waiter
        with state.mutex:
            now = self.clock()
            got = state.attempt(now, self.cost, waiter)
            if isinstance(got, Admission):
                _wake_head(state)
                return got
            deadline = self.deadline
            if deadline is not None:
                if now >= deadline:
                    state.abandon(waiter)
                    _wake_head(state)
                    raise _timeout_error(state, self.cost, self.timeout, now)
                got = min(got, deadline - now)
            waiter.arm()
            return got

    def leave(self) -> None:
        """Interrupted (or timed out): leave the queue and let the next one in."""
        state = self.state
        with state.mutex:
            if self.waiter.queued:
                state.abandon(self.waiter)
                _wake_head(state)

    def __enter__(self) -> _Wait:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None:
            self.leave()


class MemoryLimitStore(LimitStore):
    """The limits of one process; ``clock`` is injectable for tests (default monotonic)."""

    nonblocking = True

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, LimitState] = {}
        self._lock = threading.Lock()

    def _state(self, spec: LimitSpec) -> LimitState:
        state = self._states.get(spec.name)
        if state is None or state.spec is not spec:
            with self._lock:
                state = self._states.get(spec.name)
                if state is None or state.spec != spec:
                    state = self._states[spec.name] = LimitState(spec)
        return state

    def acquire(self, spec: LimitSpec, cost: Cost, timeout: float | None) -> Admission:
        plan = self._begin(spec, cost, timeout, _SyncWaiter)
        if isinstance(plan, Admission):
            return plan
        with plan:
            while not isinstance(got := plan.step(), Admission):
                plan.waiter.sleep(got)
        return got

    async def acquire_async(self, spec: LimitSpec, cost: Cost, timeout: float | None) -> Admission:
        plan = self._begin(spec, cost, timeout, _AsyncWaiter)
        if isinstance(plan, Admission):
            return plan
        with plan:
            while not isinstance(got := plan.step(), Admission):
                await plan.waiter.sleep(got)
        return got

    def _begin(self, spec: LimitSpec, cost: Cost, timeout: float | None, waiter: Callable[[], Any]) -> Admission | _Wait:
        """The admission if it fits at once, else the wait (with a new ``waiter()``) the drivers run."""
        state = self._state(spec)
        admitted = self._first_try(state, cost, timeout)
        return admitted if admitted is not None else _Wait(state, cost, timeout, self._clock, waiter())

    def admit_now(self, spec: LimitSpec, cost: Cost) -> Admission | None:
        return self._first_try(self._state(spec), cost, None)

    def _first_try(self, state: LimitState, cost: Cost, timeout: float | None) -> Admission | None:
        """An admission if one fits right now (without queueing); with ``timeout == 0``,
        not fitting is a timeout at once."""
        with state.mutex:
            now = self._clock()
            got = state.attempt(now, cost, None)
            if isinstance(got, Admission):
                return got
            if timeout == 0:
                raise _timeout_error(state, cost, timeout, now)
        return None

    def release(self, spec: LimitSpec, grant: Any) -> None:
        if not grant.slot:
            return
        state = self._state(spec)
        with state.mutex:
            state.release(grant)
            _wake_head(state)

    def report(self, spec: LimitSpec, grant: Any, actual: Cost) -> None:
        state = self._state(spec)
        with state.mutex:
            state.report(grant, actual, self._clock())
            _wake_head(state)

    def charge(self, spec: LimitSpec, cost: Cost) -> None:
        state = self._state(spec)
        with state.mutex:
            state.charge(self._clock(), cost)

    def backoff(self, spec: LimitSpec, seconds: float) -> None:
        state = self._state(spec)
        with state.mutex:
            state.backoff(self._clock(), seconds)

    def observe(self, spec: LimitSpec, report: ProviderReport) -> None:
        state = self._state(spec)
        with state.mutex:
            state.observe(self._clock(), report)
            _wake_head(state)  # a cap may have been lifted

    def specs(self) -> tuple[LimitSpec, ...]:
        with self._lock:
            return tuple(state.spec for state in self._states.values())

    def usage(self, spec: LimitSpec) -> LimitUsage:
        state = self._state(spec)
        with state.mutex:
            return state.usage(self._clock())
