"""What the provider says reaches the limit: ``backoff`` and ``observe_headers``, on every backend.

Times are the store's own clock (``Permit.admitted_at``): an admission made before the
backoff (or the headers) bounds from below when it was set, so "nothing before the
end" is checked exactly, without reading a wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from agentdiff_coordination import CoordinationTimeoutError, limit

from .support import run_threads, wait_until

BACKOFF = 0.4


def test_nothing_is_admitted_during_a_backoff_and_waiters_keep_their_order(backend: str) -> None:
    api = limit("api", requests="1000/s")
    before = api.acquire().admitted_at
    api.backoff(BACKOFF)
    with pytest.raises(CoordinationTimeoutError):
        api.acquire(timeout=0)
    order: list[tuple[float, int]] = []
    mutex = threading.Lock()

    def waiter(k: int) -> None:
        with api as permit:
            with mutex:
                order.append((permit.admitted_at, k))

    threads = []
    for k in range(4):  # they queue one after the other, in a known order
        t = threading.Thread(target=waiter, args=(k,), daemon=True)
        t.start()
        threads.append(t)
        wait_until(lambda: api.usage().waiting == k + 1 or len(order) > 0, f"waiter {k} to queue")
    for t in threads:
        t.join(30)
    assert len(order) == 4
    assert all(at >= before + BACKOFF for at, _ in order)
    assert [k for _, k in sorted(order)] == [0, 1, 2, 3]


def test_tasks_wait_out_a_backoff_without_blocking_the_loop(backend: str) -> None:
    api = limit("api", tokens="100000/min")

    async def main() -> list[float]:
        before = (await api.acquire_async()).admitted_at
        await api.backoff_async(BACKOFF)
        permits = await asyncio.gather(*(api.acquire_async(tokens=10) for _ in range(5)))
        return [before] + [p.admitted_at for p in permits]

    before, *after = asyncio.run(main())
    assert all(at >= before + BACKOFF for at in after)


def test_usage_shows_a_backoff_in_force(backend: str) -> None:
    api = limit("api", requests="10/s")
    assert api.usage().backoff == 0 and api.usage().backoff_until is None
    api.backoff(30)
    api.backoff(1)  # a shorter one does not cut the longer short
    usage = api.usage()
    assert 25 < usage.backoff <= 30
    assert usage.backoff_until is not None and usage.backoff_until > usage.taken_at
    assert "backing off for" in usage.describe() and "backing off for" in api.describe()


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), "3", True])
def test_a_bad_backoff_is_a_value_error(seconds: object) -> None:
    with pytest.raises(ValueError, match="backoff of limit 'api' must be a number of seconds >= 0"):
        limit("api", requests="1/s").backoff(seconds)  # type: ignore[arg-type]


def test_fewer_remaining_than_our_count_caps_admissions_until_the_reset(backend: str) -> None:
    api = limit("openai", requests="500/min", tokens="30000/min")
    before = api.acquire(tokens=1).admitted_at
    api.observe_headers({"x-ratelimit-remaining-tokens": "100", "x-ratelimit-reset-tokens": f"{BACKOFF}s"})
    first = api.acquire(tokens=60)
    with pytest.raises(CoordinationTimeoutError):
        api.acquire(tokens=60, timeout=0)  # 40 of the provider's 100 left
    api.acquire(tokens=40, timeout=0)  # exactly what it said remains
    later = api.acquire(tokens=60)  # waits for the provider's reset
    assert first.admitted_at < before + BACKOFF <= later.admitted_at
    word = next(w for w in api.usage().provider if w.dimension == "tokens")
    assert (word.limit, word.remaining) == (None, 100)


def test_more_remaining_than_our_count_changes_nothing(backend: str) -> None:
    api = limit("openai", tokens="100/min")
    api.acquire(tokens=90)
    api.observe_headers({"x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "1m"})
    with pytest.raises(CoordinationTimeoutError):
        api.acquire(tokens=20, timeout=0)  # our own count is the tighter
    api.acquire(tokens=10, timeout=0)


def test_anthropic_input_and_output_caps_apply_to_their_dimensions(backend: str) -> None:
    api = limit("claude", input_tokens="40000/min", output_tokens="8000/min")
    api.observe_headers({
        "anthropic-ratelimit-output-tokens-remaining": "50",
        "anthropic-ratelimit-output-tokens-reset": "2999-01-01T00:00:00Z",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
        "anthropic-ratelimit-input-tokens-reset": "2999-01-01T00:00:00Z",
    })
    api.acquire(input_tokens=5000, output_tokens=50, timeout=0)
    with pytest.raises(CoordinationTimeoutError):
        api.acquire(input_tokens=1, output_tokens=1, timeout=0)  # output_tokens is spent
    api.acquire(input_tokens=1000, timeout=0)  # no output: still admitted


def test_retry_after_becomes_a_backoff(backend: str) -> None:
    api = limit("openai", requests="500/min")
    report = api.observe_headers({"retry-after-ms": "30000", "retry-after": "1"})
    assert report.retry_after == 30.0
    assert api.usage().backoff > 25
    with pytest.raises(CoordinationTimeoutError):
        api.acquire(timeout=0)


def test_the_providers_last_word_is_in_usage(backend: str) -> None:
    api = limit("openai", requests="500/min", tokens="30000/min")
    api.observe_headers({
        "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "2s",
    })
    usage = api.usage()
    words = {w.dimension: w for w in usage.provider}
    assert (words["requests"].limit, words["requests"].remaining) == (500, 499)
    assert (words["tokens"].limit, words["tokens"].remaining) == (30000, 29000)
    assert words["tokens"].reset_at is not None and words["tokens"].reset_at > words["tokens"].observed_at
    assert "provider: tokens 29000 of 30000" in usage.describe()


def test_a_provider_limit_unlike_the_declared_one_is_logged_once(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    api = limit("openai", tokens="90000/min", requests="500/min")
    with caplog.at_level(logging.WARNING, logger="agentdiff_coordination"):
        for _ in range(3):
            api.observe_headers({"x-ratelimit-limit-tokens": "30000", "x-ratelimit-limit-requests": "500"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "30000" in warnings[0] and "90000/min" in warnings[0] and "tokens" in warnings[0]


def test_bad_headers_never_raise_into_the_caller(backend: str) -> None:
    api = limit("openai", requests="500/min")
    assert not api.observe_headers({"x-ratelimit-remaining-requests": "lots", "retry-after": "soon"})
    api.acquire(timeout=0)


def test_a_lifted_cap_wakes_the_waiter_at_once(backend: str) -> None:
    api = limit("openai", tokens="1000/min")
    api.observe_headers({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1h"})
    admitted: list[float] = []

    def waiter() -> None:
        admitted.append(api.acquire(tokens=10).admitted_at)

    def lift() -> None:
        wait_until(lambda: api.usage().waiting == 1, "the waiter to queue")
        api.observe_headers({"x-ratelimit-remaining-tokens": "500", "x-ratelimit-reset-tokens": "1m"})

    run_threads([waiter, lift])
    assert len(admitted) == 1
