"""Configuration: which backend, and the few options that tune the core.

Nothing happens at import. The backend is made on first use, from ``configure(...)``
if it was called, else from the environment:

``AGENTDIFF_COORDINATION_BACKEND``     backend URL: ``memory://`` (default), ``redis://host:port/db``,
                                       ``rediss://...`` (TLS), ``unix:///path/redis.sock``
``AGENTDIFF_COORDINATION_LOG_LEVEL``   level of the ``agentdiff_coordination`` logger (``DEBUG``, ``INFO``, ...)
``AGENTDIFF_COORDINATION_EXIT_DRAIN``  seconds the interpreter waits at exit for pending handlers (default 10)
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, fields, replace
from collections.abc import Callable
from typing import Any

from .backends.base import Backend, LockGrant
from .errors import LeaseLostError

__all__ = ["Settings", "configure", "configure_broker", "get_backend", "reset_backend", "settings"]

logger = logging.getLogger("agentdiff_coordination")

ENV_BACKEND = "AGENTDIFF_COORDINATION_BACKEND"
ENV_LOG_LEVEL = "AGENTDIFF_COORDINATION_LOG_LEVEL"
ENV_EXIT_DRAIN = "AGENTDIFF_COORDINATION_EXIT_DRAIN"


@dataclass(frozen=True)
class Settings:
    """The options of the core; change them with ``configure(**options)``."""

    #: attempts after the first when a handler raises
    handler_retries: int = 2
    #: seconds before the first retry; doubles with each further retry
    retry_delay: float = 0.05
    #: most handler worker threads at once (more are queued, never dropped)
    handler_threads: int = 64
    #: seconds the interpreter waits at exit for handlers still pending
    exit_drain_timeout: float = 10.0
    #: dead letters kept for ``dead_letters()`` (older ones are dropped with a warning)
    dead_letter_limit: int = 1000
    #: seconds a distributed lock's lease lasts before it must be renewed
    lease: float = 30.0
    #: prefix of every key a shared backend writes
    key_prefix: str = "agentdiff"
    #: called as ``callback(grant, error)`` when a distributed lease is lost while held
    on_lease_lost: Callable[[LockGrant, LeaseLostError], None] | None = None


_NONNEG_FLOATS = {"retry_delay", "exit_drain_timeout"}
_POSITIVE_FLOATS = {"lease"}
_NONNEG_INTS = {"handler_retries"}
_POSITIVE_INTS = {"handler_threads", "dead_letter_limit"}

_lock = threading.Lock()
_settings: Settings | None = None
_backend: Backend | None = None
_backend_spec: Backend | str | None = None


def _env_settings() -> Settings:
    s = Settings()
    raw = os.environ.get(ENV_EXIT_DRAIN)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{ENV_EXIT_DRAIN}={raw!r} is not a number of seconds") from None
        s = replace(s, **_validated({"exit_drain_timeout": value}))
    level = os.environ.get(ENV_LOG_LEVEL)
    if level:
        if not isinstance(logging.getLevelName(level.upper()), int):
            raise ValueError(f"{ENV_LOG_LEVEL}={level!r} is not a logging level (DEBUG, INFO, WARNING, ERROR)")
        logger.setLevel(level.upper())
    return s


def settings() -> Settings:
    """The settings in force."""
    global _settings
    s = _settings
    if s is None:
        with _lock:
            if _settings is None:
                _settings = _env_settings()
            s = _settings
    return s


def _validated(options: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(Settings)}
    for key, value in options.items():
        if key not in known:
            raise TypeError(f"configure() got an unknown option {key!r}; known options: {', '.join(sorted(known))}")
        if key in _NONNEG_FLOATS | _POSITIVE_FLOATS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{key} must be a number of seconds, not {value!r}")
            if value < 0 or (key in _POSITIVE_FLOATS and value == 0):
                raise ValueError(f"{key} must be {'positive' if key in _POSITIVE_FLOATS else '>= 0'}, not {value!r}")
        elif key in _NONNEG_INTS | _POSITIVE_INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{key} must be an int, not {value!r}")
            if value < 0 or (key in _POSITIVE_INTS and value == 0):
                raise ValueError(f"{key} must be {'positive' if key in _POSITIVE_INTS else '>= 0'}, not {value!r}")
        elif key == "key_prefix" and (not isinstance(value, str) or not value):
            raise ValueError(f"key_prefix must be a non-empty string, not {value!r}")
        elif key == "on_lease_lost" and value is not None and not callable(value):
            raise TypeError(f"on_lease_lost must be a callable(grant, error) or None, not {value!r}")
    return options


def backend_from_url(url: str) -> Backend:
    """Make a backend from its URL; an unknown scheme is a ``ValueError``."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"backend URL must be a non-empty string such as 'memory://' or 'redis://localhost:6379/0', not {url!r}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        from .backends.memory import MemoryBackend

        return MemoryBackend(url)
    if scheme in ("redis", "rediss", "unix"):
        try:
            from .backends.redis import RedisBackend
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"the Redis backend needs redis-py: pip install 'agentdiff-coordination[redis]' ({exc})"
            ) from exc
        return RedisBackend(url)
    raise ValueError(
        f"unknown backend URL {url!r}: expected 'memory://', 'redis://host:port/db', 'rediss://...' or 'unix:///path'"
    )


def configure(backend: Backend | str | None = None, **options: Any) -> None:
    """Choose the backend (a URL or a ``Backend``) and set options of the core.

    Call it before the first lock or event, or between runs: switching backends
    while locks are held on the old one leaves those holders on the old backend.
    """
    global _settings, _backend, _backend_spec
    if backend is not None and not isinstance(backend, (str, Backend)):
        raise TypeError(f"backend must be a URL string or a Backend instance, not {type(backend).__name__}")
    new_backend = backend_from_url(backend) if isinstance(backend, str) else backend
    _validated(options)
    with _lock:
        if options:
            _settings = replace(_settings or _env_settings(), **options)
        if new_backend is not None:
            old, _backend, _backend_spec = _backend, None, new_backend
            _detach_bus()
        else:
            old = None
    if old is not None:
        old.close()


def _detach_bus() -> None:
    """Under ``_lock``: the bus forgets the backend it used; it attaches to the next one on use."""
    from . import events

    b = events._bus
    if b is not None:
        b._backend = None


configure_broker = configure


def get_backend() -> Backend:
    """The backend in force, made on first use."""
    global _backend, _backend_spec
    b = _backend
    if b is not None:
        return b
    with _lock:
        if _backend is None:
            spec = _backend_spec
            if spec is None:
                env = os.environ.get(ENV_BACKEND)
                try:
                    spec = backend_from_url(env or "memory://")
                except ValueError as exc:
                    raise ValueError(f"{ENV_BACKEND}={env!r}: {exc}") from None
            made = backend_from_url(spec) if isinstance(spec, str) else spec
            from . import events

            _backend = made
            events.bus().attach(made)
        return _backend


def reset_backend() -> None:
    """Close and forget the backend; the next use makes one from the environment.
    Options set with ``configure`` are kept."""
    global _backend, _backend_spec
    with _lock:
        old, _backend, _backend_spec = _backend, None, None
        _detach_bus()
    if old is not None:
        old.close()


def _reset_for_tests() -> None:
    """Forget the backend and settings (test helper)."""
    global _settings
    reset_backend()
    with _lock:
        _settings = None
