"""A plugin that imports, registers, and then raises from every hook it implements."""

from __future__ import annotations

from typing import Any

from agentdiff_coordination.adapters.hookspecs import hookimpl


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    raise RuntimeError("owns() is broken on purpose")


@hookimpl
def coordination_passthrough(exc: BaseException) -> bool | None:
    raise RuntimeError("passthrough() is broken on purpose")
