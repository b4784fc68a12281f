"""The ``limit`` API: declaring, looking up, the forms of use, and clear errors for bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentdiff_coordination import configure, limit
from agentdiff_coordination.core.backends.base import Backend
from agentdiff_coordination.core.limits import Rate, parse_rate


@pytest.mark.parametrize(
    ("text", "amount", "seconds"),
    [
        ("20/s", 20, 1),
        ("500/min", 500, 60),
        ("90000/min", 90000, 60),
        ("10/hour", 10, 3600),
        ("1000/day", 1000, 86400),
        ("100/10s", 100, 10),
        ("300/5min", 300, 300),
        (" 7 / second ", 7, 1),
        ("3/Minutes", 3, 60),
    ],
)
def test_rates_are_read_from_strings(text: str, amount: int, seconds: float) -> None:
    rate = parse_rate(text)
    assert (rate.limit, rate.period) == (amount, seconds)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ten/min", "'ten' is not a whole number"),
        ("5/fortnight", "unknown unit 'fortnight'"),
        ("0/s", "at least 1"),
        ("-3/s", "'-3' is not a whole number"),
        ("1.5/s", "'1.5' is not a whole number"),
        ("5", "malformed rate '5'"),
        ("", "malformed rate ''"),
        ("5/0s", "number of units must be at least 1"),
        ("5/m", "unknown unit 'm'"),
    ],
)
def test_a_malformed_rate_is_a_value_error_naming_it_and_the_accepted_forms(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="malformed rate") as info:
        limit("api", rate=text)
    assert why in str(info.value)
    assert repr(text) in str(info.value)
    assert "'500/min'" in str(info.value)  # the accepted forms are listed


def test_a_rate_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="rate of limit .api. must be a rate string such as .500/min."):
        limit("api", rate=500)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1])
def test_concurrency_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="concurrency of limit 'api' must be at least 1"):
        limit("api", concurrency=bad)


def test_concurrency_must_be_a_whole_number() -> None:
    with pytest.raises(TypeError, match="concurrency of limit 'api'"):
        limit("api", concurrency=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", " api", 3])
def test_a_bad_name_is_a_clear_error(name: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="limit name"):
        limit(name, rate="1/s")


def test_a_cost_larger_than_the_limit_is_a_clear_error() -> None:
    tokens = limit("tokens", rate="90000/min", requests="500/min")
    with pytest.raises(ValueError, match=r"cost 90001 is larger than limit 'tokens' allows.*90000/min"):
        tokens.acquire(90001)
    with pytest.raises(ValueError, match="larger than limit 'tokens'"):
        tokens(cost=100_000)
    with pytest.raises(ValueError, match="at least 1"):
        tokens.acquire(0)
    with pytest.raises(TypeError, match="whole number"):
        tokens.acquire(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        tokens.acquire(1, timeout=-1)


def test_a_name_alone_looks_up_the_declared_limit() -> None:
    declared = limit("api", rate="500/min")
    assert limit("api") is declared
    assert limit("api", rate="500/min") is declared  # the same declaration again
    assert limit("api", rate="500/60s") is declared  # the same rate, written otherwise


def test_an_undeclared_name_is_a_lookup_error_saying_how_to_declare() -> None:
    with pytest.raises(LookupError, match=r"limit 'ghost' is not declared: declare it once with limit\('ghost'"):
        limit("ghost")


def test_declaring_a_name_again_differently_is_an_error() -> None:
    limit("api", rate="500/min")
    with pytest.raises(ValueError, match=r"limit 'api' is already declared as rate='500/min'.*rate='600/min'"):
        limit("api", rate="600/min")
    with pytest.raises(ValueError, match="already declared"):
        limit("api", rate="500/min", concurrency=2)


def test_a_limit_works_as_with_async_with_and_decorator(backend: str) -> None:
    api = limit("api", requests="100/min", rate="1000/min")

    with api as permit:
        assert permit.cost == 1 and not permit.released
    assert permit.released

    with api(cost=40, timeout=5) as permit:
        assert permit.cost == 40

    @api
    def plain() -> str:
        return "plain"

    @api(cost=50)
    def weighted() -> str:
        return "weighted"

    @api(cost=9)
    async def asynchronous() -> str:
        return "async"

    async def with_async() -> int:
        async with api(cost=100) as p:
            return p.cost

    assert plain() == "plain" and weighted() == "weighted"
    assert asyncio.run(asynchronous()) == "async"
    assert asyncio.run(with_async()) == 100
    used = {weighted: n for _, weighted, n in api.usage().used}
    assert used == {True: 1 + 40 + 1 + 50 + 9 + 100, False: 6}


def test_permits_acquired_by_hand_report_and_release_once(backend: str) -> None:
    api = limit("api", rate="100/min", concurrency=1)
    permit = api.acquire(30)
    assert api.usage().holders == 1
    permit.report(10)
    assert api.usage().used[0][2] == 10
    permit.release()
    permit.release()  # twice is harmless
    assert api.usage().holders == 0
    with pytest.raises(ValueError, match=">= 0"):
        permit.report(-1)


def test_report_without_a_held_permit_is_a_clear_error(backend: str) -> None:
    api = limit("api", rate="100/min")
    with pytest.raises(RuntimeError, match="no permit of limit 'api' is held"):
        api.report(5)


def test_report_inside_with_corrects_the_innermost_admission(backend: str) -> None:
    api = limit("api", rate="100/min")
    with api(cost=20):
        with api(cost=30):
            api.report(5)
        api.report(1)
    assert api.usage().used[0][2] == 6


def test_charge_counts_usage_learned_after_the_fact(backend: str) -> None:
    api = limit("api", rate="100/min")
    api.charge(70)
    with pytest.raises(Exception, match="did not admit cost 40"):
        api.acquire(40, timeout=0)
    with pytest.raises(ValueError, match="whole number >= 0"):
        api.charge(-5)


def test_usage_and_repr_describe_the_limit(backend: str) -> None:
    api = limit("api", rate="90000/min", requests="500/min", concurrency=8)
    assert repr(api) == "limit('api', rate='90000/min', requests='500/min', concurrency=8)"
    with api(cost=1200):
        assert api.usage().describe() == "1200 of 90000/min used, 1 of 500/min used (requests), 1 holding, 0 waiting"


def test_several_rates_on_one_name_are_all_enforced(backend: str) -> None:
    api = limit("api", requests=["2/s", "3/min"])
    api.acquire()
    api.acquire()
    with pytest.raises(Exception, match="did not admit"):
        api.acquire(timeout=0)
    assert {str(rate) for rate, _, _ in api.usage().used} == {"2/s", "3/min"}


def test_a_backend_without_limits_says_so() -> None:
    class Bare(Backend):
        url = "bare://"

        def acquire_lock(self, name: str, holder: str | None, timeout: float | None) -> Any: ...
        async def acquire_lock_async(self, name: str, holder: str | None, timeout: float | None) -> Any: ...
        def release_lock(self, grant: Any) -> None: ...
        def publish(self, event: Any) -> None: ...

    configure(Bare())
    with pytest.raises(NotImplementedError, match=r"Bare \(bare://\) keeps no limits"):
        limit("api", rate="1/s").acquire()


def test_rate_objects_compare_by_amount_and_period() -> None:
    assert parse_rate("60/min") == Rate(60, 60.0)
    assert parse_rate("60/min") != parse_rate("1/s")
    assert str(parse_rate("100/10s")) == "100/10s"


def test_async_code_reports_without_blocking_its_loop(backend: str) -> None:
    api = limit("api", rate="100/min")

    async def main() -> None:
        async with api(cost=60) as permit:
            await permit.report_async(15)

    asyncio.run(main())
    assert api.usage().used[0][2] == 15
