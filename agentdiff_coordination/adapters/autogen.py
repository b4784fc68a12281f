"""The autogen adapter (in progress)."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    return None
