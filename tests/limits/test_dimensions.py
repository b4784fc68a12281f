"""Cost in named dimensions: requests, tokens, input_tokens, output_tokens, concurrency.

Every dimension keeps the sliding guarantee, all are admitted together or not at all,
in arrival order; checked in virtual time on the pure algorithm and under real
contention (threads and tasks) on every backend.
"""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from agentdiff_coordination import CoordinationTimeoutError, limit
from agentdiff_coordination.core.backends.memory.limits import Admission, LimitState
from agentdiff_coordination.core.limit_values import Cost, LimitSpec
from agentdiff_coordination.core.rates import parse_rate

from .support import max_window, run_threads, simulate, windows_over

# -- declaring and admitting ---------------------------------------------------------------


def test_every_dimension_is_declared_by_keyword_and_described() -> None:
    api = limit("claude", requests="50/min", input_tokens="40000/min", output_tokens=["8000/min", "100/s"], concurrency=4)
    assert repr(api) == (
        "limit('claude', requests='50/min', input_tokens='40000/min', output_tokens=['8000/min', '100/s'], concurrency=4)"
    )
    assert [(str(w.rate), w.dimension) for w in api.usage().windows] == [
        ("50/min", "requests"), ("40000/min", "input_tokens"), ("8000/min", "output_tokens"), ("100/s", "output_tokens")
    ]


def test_rate_is_the_older_name_of_tokens() -> None:
    api = limit("openai", tokens="90000/min")
    assert limit("openai", rate="90000/min") is api
    assert repr(api) == "limit('openai', tokens='90000/min')"
    with pytest.raises(TypeError, match="give tokens= or rate=, not both"):
        limit("other", rate="1/s", tokens="1/s")


def test_admissions_charge_each_dimension_in_every_form_of_use(backend: str) -> None:
    api = limit("claude", requests="100/min", tokens="10000/min", input_tokens="8000/min", output_tokens="2000/min")

    with api(input_tokens=100, output_tokens=20) as permit:
        assert permit.charged == Cost(120, 1, 100, 20)
    with api(tokens=50):
        pass

    @api(input_tokens=10, output_tokens=5)
    def ask() -> str:
        return "sync"

    @api(input_tokens=7)
    async def ask_async() -> str:
        return "async"

    async def by_hand() -> None:
        async with api(output_tokens=3):
            pass
        permit = await api.acquire_async(input_tokens=1, output_tokens=1)
        await permit.release_async()

    assert ask() == "sync"
    assert asyncio.run(ask_async()) == "async"
    asyncio.run(by_hand())
    api.acquire(tokens=4, input_tokens=4).release()
    used = {w.dimension: w.used for w in api.usage().windows}
    assert used == {
        "requests": 7,
        "tokens": 120 + 50 + 15 + 7 + 3 + 2 + 4,
        "input_tokens": 100 + 10 + 7 + 1 + 4,
        "output_tokens": 20 + 5 + 3 + 1,
    }


def test_a_cost_larger_than_a_dimension_allows_is_an_error_naming_it() -> None:
    api = limit("claude", input_tokens="40000/min", output_tokens="8000/min")
    with pytest.raises(ValueError, match=r"cost 9000 is larger than limit 'claude' allows in any window of its output_tokens \(output_tokens='8000/min'\)"):
        api(input_tokens=10, output_tokens=9000)
    with pytest.raises(ValueError, match="input_tokens"):
        api.acquire(input_tokens=40001)
    with pytest.raises(TypeError, match="give cost= or tokens="):
        api(cost=3, tokens=3)
    with pytest.raises(ValueError, match="input_tokens of limit 'claude' must be a whole number >= 0"):
        api(input_tokens=-1)


