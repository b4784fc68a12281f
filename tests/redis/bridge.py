"""A temporary bridge for the tests while the core still has the old bus: the old bus
calls ``backend.bind(bus)``; the runtime will call ``backend.attach(bus, defaults)``.

Loaded by ``tests/redis/conftest.py``; for the conformance tests run pytest with
``-p tests.redis.bridge``. Remove once the runtime attaches backends itself.
"""

from __future__ import annotations

from typing import Any

from agentdiff_coordination.core import config
from agentdiff_coordination.core.backends.base import Backend, BackendDefaults


class _LiveDefaults:
    """The defaults as the settings say now (the runtime re-attaches on every change)."""

    @property
    def key_prefix(self) -> str:
        return str(config.settings().key_prefix)

    @property
    def lease(self) -> float:
        return float(config.settings().lease)

    @property
    def on_lease_lost(self) -> Any:
        return getattr(config.settings(), "on_lease_lost", None)

    @property
    def exit_flush(self) -> float:
        return float(getattr(config.settings(), "exit_drain_timeout", 10.0))


def _bind(self: Backend, bus: Any) -> None:
    self._bus = bus  # type: ignore[attr-defined]  # the memory backend still reads it
    self.attach(bus, _LiveDefaults())  # type: ignore[arg-type]


if not hasattr(Backend, "bind"):
    Backend.bind = _bind  # type: ignore[attr-defined]

__all__ = ["BackendDefaults"]
