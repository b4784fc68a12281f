"""The spellings of the 0.1 package, kept working with a ``DeprecationWarning``.

``configure_broker("redis", redis_url=...)`` and ``configure_broker("inmemory")`` map to
``configure(url)``; ``configure_broker("file")`` is refused: 0.1 kept events in a local
file, which coordinated nothing across machines and lost events under concurrent writers.
``docs/migrating-from-0.1.md`` lists every change.
"""

from __future__ import annotations

import warnings
from typing import Any

from .backends.base import Backend
from .runtime import configure

__all__ = ["configure_broker"]

_NAMES = {"inmemory": "memory://", "memory": "memory://"}


def configure_broker(backend: Backend | str | None = None, **options: Any) -> None:
    """``configure`` under its 0.1 name; also takes the 0.1 forms ``configure_broker("redis",
    redis_url=...)`` and ``configure_broker("inmemory")`` (with a ``DeprecationWarning``)."""
    if isinstance(backend, str) and "://" not in backend:
        kind = backend.strip().lower()
        if kind == "file":
            raise ValueError(
                "configure_broker('file'): there is no file backend; 0.1 kept events in a local file, which "
                "coordinated nothing across machines and lost events under concurrent writers. Use "
                "configure('memory://') for one process or configure('redis://host:6379/0') for several"
            )
        if kind == "redis":
            url = options.pop("redis_url", None) or "redis://localhost:6379/0"
            _deprecated(f"configure_broker('redis', redis_url=...) is the 0.1 spelling; write configure({url!r})")
            backend = url
        elif kind in _NAMES:
            backend = _NAMES[kind]
            _deprecated(f"configure_broker({kind!r}) is the 0.1 spelling; write configure({backend!r})")
    configure(backend, **options)


def _deprecated(message: str) -> None:
    warnings.warn(message, DeprecationWarning, stacklevel=3)
