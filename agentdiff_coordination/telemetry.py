"""OpenTelemetry: spans and metrics of coordination, through the global providers.

Turned on with ``configure(opentelemetry=True)`` or ``AGENTDIFF_COORDINATION_OPENTELEMETRY=1``
(extra ``otel``: ``opentelemetry-api`` only; the application chooses the SDK and exporters).

Spans: ``coordinate NAME`` per coordinated call (current while the step runs, so framework
spans nest under it), ``lock NAMES`` around a ``with lock(...)``, ``limit NAME`` around a
``with limit(...)``, ``handle EVENT`` per handler run, continuing the trace of the code
that emitted the event (the context travels with the event, across processes on Redis).
Metrics from the meter ``agentdiff_coordination``: histograms ``coordination.lock.wait.duration``,
``coordination.lock.hold.duration``, ``coordination.limit.wait.duration``,
``coordination.handler.duration`` (seconds); counters ``coordination.lock.timeouts``,
``coordination.events.dead_letters``; up-down counter ``coordination.lock.waiting``.
Off, the core pays one truth test per call.
"""

from __future__ import annotations

import threading
from typing import Any

from .core.extras import require
from .core.observers import LiveSpan, SpanRecord, add_observer, remove_observer
from .core.runtime import RUNTIME
from .core.settings import Settings
from .core.version import __version__

__all__ = ["OpenTelemetryObserver", "disable", "enable", "enabled"]

METER = "agentdiff_coordination"

_SPAN_NAMES = {"run": "coordinate {step}", "lock": "lock {resource}", "limit": "limit {resource}", "handle": "handle {resource}"}


class OpenTelemetryObserver:
    """The observer that turns coordination spans into OpenTelemetry spans and metrics."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        trace = require("opentelemetry.trace", extra="otel", feature="OpenTelemetry support")
        metrics = require("opentelemetry.metrics", extra="otel", feature="OpenTelemetry support")
        self._context = require("opentelemetry.context", extra="otel")
        self._propagate = require("opentelemetry.propagate", extra="otel")
        self._trace = trace
        self._error = trace.Status(trace.StatusCode.ERROR)
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.tracer = provider.get_tracer("agentdiff_coordination", __version__)
        meters = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = meters.get_meter(METER, __version__)
        self.lock_wait = meter.create_histogram("coordination.lock.wait.duration", unit="s", description="time spent waiting for a lock")
        self.lock_hold = meter.create_histogram("coordination.lock.hold.duration", unit="s", description="time a lock was held")
        self.limit_wait = meter.create_histogram("coordination.limit.wait.duration", unit="s", description="time spent waiting for a limit")
        self.handler = meter.create_histogram("coordination.handler.duration", unit="s", description="time a handler ran")
        self.timeouts = meter.create_counter("coordination.lock.timeouts", description="lock waits that timed out")
        self.dead_letters = meter.create_counter("coordination.events.dead_letters", description="events dead-lettered")
        self.waiting = meter.create_up_down_counter("coordination.lock.waiting", description="callers waiting for a lock")

    # -- the observer protocol ------------------------------------------------------------
    def begin(self, live: LiveSpan) -> Any:
        kind = live.kind
        if kind == "lock_wait":
            self.waiting.add(1, {"coordination.lock.name": live.resource or ""})
            return None
        template = _SPAN_NAMES.get(kind)
        if template is None:
            return None
        parent = self._propagate.extract(live.parent) if live.parent else None
        # the attributes are set once, at the end, when all are known (each set costs the SDK a check)
        span = self.tracer.start_span(template.format(step=live.step, resource=live.resource), context=parent)
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def end(self, live: LiveSpan, token: Any, record: SpanRecord, error: BaseException | None) -> None:
        kind, seconds = live.kind, max(record.end - record.start, 0.0)
        if kind == "lock_wait":
            attrs = {"coordination.lock.name": live.resource or ""}
            self.waiting.add(-1, attrs)
            self.lock_wait.record(seconds, attrs)
            if record.outcome == "timeout":
                self.timeouts.add(1, attrs)
        elif kind == "lock_hold":
            self.lock_hold.record(seconds, {"coordination.lock.name": live.resource or ""})
        elif kind == "limit_wait":
            self.limit_wait.record(seconds, {"coordination.limit.name": live.resource or ""})
        elif kind == "handle":
            self.handler.record(seconds, {"coordination.event.pattern": live.attrs.get("coordination.event.pattern", "")})
        if token is None:
            return
        span, context_token = token
        try:
            span.set_attributes(live.attrs)
            if error is not None and record.outcome not in ("cancelled", "interrupted"):
                span.set_status(self._error)
                span.record_exception(error)
        finally:
            try:
                self._context.detach(context_token)
            finally:
                span.end()

    def span(self, record: SpanRecord) -> None:
        """Not used: a tracer is told through ``begin`` and ``end``."""

    def inject(self) -> dict[str, str] | None:
        """The caller's trace context, for an emitted event to carry."""
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier)
        return carrier or None

    def count(self, name: str, attrs: dict[str, Any]) -> None:
        if name == "dead_letter":
            self.dead_letters.add(1, {"coordination.event.name": attrs.get("event", "")})


_mutex = threading.Lock()
_observer: OpenTelemetryObserver | None = None


def enable(*, tracer_provider: Any = None, meter_provider: Any = None) -> OpenTelemetryObserver:
    """Start reporting to OpenTelemetry (what ``configure(opentelemetry=True)`` does), to the
    global providers unless others are given (tests use their own)."""
    global _observer
    with _mutex:
        if _observer is None or tracer_provider is not None or meter_provider is not None:
            made = OpenTelemetryObserver(tracer_provider, meter_provider)
            if _observer is not None:
                remove_observer(_observer)
            _observer = made
            add_observer(made)
        return _observer


def disable() -> None:
    """Stop reporting to OpenTelemetry."""
    global _observer
    with _mutex:
        old, _observer = _observer, None
    if old is not None:
        remove_observer(old)


def enabled() -> bool:
    """Whether coordination reports to OpenTelemetry now."""
    return _observer is not None


_configured = False  # what the settings last asked for (enable() by hand is left alone)


def _follow(settings: Settings) -> None:
    global _configured
    if settings.opentelemetry == _configured:
        return
    if settings.opentelemetry:
        enable()
    else:
        disable()
    _configured = settings.opentelemetry


RUNTIME.on_settings(_follow)
