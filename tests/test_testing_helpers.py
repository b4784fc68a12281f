"""The helpers shipped for users' own tests (agentdiff_coordination.testing)."""

from __future__ import annotations

import threading

import pytest

from agentdiff_coordination import CoordinationTimeoutError, coordinate, emit, when
from agentdiff_coordination import testing
from agentdiff_coordination.core.runtime import RUNTIME, get_backend, settings
from agentdiff_coordination.testing import EventRecorder, isolated


def test_the_recorder_sees_lifecycle_events_in_emit_order_without_sleeping() -> None:
    @coordinate("recorded", lock_name="recorded-lock")
    def step(x: int) -> int:
        return x * 2

    with EventRecorder("recorded_*") as seen:
        step(1)
        step(2)
    assert seen.names() == ["recorded_started", "recorded_complete"] * 2
    assert [d["result"] for d in seen.data("recorded_complete")] == [2, 4]


def test_the_recorder_waits_for_events_emitted_by_handlers_on_other_threads() -> None:
    @when("first")
    def chain(data: int) -> None:
        emit("second", data + 1)

    with EventRecorder("second") as seen:
        emit("first", 41)
        (event,) = seen.wait_for_count(1, timeout=10)
    assert event.data == 42
    assert event.name == "second"


def test_waiting_for_more_events_than_arrive_names_what_did_arrive() -> None:
    with EventRecorder("only_*") as seen:
        emit("only_one")
        with pytest.raises(CoordinationTimeoutError, match=r"1 of 2 events .*only_one"):
            seen.wait_for_count(2, timeout=0.05)


def test_a_stopped_recorder_records_nothing_more() -> None:
    seen = EventRecorder("late").start()
    emit("late", 1)
    seen.stop()
    emit("late", 2)
    assert seen.data("late") == [1]


def test_isolated_gives_a_fresh_backend_and_removes_the_handlers_made_inside() -> None:
    ran = threading.Event()
    with isolated():
        backend = get_backend()

        @when("inside")
        def handler(data: object) -> None:
            ran.set()

        emit("inside")
        assert ran.wait(10)
    assert handler not in [getattr(s, 'handler', None) for s in RUNTIME.bus.subscriptions()]
    assert get_backend() is not backend


def test_isolated_keeps_the_options_set_with_configure() -> None:
    from agentdiff_coordination import configure

    configure(handler_retries=5)
    with isolated():
        pass
    assert settings().handler_retries == 5
