"""Helpers for the limit tests: a virtual-time driver and the sliding-window check."""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agentdiff_coordination.core.limit_values import Cost
from agentdiff_coordination.core.backends.memory.limits import Admission, LimitState, Waiter


def max_window(admissions: Iterable[tuple[float, int]], period: float) -> float:
    """The largest cost admitted inside any half-open window ``[s, s + period)``.

    The maximum is reached by a window that starts at an admission, so one pass
    with two pointers over the admissions in time order checks every window.
    """
    items = sorted(admissions)
    best = 0.0
    total = 0.0
    j = 0
    for i, (start, _) in enumerate(items):
        while j < len(items) and items[j][0] < start + period:
            total += items[j][1]
            j += 1
        best = max(best, total)
        total -= items[i][1]
    return best


def windows_over(admissions: Sequence[tuple[float, int]], period: float, limit: float) -> int:
    """How many windows starting at an admission hold more than ``limit``."""
    items = sorted(admissions)
    over = 0
    total = 0.0
    j = 0
    for i, (start, _) in enumerate(items):
        while j < len(items) and items[j][0] < start + period:
            total += items[j][1]
            j += 1
        if total > limit:
            over += 1
        total -= items[i][1]
    return over


def simulate(
    state: LimitState, arrivals: Sequence[tuple[float, Any]], until: float = math.inf
) -> list[tuple[float, Any, int]]:
    """Drive ``state`` in virtual time: each arrival ``(time, cost)`` waits as a real
    waiter would (retrying at the delay the state gives); a cost is tokens or a ``Cost``.
    Returns the admissions as ``(time, cost, arrival index)`` in admission order."""
    pending = deque((t, c, i) for i, (t, c) in enumerate(sorted(arrivals, key=lambda a: a[0])))
    costs: dict[int, tuple[int, Any]] = {}
    admitted: list[tuple[float, Any, int]] = []
    now = 0.0
    while pending or state.queue:
        while pending and pending[0][0] <= now:
            _, cost, index = pending.popleft()
            waiter = Waiter()
            costs[id(waiter)] = (index, cost)
            got = state.attempt(now, cost if isinstance(cost, Cost) else Cost(cost), waiter)
            if isinstance(got, Admission):
                admitted.append((now, cost, index))
        delay = math.inf
        while state.queue:
            head = state.queue[0]
            index, cost = costs[id(head)]
            got = state.attempt(now, cost if isinstance(cost, Cost) else Cost(cost), head)
            if isinstance(got, Admission):
                admitted.append((now, cost, index))
                continue
            delay = got
            break
        nxt = min(pending[0][0] if pending else math.inf, now + delay)
        if nxt == math.inf or nxt > until:
            break
        now = nxt
    return admitted


# -- real threads ------------------------------------------------------------------------

#: how long a test waits for something that must happen before calling it a hang
HANG = 30.0


def run_threads(targets: Iterable[Callable[[], Any]], timeout: float = HANG) -> list[Any]:
    """Run each target on its own thread (an empty context each); their results.

    The first error is re-raised; a thread still running at ``timeout`` is a hang.
    """
    targets = list(targets)
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def runner(i: int, fn: Callable[[], Any]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:  # collected, re-raised in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=contextvars.Context().run, args=(runner, i, fn), daemon=True)
        for i, fn in enumerate(targets)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    alive = sum(t.is_alive() for t in threads)
    assert alive == 0, f"{alive} thread(s) still running after {timeout}s: a lost wake-up or a deadlock"
    return results


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = HANG) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


class Occupancy:
    """Counts the callers inside a section at once."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.inside = 0
        self.most = 0
        self.entries = 0

    def __enter__(self) -> Occupancy:
        with self._mutex:
            self.inside += 1
            self.entries += 1
            self.most = max(self.most, self.inside)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            self.inside -= 1
