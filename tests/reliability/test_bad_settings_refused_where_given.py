"""Issue 10, item 5: every bad setting is refused where it is given.

An argument, a URL option or an environment variable with a bad value raises where it
is given (``configure``, the backend URL, the first use of the library), with an error
that names the setting, the bad value and what is accepted; never later, in a handler
or at the first ``emit``. A refused ``configure`` leaves the backend and settings that
were in force. A huge lock timeout simply waits.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

import pytest

from agentdiff_coordination import configure, dead_letters, drain, emit, limit, lock, when

from .support import with_prefix

NAN, INF = float("nan"), float("inf")
#: words by which an error says what is accepted
ACCEPTED = re.compile(r"must|expect|accept|one of|allowed|valid|between|positive|finite|>=", re.I)


def assert_names(error: BaseException, setting: str, value: str) -> None:
    message = str(error)
    assert setting in message, f"the error should name the setting {setting!r}: {message}"
    assert value.lower() in message.lower(), f"the error should name the bad value {value!r}: {message}"
    assert ACCEPTED.search(message), f"the error should say what is accepted: {message}"


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("retry_delay", NAN, "nan"),
        ("retry_delay", INF, "inf"),
        ("exit_drain_timeout", NAN, "nan"),
        ("lease", NAN, "nan"),
        ("lease", INF, "inf"),
    ],
)
def test_a_number_that_is_not_finite_is_refused_by_configure(option: str, value: float, shown: str) -> None:
    with pytest.raises((ValueError, TypeError)) as refused:
        configure(**{option: value})
    assert_names(refused.value, option, shown)


@pytest.mark.parametrize("lease", [NAN, INF])
def test_a_lock_lease_that_is_not_finite_is_refused_where_given(backend: str, lease: float) -> None:
    with pytest.raises((ValueError, TypeError)) as refused:
        with lock("leased", lease=lease):
            pass
    assert_names(refused.value, "lease", repr(lease))


def test_retry_delay_nan_never_kills_a_handler_worker() -> None:
    """The harm of an unchecked ``nan``: the first failing handler killed its worker."""
    calls: list[int] = []
    try:
        configure(retry_delay=NAN, handler_retries=1)
    except (ValueError, TypeError):
        configure(handler_retries=1)  # refused at once: the promise is kept; check the rest still works

    @when("job")
    def handler(data: int) -> None:
        calls.append(data)
        if data == 0:
            raise RuntimeError("first job fails")

    emit("job", 0)
    emit("job", 1)
    assert drain(timeout=5), "the subscription stopped handling events after a handler failed"
    assert calls.count(1) == 1
    assert len(dead_letters()) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AGENTDIFF_COORDINATION_LOG_LEVEL", "bogus"), ("AGENTDIFF_COORDINATION_EXIT_DRAIN", "abc")],
)
def test_a_bad_environment_variable_is_refused_at_first_use_not_at_first_emit(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    def handler(data: Any) -> None:
        pass

    with pytest.raises((ValueError, TypeError)) as refused:
        configure()
        with lock("first-use"):
            pass
        when("anything")(handler)
        raise AssertionError(f"{variable}={value} was accepted by configure(), lock() and when()")
    assert_names(refused.value, variable, value)


@pytest.mark.redis
@pytest.mark.parametrize(
    ("query", "setting", "value"),
    [
        ("consumer_ttl=inf", "consumer_ttl", "inf"),
        ("consumer_ttl=nan", "consumer_ttl", "nan"),
        ("lease=inf", "lease", "inf"),
        ("bogus_option=1", "bogus_option", "bogus_option"),
        ("prefix=", "prefix", "''"),
    ],
)
def test_a_bad_redis_url_option_is_refused_by_configure(redis_url: str, query: str, setting: str, value: str) -> None:
    with pytest.raises(ValueError) as refused:
        configure(f"{redis_url}?{query}")
    assert_names(refused.value, setting, value)


@pytest.mark.redis
def test_a_redis_database_that_is_not_a_number_is_refused_by_configure(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    with pytest.raises(ValueError) as refused:
        configure(f"{base}/abc")
    assert_names(refused.value, "database", "abc")


@pytest.mark.redis
def test_a_rate_period_redis_cannot_keep_is_refused_where_declared(redis_url: str, prefix: str) -> None:
    configure(with_prefix(redis_url, prefix))
    name = f"huge-period-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ValueError) as refused:
        declared = limit(name, requests="5/100000000000d")
        with declared:  # refused when declared (best) or at the latest here, never later
            pass
        raise AssertionError("a rate of 5 per 100,000,000,000 days was accepted on Redis")
    assert_names(refused.value, "5/100000000000d", "100000000000d")


def test_a_refused_configure_leaves_the_backend_and_settings_in_force() -> None:
    configure("memory://", handler_retries=0)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock("kept"):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(5)
        for bad in (
            lambda: configure("memory://", handler_retries=3, retry_delay=NAN),
            lambda: configure("memory://", lease=INF),
            lambda: configure("no-such-scheme://x", handler_retries=3),
        ):
            with pytest.raises((ValueError, TypeError)):
                bad()
        # the same backend: the lock taken before is still held there
        with pytest.raises(TimeoutError):
            with lock("kept", timeout=0):
                pass
    finally:
        release.set()
        thread.join(10)
    calls: list[int] = []

    @when("fails")
    def failing(data: int) -> None:
        calls.append(data)
        raise RuntimeError("always")

    emit("fails", 1)
    assert drain(timeout=5)
    assert calls == [1], f"handler_retries=0 no longer in force: the handler ran {len(calls)} times"


def test_a_huge_timeout_on_a_contended_memory_lock_simply_waits() -> None:
    holding, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def holder() -> None:
        with lock("contended"):
            holding.set()
            release.wait(10)

    def waiter() -> None:
        try:
            with lock("contended", timeout=1e10):
                outcome.append("entered")
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome.append(exc)

    first = threading.Thread(target=holder)
    first.start()
    assert holding.wait(5)
    second = threading.Thread(target=waiter)
    second.start()
    time.sleep(0.2)
    assert not outcome, f"lock(timeout=1e10) did not wait: {outcome}"
    release.set()
    first.join(10)
    second.join(10)
    assert outcome == ["entered"]
