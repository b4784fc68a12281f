"""Plugins: the hooks an adapter implements, and the pluggy manager that asks them.

An adapter is any module or object with functions marked ``@hookimpl``. The built-in
adapters (LangGraph, CrewAI, AutoGen) are registered by module name and imported only
when the plugins are first needed; third-party ones come from the entry-point group
``agentdiff_coordination``, loaded once, lazily. The core imports no adapter.

``coordinate(...)(obj)`` calls ``coordination_wrap(obj, coordinator)`` through pluggy
(the first answer wins); each plugin is asked only for objects its ``coordination_owns``
claims. When a coordinated step raises, ``coordination_passthrough(exc)`` says whether the
exception is a framework's control flow (``NAME_interrupted``) rather than a failure.

``AGENTDIFF_COORDINATION_DISABLE_PLUGINS=1`` blocks every third-party plugin; a
comma-separated list of names (entry-point names, or ``langgraph``, ``crewai``, ``autogen``)
blocks those (pluggy's ``set_blocked``). A plugin that fails to load, or whose
``coordination_owns`` / ``coordination_passthrough`` raises, is reported with a
``RuntimeWarning`` (once) and the others still work. See ``docs/adapters/writing-an-adapter.md``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pluggy

__all__ = [
    "BUILTIN_ADAPTERS",
    "ENV_DISABLE",
    "PROJECT",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "is_passthrough",
    "register",
    "reset_plugins",
    "wrap_with_plugins",
]

#: the pluggy project name, which is also the entry-point group plugins register under
PROJECT = "agentdiff_coordination"
ENV_DISABLE = "AGENTDIFF_COORDINATION_DISABLE_PLUGINS"

#: modules of the adapters shipped with the package, registered like any plugin
BUILTIN_ADAPTERS: tuple[str, ...] = (
    "agentdiff_coordination.adapters.langgraph",
    "agentdiff_coordination.adapters.crewai",
    "agentdiff_coordination.adapters.autogen",
)

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class HookSpecs:
    """The hooks an adapter may implement (each takes only the arguments it needs)."""

    @hookspec(firstresult=True)
    def coordination_owns(self, obj: Any) -> bool | None:
        """Return True if this adapter knows how to coordinate ``obj``; None otherwise.

        Called once per ``coordinate(...)(obj)``, never on the hot path. Must be cheap and
        must not import a framework the user has not imported: look the framework's
        classes up in ``sys.modules``. An exception raised here is reported as a warning
        and the object is offered to the next plugin.
        """

    @hookspec(firstresult=True)
    def coordination_wrap(self, obj: Any, coordinator: Any) -> Any:
        """Return ``obj`` coordinated by ``coordinator`` (a ``core.coordinate.Coordinator``);
        asked only of the plugin whose ``coordination_owns`` claims ``obj``.

        ``coordinator`` carries the step name, the lock names (canonical order), timeout,
        limit, ``passthrough`` exception types and ``meta``; run the object's work under it
        with ``coordinator.call`` / ``await coordinator.acall`` or ``with coordinator.run()``.
        Return what the user should use in place of ``obj``. Raise ``TypeError`` with
        directions when the object is recognised but cannot be coordinated this way.
        """

    @hookspec(firstresult=True)
    def coordination_passthrough(self, exc: BaseException) -> bool | None:
        """Return True if ``exc`` is the framework's control flow rather than a failure
        (``NAME_interrupted`` instead of ``NAME_failed``; re-raised unchanged either way).
        Like ``coordination_owns``, it must not import anything: check ``sys.modules``."""


_reported: set[tuple[str, str]] = set()


def _report_broken(plugin: str, hook: str, exc: Exception) -> None:
    if (plugin, hook) in _reported:
        return
    _reported.add((plugin, hook))
    warnings.warn(
        f"agentdiff-coordination plugin {plugin!r} raised in {hook}() and is skipped whenever it raises "
        f"(reported once): {type(exc).__name__}: {exc}",
        RuntimeWarning,
        stacklevel=5,
    )


def _guarded(fn: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
    """``fn`` answering None (with a warning, once) instead of raising."""

    @functools.wraps(fn)
    def guarded(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # a broken plugin must not stop the others
            _report_broken(plugin, hook, exc)
            return None

    return guarded


def _owner_only(wrap: Callable[..., Any], owns: Callable[..., Any] | None, plugin: str) -> Callable[..., Any]:
    """``wrap`` asked only for objects ``owns`` claims; an owner that answers None is an error."""
    position = list(inspect.signature(wrap).parameters).index("obj")

    @functools.wraps(wrap)
    def owner_only(*args: Any) -> Any:
        obj = args[position]
        if owns is None or not owns(obj):
            return None
        wrapped = wrap(*args)
        if wrapped is None:
            raise TypeError(f"plugin {plugin!r} claimed {obj!r} but its coordination_wrap() returned None")
        return wrapped

    return owner_only


class _Plugin:
    """A plugin as pluggy sees it: its own hooks, ``owns`` and ``passthrough`` guarded, ``wrap``
    asked only for what the plugin owns."""

    def __init__(self, plugin: object, name: str) -> None:
        self.plugin = plugin
        owns = getattr(plugin, "coordination_owns", None)
        for hook in ("coordination_owns", "coordination_passthrough"):
            fn = getattr(plugin, hook, None)
            if fn is not None:
                setattr(self, hook, _guarded(fn, name, hook))
        wrap = getattr(plugin, "coordination_wrap", None)
        if wrap is not None:
            guarded_owns = None if owns is None else _guarded(owns, name, "coordination_owns")
            setattr(self, "coordination_wrap", _owner_only(wrap, guarded_owns, name))


def register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions) as ``name``."""
    proxy = _Plugin(plugin, name)
    try:
        pm.register(proxy, name=name)
    except Exception:
        if pm.is_registered(proxy):  # pluggy keeps the hooks it took before refusing one
            pm.unregister(proxy)
        raise


