"""The plugin manager: built-in adapters first, then entry points, loaded once, lazily.

Set ``AGENTDIFF_COORDINATION_DISABLE_PLUGINS`` to ``1`` (all third-party plugins) or to
a comma-separated list of plugin names to skip them. A plugin that fails to load is
reported with a warning and the others still load.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs

if TYPE_CHECKING:
    from ..core.coordinate import Coordinator

__all__ = ["BUILTIN_ADAPTERS", "ENV_DISABLE", "get_plugin_manager", "wrap_with_plugins"]

ENV_DISABLE = "AGENTDIFF_COORDINATION_DISABLE_PLUGINS"

#: modules of the adapters shipped with the package, registered like any plugin
BUILTIN_ADAPTERS: tuple[str, ...] = (
    "agentdiff_coordination.adapters.langgraph",
    "agentdiff_coordination.adapters.crewai",
    "agentdiff_coordination.adapters.autogen",
)

_pm: pluggy.PluginManager | None = None
_lock = threading.Lock()


def _disabled() -> tuple[bool, set[str]]:
    raw = os.environ.get(ENV_DISABLE, "").strip()
    if raw.lower() in ("1", "true", "yes", "all"):
        return True, set()
    return False, {part.strip() for part in raw.split(",") if part.strip()}


def _make() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_ADAPTERS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name.rsplit(".", 1)[-1])
    all_off, names_off = _disabled()
    if all_off:
        return pm
    from importlib.metadata import entry_points

    for ep in entry_points(group=hookspecs.PROJECT):
        if ep.name in names_off or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not stop the others
            warnings.warn(
                f"agentdiff-coordination plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
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


def wrap_with_plugins(obj: Any, coordinator: Coordinator) -> Any:
    """``obj`` wrapped by the first plugin that owns it, or None."""
    hook = get_plugin_manager().hook
    if not hook.coordination_owns(obj=obj):
        return None
    wrapped = hook.coordination_wrap(obj=obj, coordinator=coordinator)
    if wrapped is None:
        raise TypeError(f"an adapter claimed {obj!r} but returned nothing when asked to wrap it")
    return wrapped


def _reset_for_tests() -> None:
    global _pm
    with _lock:
        _pm = None
