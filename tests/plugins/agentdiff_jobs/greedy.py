"""A plugin that owns nothing but would wrap anything: it must never be asked to wrap."""

from __future__ import annotations

from typing import Any

from agentdiff_coordination.adapters.hookspecs import hookimpl
from agentdiff_coordination.core.coordinate import Coordinator


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    return None


@hookimpl
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    return "wrapped by the wrong plugin"
