"""The plugin API: hooks an adapter implements to make ``coordinate`` work on its objects.

An adapter is any module or object with functions marked ``@hookimpl``, registered
under the entry-point group ``agentdiff_coordination`` (or built in: the LangGraph,
CrewAI and AutoGen adapters register exactly the same way). A hook implementation
takes only the arguments it needs, and implements only the hooks it needs.

``coordinate(...)(obj)`` asks each plugin ``coordination_owns(obj)`` in turn; the first
that says True is asked ``coordination_wrap(obj, coordinator)``. A plain callable
nobody owns is wrapped by the core. When a coordinated step raises, the core asks
``coordination_passthrough(exc)`` whether the exception is a framework's control flow.

See ``docs/adapters/writing-an-adapter.md`` for a walk-through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..core.coordinate import Coordinator

__all__ = ["PROJECT", "coordination_owns", "coordination_passthrough", "coordination_wrap", "hookimpl", "hookspec"]

#: the pluggy project name, which is also the entry-point group plugins register under
PROJECT = "agentdiff_coordination"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def coordination_owns(obj: Any) -> bool | None:
    """Return True if this adapter knows how to coordinate ``obj``; None otherwise.

    Called once per ``coordinate(...)(obj)``, never on the hot path. Must be cheap and
    must not import a framework the user has not imported: look the framework's
    classes up in ``sys.modules`` (an object of a class from a module that is not
    imported cannot exist). An exception raised here is reported as a warning and
    the object is offered to the next plugin.
    """


@hookspec(firstresult=True)
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    """Return ``obj`` coordinated by ``coordinator``; called only on the plugin that owns ``obj``.

    ``coordinator`` carries the step name, the lock names (canonical order), timeout,
    limit, ``passthrough`` exception types and ``meta``; run the object's work under it
    with ``coordinator.call`` / ``await coordinator.acall`` or ``with coordinator.run()``
    (``Coordinator.replace(passthrough=..., meta=...)`` adds the framework's control-flow
    exceptions and payload fields). Return what the user should use in place of
    ``obj``: a wrapper, or ``obj`` itself changed in place. Raise ``TypeError`` with
    directions when the object can be recognised but not coordinated this way. The
    framework may be imported here, lazily, with an ``ImportError`` naming the extra
    to install when it is missing.
    """


@hookspec(firstresult=True)
def coordination_passthrough(exc: BaseException) -> bool | None:
    """Return True if ``exc`` is the framework's control flow rather than a failure.

    A coordinated step that ends with such an exception (a graph interrupt, a handoff
    to a parent graph) emits ``NAME_interrupted`` instead of ``NAME_failed``; the
    exception is re-raised unchanged either way. Called only when a coordinated step
    raises, so plain functions decorated with ``@coordinate`` get it too. Like
    ``coordination_owns``, it must not import anything: check ``sys.modules``.
    """
