"""Optional dependencies: ``require("redis", extra="redis")`` imports a module lazily and,
when it is missing, raises an ``ImportError`` that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["install_hint", "require"]

DISTRIBUTION = "agentdiff-coordination"


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'agentdiff-coordination[redis]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(module: str, *, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module``; when it (or what it needs) is missing, an ``ImportError`` that says
    which ``feature`` needs it and which extra to install, chained to the original error."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = feature or f"the {extra} extra"
        raise ImportError(f"{what} needs {module.split('.')[0]}: {install_hint(extra)} ({exc})") from exc