def _load(pm: pluggy.PluginManager, name: str, where: str, load: Callable[[], object]) -> None:
    """Load and register one plugin; a failure is a warning, never an error."""
    try:
        register(pm, load(), name)
    except Exception as exc:  # a broken plugin must not stop the others
        warnings.warn(
            f"agentdiff-coordination plugin {name!r} ({where}) failed to load and is skipped: "
            f"{type(exc).__name__}: {exc}",
            RuntimeWarning,
            stacklevel=5,
        )


def _make() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(HookSpecs)
    raw = os.environ.get(ENV_DISABLE, "").strip()
    every_third_party = raw.lower() in ("1", "true", "yes", "all")
    if not every_third_party:
        for blocked in filter(None, (part.strip() for part in raw.split(","))):
            pm.set_blocked(blocked)
    for module_name in BUILTIN_ADAPTERS:
        name = module_name.rsplit(".", 1)[-1]
        if not pm.is_blocked(name):
            _load(pm, name, module_name, functools.partial(importlib.import_module, module_name))
    if every_third_party:
        return pm
    from importlib.metadata import entry_points

    for ep in entry_points(group=PROJECT):
        if pm.is_blocked(ep.name):
            continue
        if pm.has_plugin(ep.name):
            warnings.warn(
                f"agentdiff-coordination plugin {ep.name!r} ({ep.value}) is skipped: the name is taken by "
                f"another plugin; set {ENV_DISABLE}={ep.name} to disable that one",
                RuntimeWarning,
                stacklevel=4,
            )
            continue
        _load(pm, ep.name, ep.value, ep.load)
    return pm


_pm: pluggy.PluginManager | None = None
_lock = threading.Lock()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager (made on first use)."""
    global _pm
    pm = _pm
    if pm is None:
        with _lock:
            if _pm is None:
                _pm = _make()
            pm = _pm
    return pm


def wrap_with_plugins(obj: Any, coordinator: Any) -> Any:
    """``obj`` wrapped by the plugin that owns it, or None when no plugin owns it."""
    hook = get_plugin_manager().hook
    if not hook.coordination_owns(obj=obj):
        return None
    return hook.coordination_wrap(obj=obj, coordinator=coordinator)


def is_passthrough(exc: BaseException) -> bool:
    """Whether a plugin calls ``exc`` control flow; never raises."""
    return bool(get_plugin_manager().hook.coordination_passthrough(exc=exc))


def reset_plugins() -> None:
    """Forget the plugin manager (the next use loads the plugins again) and the warnings given."""
    global _pm
    with _lock:
        _pm = None
        _reported.clear()
