"""The plugin API for adapters: ``hookimpl`` marks an adapter's hook implementations.

The hooks themselves are specified in ``agentdiff_coordination.core.plugins``
(``coordination_owns``, ``coordination_wrap``, ``coordination_passthrough``); this module
is where adapters, built-in and third-party, import the marker from.
"""

from ..core.plugins import PROJECT, HookSpecs, hookimpl, hookspec

__all__ = ["PROJECT", "HookSpecs", "hookimpl", "hookspec"]
