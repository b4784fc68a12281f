"""A plugin whose hook asks for an argument the hook does not have (pluggy refuses it)."""

from __future__ import annotations

from typing import Any

from agentdiff_coordination.adapters.hookspecs import hookimpl


@hookimpl
def coordination_owns(obj: Any, framework: str) -> bool | None:
    return None