def test_reports_and_charges_take_the_same_keywords(backend: str) -> None:
    api = limit("claude", tokens="10000/min", input_tokens="8000/min", output_tokens="2000/min")
    with api(input_tokens=1000, output_tokens=500) as permit:
        permit.report(input_tokens=800, output_tokens=120)
        assert permit.charged == Cost(920, 1, 800, 120)
    with api(input_tokens=10, output_tokens=10):
        api.report(output_tokens=30)  # the innermost admission: tokens become 10 + 30
    api.charge(input_tokens=5, output_tokens=6)
    api.charge(7)  # tokens only, as before
    used = {w.dimension: w.used for w in api.usage().windows}
    assert used == {"tokens": 920 + 40 + 11 + 7, "input_tokens": 800 + 10 + 5, "output_tokens": 120 + 30 + 6}

    async def main() -> None:
        async with api(input_tokens=100) as permit:
            await permit.report_async(input_tokens=40)

    asyncio.run(main())
    assert {w.dimension: w.used for w in api.usage().windows}["input_tokens"] == 815 + 40


# -- the guarantee in virtual time -----------------------------------------------------------


def _spec() -> LimitSpec:
    return LimitSpec(
        "claude", (parse_rate("300/s"),), (parse_rate("20/s"),), None, (parse_rate("200/s"),), (parse_rate("60/s"),)
    )


@pytest.mark.parametrize("seed", range(4))
def test_every_dimension_holds_in_every_window_and_all_are_admitted_together(seed: int) -> None:
    rng = random.Random(seed)
    state = LimitState(_spec(), resolution=0.0)
    arrivals = []
    for _ in range(1500):
        i, o = rng.choice([1, 10, 50, 150]), rng.choice([0, 5, 30, 60])
        arrivals.append((rng.uniform(0, 30), Cost(i + o, 1, i, o)))
    admitted = simulate(state, arrivals)
    assert len(admitted) == len(arrivals)
    for index, limit_ in ((0, 300), (1, 20), (2, 200), (3, 60)):
        assert windows_over([(t, c[index]) for t, c, _ in admitted], 1.0, limit_) == 0
    assert [i for _, _, i in admitted] == list(range(len(arrivals)))  # FIFO whatever the costs


def test_a_full_dimension_holds_back_the_others() -> None:
    state = LimitState(_spec(), resolution=0.0)
    assert isinstance(state.attempt(0.0, Cost(60, 1, 0, 60), None), Admission)
    assert state.attempt(0.1, Cost(1, 1, 0, 1), None) == pytest.approx(0.9)  # output_tokens is full
    tokens, requests, inputs, outputs = (log.total for log in state.logs)
    assert (tokens, requests, inputs, outputs) == (60, 1, 0, 60)  # nothing charged for the refusal


# -- real contention ----------------------------------------------------------------------------


def test_threads_and_tasks_hold_every_dimension_under_contention(backend: str) -> None:
    api = limit("claude", requests="30/s", input_tokens="600/s", output_tokens="150/s")
    admitted: list[tuple[float, Cost]] = []
    mutex = threading.Lock()
    rng = random.Random(5)
    costs = [(rng.choice([5, 20, 60]), rng.choice([0, 10, 25])) for _ in range(60)]

    def client(k: int) -> None:
        for i, o in costs[k::6]:
            with api(input_tokens=i, output_tokens=o) as permit:
                with mutex:
                    admitted.append((permit.admitted_at, permit.charged))

    async def tasks() -> None:
        async def one(k: int) -> None:
            for i, o in costs[k::6]:
                async with api(input_tokens=i, output_tokens=o) as permit:
                    with mutex:
                        admitted.append((permit.admitted_at, permit.charged))

        await asyncio.gather(*(one(k) for k in range(3, 6)))

    run_threads([lambda k=k: client(k) for k in range(3)] + [lambda: asyncio.run(tasks())])
    assert len(admitted) == 60
    assert windows_over([(t, 1) for t, _ in admitted], 1.0, 30) == 0
    assert max_window([(t, c.input_tokens) for t, c in admitted], 1.0) <= 600
    assert max_window([(t, c.output_tokens) for t, c in admitted], 1.0) <= 150
    assert api.usage().waiting == 0


def test_a_try_that_does_not_fit_one_dimension_times_out_naming_the_cost(backend: str) -> None:
    api = limit("claude", input_tokens="100/min", output_tokens="100/min")
    api.acquire(input_tokens=10, output_tokens=95)
    with pytest.raises(CoordinationTimeoutError, match=r"did not admit cost 20 \(input_tokens=10, output_tokens=10\)"):
        api.acquire(input_tokens=10, output_tokens=10, timeout=0)
