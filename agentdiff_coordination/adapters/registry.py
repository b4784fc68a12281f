"""The plugin manager: built-in adapters first, then entry points, loaded once, lazily.

The plugins are loaded the first time ``coordinate(...)`` is applied (or a coordinated
step raises), never at import. Set ``AGENTDIFF_COORDINATION_DISABLE_PLUGINS`` to ``1``
(every third-party plugin) or to a comma-separated list of plugin names (entry-point
names, or ``langgraph``, ``crewai``, ``autogen`` for the built-ins) to skip them. A
plugin that fails to load, or whose hook raises, is reported with a ``RuntimeWarning``
and the others still work.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy
from pluggy import HookImpl

from . import hookspecs

if TYPE_CHECKING:
    from ..core.coordinate import Coordinator

__all__ = ["BUILTIN_ADAPTERS", "ENV_DISABLE", "get_plugin_manager", "is_passthrough", "wrap_with_plugins"]

ENV_DISABLE = "AGENTDIFF_COORDINATION_DISABLE_PLUGINS"

#: modules of the adapters shipped with the package, registered like any plugin
BUILTIN_ADAPTERS: tuple[str, ...] = (
    "agentdiff_coordination.adapters.langgraph",
    "agentdiff_coordination.adapters.crewai",
    "agentdiff_coordination.adapters.autogen",
)

_pm: pluggy.PluginManager | None = None
_lock = threading.Lock()
_reported: set[tuple[int, str]] = set()


def _disabled() -> tuple[bool, set[str]]:
    raw = os.environ.get(ENV_DISABLE, "").strip()
    if raw.lower() in ("1", "true", "yes", "all"):
        return True, set()
    return False, {part.strip() for part in raw.split(",") if part.strip()}


def _register(pm: pluggy.PluginManager, name: str, where: str, load: Callable[[], object]) -> None:
    """Load and register one plugin; a failure is a warning, never an error."""
    try:
        plugin = load()
        try:
            pm.register(plugin, name=name)
        except Exception:
            if pm.is_registered(plugin):  # pluggy keeps what it registered before refusing a hook
                pm.unregister(plugin)
            raise
    except Exception as exc:  # a broken plugin must not stop the others
        warnings.warn(
            f"agentdiff-coordination plugin {name!r} ({where}) failed to load and is skipped: "
            f"{type(exc).__name__}: {exc}",
            RuntimeWarning,
            stacklevel=4,
        )


def _make() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    all_off, names_off = _disabled()
    for module_name in BUILTIN_ADAPTERS:
        name = module_name.rsplit(".", 1)[-1]
        if name not in names_off:
            _register(pm, name, module_name, functools.partial(importlib.import_module, module_name))
    if all_off:
        return pm
    from importlib.metadata import entry_points

    for ep in entry_points(group=hookspecs.PROJECT):
        if ep.name in names_off:
            continue
        if pm.has_plugin(ep.name):
            warnings.warn(
                f"agentdiff-coordination plugin {ep.name!r} ({ep.value}) is skipped: the name is taken by "
                f"another plugin; set {ENV_DISABLE}={ep.name} to disable that one",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        _register(pm, ep.name, ep.value, ep.load)
    return pm


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


def _call(impl: HookImpl, **kwargs: Any) -> Any:
    """Call one hook implementation with the arguments it asks for."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def _report_broken(impl: HookImpl, hook: str, exc: Exception) -> None:
    """Warn once per plugin and hook that a plugin's hook raised; it is skipped from then on."""
    key = (id(impl.plugin), hook)
    if key in _reported:
        return
    _reported.add(key)
    warnings.warn(
        f"agentdiff-coordination plugin {impl.plugin_name!r} raised in {hook}() and is skipped whenever it raises (reported once): "
        f"{type(exc).__name__}: {exc}",
        RuntimeWarning,
        stacklevel=4,
    )


def wrap_with_plugins(obj: Any, coordinator: Coordinator) -> Any:
    """``obj`` wrapped by the first plugin that owns it, or None when no plugin owns it.

    Plugins are asked in pluggy's order (the last registered first, third-party before
    built-in); only the owner is asked to wrap. A plugin whose ``coordination_owns``
    raises is reported with a warning and skipped; what ``coordination_wrap`` raises
    reaches the caller (the plugin claimed the object).
    """
    pm = get_plugin_manager()
    for impl in reversed(pm.hook.coordination_owns.get_hookimpls()):
        try:
            owned = _call(impl, obj=obj)
        except Exception as exc:  # a broken plugin must not stop the others
            _report_broken(impl, "coordination_owns", exc)
            continue
        if not owned:
            continue
        for wrap in reversed(pm.hook.coordination_wrap.get_hookimpls()):
            if wrap.plugin is impl.plugin:
                wrapped = _call(wrap, obj=obj, coordinator=coordinator)
                if wrapped is None:
                    raise TypeError(
                        f"plugin {impl.plugin_name!r} claimed {obj!r} but its coordination_wrap() returned None"
                    )
                return wrapped
        raise TypeError(f"plugin {impl.plugin_name!r} claimed {obj!r} but implements no coordination_wrap()")
    return None


def is_passthrough(exc: BaseException) -> bool:
    """Whether a plugin calls ``exc`` control flow (``NAME_interrupted``, not ``NAME_failed``).

    Never raises: a plugin whose hook raises is reported with a warning and skipped.
    """
    for impl in reversed(get_plugin_manager().hook.coordination_passthrough.get_hookimpls()):
        try:
            if _call(impl, exc=exc):
                return True
        except Exception as error:
            _report_broken(impl, "coordination_passthrough", error)
    return False


def _reset_for_tests() -> None:
    global _pm
    with _lock:
        _pm = None
        _reported.clear()
