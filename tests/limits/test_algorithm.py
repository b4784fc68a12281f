"""The admission algorithm in virtual time: the sliding guarantee, utilisation, FIFO, memory.

``LimitState`` is pure: time is passed in, so these tests drive it through thousands
of admissions in microseconds and check every window exactly.
"""

from __future__ import annotations

import math
import random

import pytest

from agentdiff_coordination.core.limit_values import Cost
from agentdiff_coordination.core.limit_values import SLICES
from agentdiff_coordination.core.backends.memory.limits import Admission, LimitState, SlidingLog, Waiter
from agentdiff_coordination.core.limits import LimitSpec, parse_rate

from .support import max_window, simulate, windows_over


def spec(rate: str | None = None, requests: str | None = None, concurrency: int | None = None) -> LimitSpec:
    return LimitSpec(
        "algo",
        (parse_rate(rate),) if rate else (),
        (parse_rate(requests),) if requests else (),
        concurrency,
    )


@pytest.mark.parametrize("resolution", [0.0, None], ids=["exact", "sliced"])
@pytest.mark.parametrize("seed", range(5))
def test_admitted_cost_never_exceeds_the_rate_in_any_window(seed: int, resolution: float | None) -> None:
    rng = random.Random(seed)
    state = LimitState(spec("100/s"), resolution=resolution)
    arrivals = [(rng.uniform(0, 20), rng.choice([1, 1, 1, 5, 20, 60, 100])) for _ in range(3000)]
    admitted = simulate(state, arrivals)
    assert len(admitted) == len(arrivals)
    assert windows_over([(t, c) for t, c, _ in admitted], 1.0, 100) == 0
    assert max_window([(t, c) for t, c, _ in admitted], 1.0) <= 100


def test_a_burst_of_the_full_rate_is_admitted_at_once_and_then_no_more() -> None:
    state = LimitState(spec("50/min"))
    admitted = simulate(state, [(0.0, 1)] * 51)
    assert [t for t, _, _ in admitted[:50]] == [0.0] * 50
    assert admitted[50][0] >= 60.0  # the 51st waits for the first to leave the window


def test_saturated_demand_uses_the_rate_in_full() -> None:
    state = LimitState(spec("100/s"))
    # far more demand than the rate: 5000 requests queued at once
    admitted = simulate(state, [(0.0, 1)] * 5000, until=10.0)
    in_ten_periods = sum(c for t, c, _ in admitted if t < 10.0)
    assert in_ten_periods >= 0.99 * 100 * 10
    assert max_window([(t, c) for t, c, _ in admitted], 1.0) <= 100


def test_saturated_demand_with_mixed_costs_uses_at_least_95_percent() -> None:
    rng = random.Random(7)
    state = LimitState(spec("90000/min"))
    # LLM-like token costs: 1 to 4500 tokens (5% of the rate) per request
    arrivals = [(0.0, rng.randint(1, 4500)) for _ in range(2000)]
    admitted = simulate(state, arrivals, until=600.0)
    used = sum(c for t, c, _ in admitted if t < 600.0)
    assert used >= 0.95 * 90000 * 10
    assert max_window([(t, c) for t, c, _ in admitted], 60.0) <= 90000


