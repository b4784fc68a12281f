"""Bad input gets a ValueError or TypeError, at the call that made the mistake, with a
message that names the argument and the value."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agentdiff_coordination import (
    CoordinationError,
    CoordinationTimeoutError,
    configure,
    coordinate,
    drain,
    emit,
    lock,
    wait_for,
    when,
)
from agentdiff_coordination.core.runtime import ENV_BACKEND, get_backend

from ..conformance.support import HANG

BAD_NAMES: list[tuple[Any, type[Exception]]] = [
    ("", ValueError),
    ("  padded  ", ValueError),
    (None, TypeError),
    (42, TypeError),
    (b"bytes", TypeError),
]

NAME_TAKERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "coordinate": (lambda n: coordinate(n), "coordinate() name"),
    "coordinate lock_name": (lambda n: coordinate("step", lock_name=n), "lock name"),
    "lock": (lambda n: lock(n), "lock name"),
    "lock list": (lambda n: lock(["ok", n]), "lock name"),
    "emit": (lambda n: emit(n), "event name"),
    "when": (lambda n: when(n), "event pattern"),
    "wait_for": (lambda n: wait_for(n, timeout=0), "event pattern"),
}


NAME_CASES = [
    pytest.param(taker, bad, error, id=f"{bad_id}-{taker}")
    for taker in NAME_TAKERS
    for (bad, error), bad_id in zip(BAD_NAMES, ["empty", "padded", "none", "int", "bytes"])
    if not (taker == "coordinate lock_name" and bad is None)  # lock_name=None means: no lock
]


@pytest.mark.parametrize(("taker", "bad", "error"), NAME_CASES)
def test_a_bad_name_is_rejected_with_a_message_naming_it(taker: str, bad: Any, error: type[Exception]) -> None:
    call, what = NAME_TAKERS[taker]
    with pytest.raises(error) as info:
        call(bad)
    assert what in str(info.value)
    assert repr(bad) in str(info.value) or type(bad).__name__ in str(info.value)


@pytest.mark.parametrize("empty", [[], (), set()], ids=["list", "tuple", "set"])
def test_an_empty_list_of_lock_names_is_a_value_error(empty: Any) -> None:
    with pytest.raises(ValueError, match="empty"):
        lock(empty)
    with pytest.raises(ValueError, match="empty"):
        coordinate("step", lock_name=empty)


TIMEOUT_TAKERS: dict[str, Callable[[Any], Any]] = {
    "lock": lambda t: lock("l", timeout=t),
    "coordinate": lambda t: coordinate("step", lock_name="l", timeout=t),
    "wait_for": lambda t: wait_for("pattern", timeout=t),
    "drain": lambda t: drain(timeout=t),
}

BAD_TIMEOUTS: list[tuple[Any, type[Exception]]] = [
    (-1, ValueError),
    (-0.001, ValueError),
    (math.nan, ValueError),
    (True, TypeError),
    (False, TypeError),
    ("5", TypeError),
]


@pytest.mark.parametrize("taker", TIMEOUT_TAKERS, ids=list(TIMEOUT_TAKERS))
@pytest.mark.parametrize(
    ("bad", "error"), BAD_TIMEOUTS, ids=["negative", "tiny-negative", "nan", "true", "false", "string"]
)
def test_a_bad_timeout_is_rejected_with_a_message_naming_it(taker: str, bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        TIMEOUT_TAKERS[taker](bad)
    assert "timeout" in str(info.value) and repr(bad) in str(info.value)


def test_an_infinite_timeout_never_fails_with_an_overflow() -> None:
    """``timeout=math.inf`` is either refused up front or waits like ``None``."""
    try:
        infinite = lock("inf", timeout=math.inf)
    except ValueError as exc:
        assert "timeout" in str(exc)
        return
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock("inf"):
            holding.set()
            release.wait(HANG)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert holding.wait(HANG)
    threading.Timer(0.05, release.set).start()
    try:
        with infinite:
            pass
    finally:
        release.set()
        t.join(HANG)


def test_an_unknown_backend_url_is_a_value_error_naming_it() -> None:
    for url in ("mongodb://localhost", "memory", "", "   "):
        with pytest.raises(ValueError) as info:
            configure(url)
        assert repr(url) in str(info.value) and "memory://" in str(info.value)


def test_a_failed_configure_keeps_the_backend_in_force() -> None:
    before = get_backend()
    with pytest.raises(ValueError):
        configure("nosuch://x")
    with pytest.raises(TypeError):
        configure("memory://", nonsense=1)
    assert get_backend() is before
    with lock("still-works", timeout=0):
        pass


def test_a_backend_that_is_neither_url_nor_backend_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="int"):
        configure(6379)  # type: ignore[arg-type]


def test_an_unknown_backend_url_in_the_environment_is_a_value_error_naming_variable_and_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_BACKEND, "carrier-pigeon://coop")
    with pytest.raises(ValueError) as info:
        with lock("first-use"):
            pass
    message = str(info.value)
    assert "carrier-pigeon://coop" in message
    assert ENV_BACKEND in message, f"the message does not say where the URL came from: {message}"


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"handler_retires": 3}, TypeError, ["handler_retires", "handler_retries"]),
        ({"handler_retries": -1}, ValueError, ["handler_retries", "-1"]),
        ({"handler_retries": 1.5}, TypeError, ["handler_retries", "1.5"]),
        ({"handler_threads": 0}, ValueError, ["handler_threads", "0"]),
        ({"retry_delay": -0.1}, ValueError, ["retry_delay", "-0.1"]),
        ({"retry_delay": "fast"}, TypeError, ["retry_delay", "fast"]),
        ({"lease": 0}, ValueError, ["lease", "0"]),
        ({"key_prefix": ""}, ValueError, ["key_prefix"]),
    ],
    ids=["unknown", "negative-int", "float-for-int", "zero-threads", "negative-delay", "string-delay",
         "zero-lease", "empty-prefix"],
)
def test_a_bad_configure_option_is_rejected_with_a_message_naming_it(
    options: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        configure(**options)
    for word in words:
        assert word in str(info.value)


def test_emit_rejects_a_non_string_sender_even_with_nobody_listening() -> None:
    with pytest.raises(TypeError, match="sender"):
        emit("lonely_event", sender=5)  # type: ignore[arg-type]


def test_decorating_something_not_callable_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'step'"):
        coordinate("step")(42)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="callable"):
        when("x")(42)  # type: ignore[type-var]
    with pytest.raises(TypeError):
        lock("x")(42)  # type: ignore[type-var]


def test_bad_when_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="retries"):
        when("x", retries=-1)
    with pytest.raises(ValueError, match="retries"):
        when("x", retries=True)
    with pytest.raises(ValueError, match="retry_delay"):
        when("x", retry_delay=-1)


def test_the_error_tree_has_one_root() -> None:
    assert issubclass(CoordinationTimeoutError, CoordinationError)
    assert issubclass(CoordinationTimeoutError, TimeoutError)


@pytest.mark.parametrize("bad", [0, -1])
def test_a_lease_that_is_not_positive_is_a_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="lease"):
        lock("x", lease=bad)
