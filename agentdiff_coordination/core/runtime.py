"""The runtime: the one owner of the settings, the backend in force and the bus.

Nothing happens at import but making the (idle) bus. The backend is made on first use,
from ``configure(...)`` if it was called, else from the environment:

``AGENTDIFF_COORDINATION_BACKEND``     backend URL: ``memory://`` (default), ``redis://host:port/db``,
                                       ``rediss://...`` (TLS), ``unix:///path/redis.sock``
``AGENTDIFF_COORDINATION_LOG_LEVEL``   level of the ``agentdiff_coordination`` logger (``DEBUG``, ``INFO``, ...)
``AGENTDIFF_COORDINATION_EXIT_DRAIN``  seconds the interpreter waits at exit for pending handlers (default 10)

Every setting is checked where it is given (an argument of ``configure``, a URL option,
an environment variable); after a refused ``configure`` the previous backend and
settings stay in force. A forked child starts with a fresh bus and its backend's own
per-process state.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from .backends.base import Backend, BackendDefaults
from .bus import Bus
from .extras import require
from .settings import ENV_BACKEND, Settings, check_options, from_environment, log_level_from_environment

__all__ = ["RUNTIME", "Runtime", "backend_from_url", "configure", "get_backend", "reset_backend", "settings"]

logger = logging.getLogger("agentdiff_coordination")

BACKEND_URLS = "'memory://', 'redis://host:port/db', 'rediss://...' (TLS) or 'unix:///path/to/redis.sock'"


def backend_from_url(url: str) -> Backend:
    """Make a backend from its URL; an unknown scheme is a ``ValueError`` naming the accepted ones."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"backend URL must be a non-empty string such as {BACKEND_URLS}, not {url!r}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        from .backends.memory import MemoryBackend

        return MemoryBackend(url)
    if scheme in ("redis", "rediss", "unix"):
        module = require("agentdiff_coordination.core.backends.redis", extra="redis", feature="the Redis backend")
        backend: Backend = module.RedisBackend(url)
        return backend
    raise ValueError(f"unknown backend URL {url!r}: expected {BACKEND_URLS}")


class Runtime:
    """The state of the process: settings, the backend in force, the bus.

    ``current`` is the backend in force, or None until first use (read it, never set
    it: ``configure`` and ``backend()`` do). ``bus`` is the process's one bus.
    """

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._settings: Settings | None = None
        self._spec: Backend | str | None = None  # what configure() chose, made on first use
        self.current: Backend | None = None
        self.bus = Bus(self.backend, self.settings)
        self._settings_callbacks: list[Callable[[Settings], None]] = []

    # -- settings ------------------------------------------------------------------
    def settings(self) -> Settings:
        """The settings in force (defaults, the environment, then ``configure``)."""
        s = self._settings
        if s is None:
            with self._mutex:
                if self._settings is None:
                    self._settings = self._from_environment()
                    self._applied(self._settings)
                s = self._settings
        return s

    def on_settings(self, callback: Callable[[Settings], None]) -> None:
        """Run ``callback(settings)`` whenever the settings in force are made or changed
        (the layers above act on their options this way: recording, OpenTelemetry)."""
        self._settings_callbacks.append(callback)
        if self._settings is not None:
            callback(self._settings)

    def _applied(self, settings: Settings) -> None:
        for callback in self._settings_callbacks:
            callback(settings)

    @staticmethod
    def _from_environment() -> Settings:
        s = from_environment()
        level = log_level_from_environment()
        if level is not None:
            logger.setLevel(level)
        return s

    def defaults(self) -> BackendDefaults:
        """What a backend takes from the settings when its URL does not say."""
        s = self.settings()
        return BackendDefaults(
            key_prefix=s.key_prefix,
            lease=s.lease,
            on_lease_lost=s.on_lease_lost,
            exit_flush=s.exit_drain_timeout,
            max_pending=s.max_pending,
            pending_timeout=s.pending_timeout,
        )

    # -- the backend -----------------------------------------------------------------
    def backend(self) -> Backend:
        """The backend in force, made on first use."""
        b = self.current
        if b is not None:
            return b
        with self._mutex:
            if self.current is None:
                spec = self._spec
                if spec is None:
                    env = os.environ.get(ENV_BACKEND)
                    try:
                        spec = backend_from_url(env or "memory://")
                    except ValueError as exc:
                        raise ValueError(f"{ENV_BACKEND}={env!r}: {exc}") from None
                made = backend_from_url(spec) if isinstance(spec, str) else spec
                made.attach(self.bus, self.defaults())
                self.bus.attach(made)
                self.current = made
            return self.current

    def configure(self, backend: Backend | str | None = None, **options: Any) -> None:
        """Choose the backend (a URL or a ``Backend``) and set options; all checked before
        anything changes, so a refused call leaves the previous configuration in force."""
        if backend is not None and not isinstance(backend, (str, Backend)):
            raise TypeError(f"backend must be a URL string or a Backend instance, not {type(backend).__name__}")
        current = self.settings()  # the environment is checked here too, not at the first emit
        checked = check_options(options)
        new_settings = current.replace(**checked) if checked else None
        new_backend = backend_from_url(backend) if isinstance(backend, str) else backend
        old = None
        with self._mutex:
            if new_settings is not None:
                self._applied(new_settings)  # may refuse (a missing extra): nothing changed then
                self._settings = new_settings
            if new_backend is not None:
                old, self.current, self._spec = self.current, None, new_backend
                self.bus.detach()
            elif new_settings is not None and self.current is not None:
                self.current.attach(self.bus, self.defaults())
        if old is not None and old is not new_backend:
            old.close()

    def reset_backend(self) -> None:
        """Close and forget the backend; the next use makes one from the environment.
        Options set with ``configure`` are kept."""
        with self._mutex:
            old, self.current, self._spec = self.current, None, None
            self.bus.detach()
        if old is not None:
            old.close()

    # -- resets ------------------------------------------------------------------------
    def reset(self, drain_timeout: float = 5.0) -> None:
        """Back to a fresh process, for tests: pending handlers drained (bounded), every
        subscription and dead letter dropped, the backend closed, settings forgotten
        (``testing.reset()`` also forgets what the layers above keep)."""
        self.bus.reset(drain_timeout)
        self.reset_backend()
        with self._mutex:
            self._settings = None
            self._applied(Settings())  # recording and tracing stop; the environment applies at next use

    def after_fork(self) -> None:
        """In a forked child: a fresh mutex and bus state (the backend restarts its own)."""
        self._mutex = threading.RLock()
        self.bus.after_fork()


RUNTIME = Runtime()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RUNTIME.after_fork)

settings = RUNTIME.settings
get_backend = RUNTIME.backend
configure = RUNTIME.configure
reset_backend = RUNTIME.reset_backend