@pytest.mark.parametrize("largest", [10, 200, 900])
def test_a_saturated_period_loses_less_than_the_largest_cost(largest: int) -> None:
    # strict FIFO: while the head waits, the window holds more than limit - head's cost
    rng = random.Random(largest)
    state = LimitState(spec("1000/s"))
    arrivals = [(0.0, rng.choice([1, largest // 2 or 1, largest])) for _ in range(4000)]
    admitted = simulate(state, arrivals, until=20.0)
    for period in range(20):
        used = sum(c for t, c, _ in admitted if period <= t < period + 1)
        assert used > 1000 - largest


def test_waiters_are_admitted_in_arrival_order_whatever_their_cost() -> None:
    rng = random.Random(3)
    state = LimitState(spec("100/s"))
    arrivals = [(i * 0.001, rng.choice([1, 2, 99, 100])) for i in range(2000)]
    admitted = simulate(state, arrivals)
    assert [index for _, _, index in admitted] == list(range(2000))


def test_a_large_cost_is_not_starved_by_a_stream_of_small_ones() -> None:
    state = LimitState(spec("100/s"))
    small_stream = [(i * 0.002, 1) for i in range(5000)]  # 500/s of small demand for 10 s
    admitted = simulate(state, small_stream + [(0.5, 100)])
    big_at, _, big_index = next(a for a in admitted if a[1] == 100)
    assert big_at < 10.0  # admitted while the small ones still pour in
    # every small request that asked after it was admitted after it
    assert all(t >= big_at for t, c, index in admitted if c == 1 and index > big_index)
    assert all(t <= big_at for t, c, index in admitted if c == 1 and index < big_index)


def test_the_wait_given_is_exact() -> None:
    state = LimitState(spec("10/s"), resolution=0.0)
    for i in range(10):
        assert isinstance(state.attempt(i * 0.05, Cost(1), None), Admission)
    waiter = Waiter()
    delay = state.attempt(0.6, Cost(3), waiter)
    assert delay == pytest.approx(0.5)  # the third admission (at 0.10) leaves the window at 1.10
    assert not isinstance(state.attempt(0.6 + delay - 1e-6, Cost(3), waiter), Admission)
    assert isinstance(state.attempt(0.6 + delay, Cost(3), waiter), Admission)


def test_several_rates_are_admitted_together_or_not_at_all() -> None:
    state = LimitState(spec(rate="1000/min", requests="3/min"))
    for _ in range(3):
        assert isinstance(state.attempt(0.0, Cost(10), None), Admission)
    tokens, requests = state.logs
    assert (tokens.total, requests.total) == (30, 3)
    assert state.attempt(1.0, Cost(10), None) == pytest.approx(59.0)  # the requests rate is full
    assert (tokens.total, requests.total) == (30, 3)  # nothing was charged for the refusal
    assert isinstance(state.attempt(60.0, Cost(10), None), Admission)


def test_the_log_of_a_busy_rate_is_bounded_by_its_slices() -> None:
    state = LimitState(spec("100000/s"))
    for i in range(200_000):
        state.attempt(i * 1e-5, Cost(1), None)
    (log,) = state.logs
    assert len(log.entries) <= SLICES + 1
    assert log.total <= 100_000


def test_a_sliced_entry_is_never_stamped_before_its_admission() -> None:
    log = SlidingLog(10, 1.0)
    rng = random.Random(1)
    for now in sorted(rng.uniform(0, 100) for _ in range(2000)):
        log.expire(now)
        if log.wait(now, 1) == 0:
            entry = log.record(now, 1)
            assert entry[0] >= now
            assert entry[0] - now < log.resolution + 1e-9


def test_concurrency_never_exceeds_its_slots_and_fills_them() -> None:
    state = LimitState(spec(concurrency=3))
    held = [state.attempt(0.0, Cost(1), None) for _ in range(3)]
    assert all(isinstance(h, Admission) for h in held)
    waiter = Waiter()
    assert state.attempt(0.0, Cost(1), waiter) == math.inf
    assert state.holders == 3 and state.head() is waiter
    first = held[0]
    assert isinstance(first, Admission)
    state.release(first)
    state.release(first)  # twice frees one slot only
    assert state.holders == 2
    assert isinstance(state.attempt(0.0, Cost(1), waiter), Admission)
    assert state.holders == 3 and state.head() is None


def test_reporting_less_lets_the_next_waiter_in_sooner() -> None:
    state = LimitState(spec("100/min"))
    got = state.attempt(0.0, Cost(80), None)
    assert isinstance(got, Admission)
    waiter = Waiter()
    assert state.attempt(1.0, Cost(50), waiter) == pytest.approx(59.0, abs=60 / SLICES)
    state.report(got, Cost(30), 2.0)
    assert isinstance(state.attempt(2.0, Cost(50), waiter), Admission)


def test_reporting_more_makes_later_admissions_wait_for_it() -> None:
    state = LimitState(spec("100/min"))
    got = state.attempt(0.0, Cost(10), None)
    assert isinstance(got, Admission)
    state.report(got, Cost(95), 1.0)
    assert state.attempt(1.0, Cost(10), None) > 0
    state.report(got, Cost(95), 1.0)  # the same figure again changes nothing
    assert state.logs[0].total == 95


def test_a_report_after_the_window_moved_on_changes_nothing() -> None:
    state = LimitState(spec("100/s"))
    got = state.attempt(0.0, Cost(50), None)
    assert isinstance(got, Admission)
    state.report(got, Cost(0), 5.0)
    assert state.logs[0].total == 0
    assert isinstance(state.attempt(5.0, Cost(100), None), Admission)


def test_an_abandoning_head_lets_the_next_waiter_be_head() -> None:
    state = LimitState(spec("1/s"))
    assert isinstance(state.attempt(0.0, Cost(1), None), Admission)
    first, second = Waiter(), Waiter()
    assert state.attempt(0.1, Cost(1), first) > 0
    assert state.attempt(0.1, Cost(1), second) == math.inf  # behind the head
    state.abandon(first)
    assert state.head() is second
    assert isinstance(state.attempt(1.0, Cost(1), second), Admission)


def test_a_try_without_a_waiter_never_jumps_the_queue() -> None:
    state = LimitState(spec("10/s"))
    for _ in range(10):
        state.attempt(0.0, Cost(1), None)
    head = Waiter()
    assert state.attempt(0.5, Cost(5), head) > 0
    assert state.attempt(5.0, Cost(1), None) == math.inf  # it would fit, but the head is first
    assert isinstance(state.attempt(5.0, Cost(5), head), Admission)
