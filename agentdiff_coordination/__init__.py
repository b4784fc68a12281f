"""agentdiff-coordination: locks, limits and events for AI agents.

``@coordinate`` gives any agent step a named lock and lifecycle events, ``@when`` reacts
to events, ``emit`` publishes them. One process by default; many on Redis.
"""

from .core.compat import configure_broker
from .core.coordinate import coordinate
from .core.errors import (
    BackendError,
    BackendUnavailableError,
    CoordinationError,
    CoordinationTimeoutError,
    LeaseLostError,
    LockNotHeldError,
)
from .core.events import DeadLetter, Event, current_event, dead_letters, drain, emit, unsubscribe, wait_for, when
from .core.limits import limit
from .core.locks import lock
from .core.runtime import configure
from .core.version import __version__
from .recording import record
from .status import status
from . import telemetry as _telemetry  # noqa: F401  (acts on configure(opentelemetry=...))


__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CoordinationError",
    "CoordinationTimeoutError",
    "DeadLetter",
    "Event",
    "LeaseLostError",
    "LockNotHeldError",
    "configure",
    "configure_broker",
    "coordinate",
    "current_event",
    "dead_letters",
    "drain",
    "emit",
    "limit",
    "lock",
    "record",
    "status",
    "unsubscribe",
    "wait_for",
    "when",
]
