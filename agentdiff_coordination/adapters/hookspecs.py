"""The plugin API: hooks an adapter implements to make ``coordinate`` work on its objects.

An adapter is any module or object with functions marked ``@hookimpl``, registered
under the entry-point group ``agentdiff_coordination`` (or built in). A hook
implementation takes only the arguments it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..core.coordinate import Coordinator

PROJECT = "agentdiff_coordination"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def coordination_owns(obj: Any) -> bool | None:
    """Return True if this adapter knows how to coordinate ``obj``; None otherwise.

    Called once per ``coordinate(...)(obj)``, never on the hot path. Must be cheap and
    must not import a framework the user has not imported (check ``sys.modules``).
    """


@hookspec(firstresult=True)
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    """Return ``obj`` coordinated by ``coordinator``, or None if this adapter does not own it.

    ``coordinator`` carries the step name, the lock names (canonical order), timeout
    and limit; use ``coordinator.call`` / ``acall`` / ``run`` to run the step under them.
    """
