"""OpenTelemetry: spans and metrics through the real SDK, with in-memory exporters."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentdiff_coordination import CoordinationTimeoutError, configure, coordinate, drain, emit, limit, lock, when
from agentdiff_coordination import telemetry

SPANS = InMemorySpanExporter()
READERS: list[InMemoryMetricReader] = []


@pytest.fixture(autouse=True)
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Providers of this test's own (the global ones may belong to a framework under test)."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    SPANS.clear()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(SPANS))
    READERS[:] = [InMemoryMetricReader()]
    monkeypatch.setattr(trace, "get_tracer", tracer_provider.get_tracer)  # the app's spans, for nesting
    telemetry.enable(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=READERS))
    yield
    telemetry.disable()


def spans(name: str | None = None) -> list[ReadableSpan]:
    found = list(SPANS.get_finished_spans())
    return [s for s in found if name is None or s.name == name]


def points(metric: str) -> list[Any]:
    data = READERS[0].get_metrics_data()
    out = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            if scope.scope.name != "agentdiff_coordination":
                continue
            for m in scope.metrics:
                if m.name == metric:
                    out.extend(m.data.data_points)
    return out


def test_a_coordinated_call_is_a_span_with_its_lock_attributes() -> None:
    @coordinate("writer", lock_name="record")
    def write(x: int) -> int:
        return x * 2

    assert write(21) == 42
    (span,) = spans("coordinate writer")
    attrs = dict(span.attributes or {})
    assert attrs["coordination.step"] == "writer"
    assert attrs["coordination.run_id"].startswith("run-")
    assert list(attrs["coordination.lock.names"]) == ["record"]
    assert isinstance(attrs["coordination.lock.wait_duration"], float)
    assert isinstance(attrs["coordination.fencing"], int)
    assert span.status.status_code != StatusCode.ERROR


def test_a_failed_call_is_an_error_span_with_the_exception_recorded() -> None:
    @coordinate("breaker")
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        asyncio.run(fail())
    (span,) = spans("coordinate breaker")
    assert span.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" and e.attributes and e.attributes.get("exception.message") == "boom" for e in span.events)


def test_spans_started_inside_the_step_nest_under_it() -> None:
    tracer = trace.get_tracer("framework")

    @coordinate("agent", lock_name="api")
    def step() -> None:
        with tracer.start_as_current_span("llm call"):
            pass

    step()
    (outer,) = spans("coordinate agent")
    (inner,) = spans("llm call")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


def test_a_limit_on_a_step_shows_its_name_and_wait() -> None:
    limit("otel-api", requests="100/s")

    @coordinate("caller", limit="otel-api")
    def call() -> int:
        return 1

    call()
    (span,) = spans("coordinate caller")
    attrs = dict(span.attributes or {})
    assert attrs["coordination.limit.name"] == "otel-api"
    assert attrs["coordination.limit.wait_duration"] >= 0.0


def test_with_lock_and_with_limit_outside_a_step_are_spans_of_their_own() -> None:
    api = limit("otel-plain", requests="100/s")
    with lock(["b", "a"]):
        pass
    with api:
        pass

    async def main() -> None:
        async with lock("c"):
            pass

    asyncio.run(main())
    (lock_span,) = spans("lock a,b")
    assert list(dict(lock_span.attributes or {})["coordination.lock.names"]) == ["a", "b"]
    assert "coordination.lock.wait_duration" in dict(lock_span.attributes or {})
    assert spans("lock c") and spans("limit otel-plain")
    assert dict(spans("limit otel-plain")[0].attributes or {})["coordination.limit.name"] == "otel-plain"


def test_a_handler_span_continues_the_trace_of_the_emitter() -> None:
    tracer = trace.get_tracer("app")
    done = threading.Event()

    @when("order_placed")
    def ship(data: Any) -> None:
        done.set()

    with tracer.start_as_current_span("checkout") as checkout:
        emit("order_placed", {"id": 1})
    assert done.wait(5) and drain(5)
    (handle,) = spans("handle order_placed")
    assert handle.context.trace_id == checkout.get_span_context().trace_id
    assert handle.parent is not None and handle.parent.span_id == checkout.get_span_context().span_id


def test_metrics_of_waits_holds_handlers_timeouts_and_dead_letters() -> None:
    configure(handler_retries=0)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock("metered"):
            holding.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(5)
    with pytest.raises(CoordinationTimeoutError):
        with lock("metered", timeout=0.05):
            pass
    release.set()
    t.join(5)

    @when("broken")
    def broken(data: Any) -> None:
        raise RuntimeError("no")

    emit("broken", 1)
    drain(5)

    waits = [p for p in points("coordination.lock.wait.duration") if p.attributes.get("coordination.lock.name") == "metered"]
    assert waits and sum(p.count for p in waits) >= 2
    assert [p for p in points("coordination.lock.hold.duration") if p.attributes.get("coordination.lock.name") == "metered"]
    assert [p for p in points("coordination.lock.timeouts") if p.attributes.get("coordination.lock.name") == "metered" and p.value >= 1]
    assert [p for p in points("coordination.handler.duration") if p.attributes.get("coordination.event.pattern") == "broken"]
    assert [p for p in points("coordination.events.dead_letters") if p.value >= 1]
    assert all(p.value == 0 for p in points("coordination.lock.waiting") if p.attributes.get("coordination.lock.name") == "metered")


GLOBAL_PROVIDERS = """
import os
os.environ.pop("OTEL_SDK_DISABLED", None)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
from agentdiff_coordination import configure, coordinate
{turn_on}
coordinate("global_step")(lambda: None)()
print(sorted(s.name for s in spans.get_finished_spans()))
"""


@pytest.mark.parametrize(
    ("turn_on", "env"),
    [("configure(opentelemetry=True)", {}), ("", {"AGENTDIFF_COORDINATION_OPENTELEMETRY": "1"})],
    ids=["configure", "environment"],
)
def test_configure_or_the_environment_turns_it_on_with_the_global_providers(turn_on: str, env: dict[str, str]) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDERS.format(turn_on=turn_on)], capture_output=True, text=True, timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['coordinate global_step']", done.stdout + done.stderr


def test_a_bad_environment_flag_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentdiff_coordination import testing

    testing.reset()
    monkeypatch.setenv("AGENTDIFF_COORDINATION_OPENTELEMETRY", "maybe")
    with pytest.raises(ValueError, match="AGENTDIFF_COORDINATION_OPENTELEMETRY='maybe'"):
        configure()


def test_off_nothing_is_reported() -> None:
    telemetry.disable()
    coordinate("quiet")(lambda: None)()
    assert not telemetry.enabled() and spans("coordinate quiet") == []
