"""The errors raised by agentdiff-coordination.

Every error the library raises on its own behalf derives from one root::

    CoordinationError
    ├── CoordinationTimeoutError   (also a TimeoutError) a lock or limit was not had in time
    ├── LockNotHeldError           release of a lock this caller does not hold
    ├── LeaseLostError             a distributed lease expired or was taken over while held
    └── BackendError               the backend (Redis) failed or could not be reached
        └── BackendUnavailableError  connection refused, lost, or the server restarted

Bad input (an empty name, a negative timeout, an unknown backend URL, a malformed
limit) raises the built-in ``ValueError`` or ``TypeError`` with a message that
names the argument and the value.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CoordinationError",
    "CoordinationTimeoutError",
    "LeaseLostError",
    "LockNotHeldError",
]


class CoordinationError(Exception):
    """The root of every error raised by agentdiff-coordination."""


class CoordinationTimeoutError(CoordinationError, TimeoutError):
    """A lock, limit or event was not had within the timeout.

    ``resource`` names the lock or limit (or the event pattern for ``wait_for``),
    ``holder`` describes who held it when known, ``timeout`` is the limit in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        resource: str | None = None,
        holder: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(message)
        self.resource = resource
        self.holder = holder
        self.timeout = timeout


class LockNotHeldError(CoordinationError, RuntimeError):
    """A lock was released by a caller that does not hold it."""


class LeaseLostError(CoordinationError):
    """A distributed lock's lease ran out or was taken over while its holder still ran.

    ``fencing`` is the fencing number of the lost grant: anything written with it
    after the loss may be rejected by a resource that checks fencing numbers.
    """

    def __init__(self, message: str, *, name: str, fencing: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.fencing = fencing


class BackendError(CoordinationError):
    """The coordination backend failed; ``__cause__`` holds the backend's own error."""


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend could not be reached (refused, lost, or restarted)."""
