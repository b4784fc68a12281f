"""The observer registry the core reports spans to."""

from __future__ import annotations

import pytest

from agentdiff_coordination.core.observers import SpanRecord, add_observer, observers, remove_observer

from .synthetic import demo_like_spans, emit


class Collect:
    def __init__(self) -> None:
        self.seen: list[SpanRecord] = []

    def span(self, record: SpanRecord) -> None:
        self.seen.append(record)


def test_no_observers_is_an_empty_tuple() -> None:
    assert observers() == ()
    assert not observers()


def test_an_added_observer_sees_every_span_until_removed() -> None:
    spans = demo_like_spans()
    collect = Collect()
    add_observer(collect)
    try:
        emit(spans[:3])
    finally:
        remove_observer(collect)
    emit(spans[3:])
    assert collect.seen == spans[:3]
    assert observers() == ()


def test_removing_one_registration_keeps_the_others() -> None:
    a, b = Collect(), Collect()
    add_observer(a)
    add_observer(b)
    add_observer(a)
    remove_observer(a)
    assert observers() == (a, b)
    remove_observer(a)
    remove_observer(b)
    remove_observer(b)  # unknown: ignored
    assert observers() == ()


def test_an_object_without_span_is_refused() -> None:
    with pytest.raises(TypeError, match="span"):
        add_observer(object())  # type: ignore[arg-type]


def test_span_records_are_frozen() -> None:
    span = demo_like_spans()[0]
    with pytest.raises(AttributeError):
        span.step = "other"  # type: ignore[misc]
