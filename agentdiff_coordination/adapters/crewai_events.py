"""The optional bridge of the CrewAI adapter: CrewAI's own events of a coordinated task
(tool usage, LLM calls...) re-emitted as ``TASKNAME_<type>`` events of ours."""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
from typing import Any

from ..core.events import emit

__all__ = ["BRIDGED_EVENT_TYPES", "install_bridge"]

logger = logging.getLogger("agentdiff_coordination")

#: the CrewAI event types a bridged task forwards
BRIDGED_EVENT_TYPES: tuple[str, ...] = (
    "ToolUsageStartedEvent",
    "ToolUsageFinishedEvent",
    "ToolUsageErrorEvent",
    "LLMCallStartedEvent",
    "LLMCallCompletedEvent",
    "LLMCallFailedEvent",
)

_bridge_installed = False
_bridge_lock = threading.Lock()


def install_bridge(current: ContextVar[tuple[str | None, Any, Any] | None]) -> None:
    """Register, once per process, the CrewAI handlers that forward a bridged run's events.

    CrewAI runs its sync handlers with a copy of the emitter's context, so a handler sees
    which coordinated task (if any) the event came from.
    """
    global _bridge_installed
    if _bridge_installed:
        return
    with _bridge_lock:
        if _bridge_installed:
            return
        import crewai.events as crewai_events

        bus = crewai_events.crewai_event_bus
        for type_name in BRIDGED_EVENT_TYPES:
            bus.on(getattr(crewai_events, type_name))(_forwarder(current))
        _bridge_installed = True


def _forwarder(current: ContextVar[tuple[str | None, Any, Any] | None]) -> Any:
    def forward(source: Any, event: Any) -> None:
        """A CrewAI handler: re-emit ``event`` as ``NAME_<type>`` if it came from a bridged run."""
        run = current.get()
        name = run[0] if run is not None else None
        if name is None:
            return
        try:
            emit(f"{name}_{event.type}", _bridge_payload(name, event), sender=name)
        except Exception:  # watching must never break the crew
            logger.exception("could not forward CrewAI event %s of task %r", getattr(event, "type", event), name)

    return forward


def _bridge_payload(name: str, event: Any) -> dict[str, Any]:
    """The JSON-friendly scalar fields of a CrewAI event, plus the task's event name."""
    data: dict[str, Any] = {}
    try:
        dumped = event.model_dump(mode="json")
    except Exception:  # an event with an unserialisable field: keep what is plain
        dumped = {k: v for k, v in vars(event).items()}
    for key, value in dumped.items():
        if value is None or isinstance(value, (str, int, float, bool)):
            data[key] = value
    data["crewai_event"] = getattr(event, "type", type(event).__name__)
    data["task"] = name
    return data


