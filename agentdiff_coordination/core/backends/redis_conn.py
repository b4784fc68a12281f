"""Connections of the Redis backend, and how Redis errors become ours.

A ``Link`` is one dedicated connection used by one thread at a time (each thread
that takes locks has its own, and each background thread has one). It sends
pre-packed commands and reads the replies directly: no pool lookup and no
per-command machinery on the lock path, so a lock step costs one round trip and
little else. Scripts go out as ``EVALSHA`` and are loaded again on ``NOSCRIPT``
(after a Redis restart, for instance).

Errors: a connection refused, lost or timed out, and a server still loading its
data after a restart, become ``BackendUnavailableError``; a refused password or
any other Redis error becomes ``BackendError``. Both name the server and what was
being done, and keep the original error as ``__cause__``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis import exceptions as rx

from ..errors import BackendError, BackendUnavailableError
from .redis_lua import Script

if TYPE_CHECKING:
    from redis.connection import AbstractConnection

__all__ = ["Link", "backend_error", "is_unavailable", "with_retries"]

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # the C packer redis-py itself uses when hiredis is installed, minus its wrapper
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis is part of the redis extra
    _pack = None

T = TypeVar("T")

#: pauses between attempts of an operation that is safe to repeat
RETRY_PAUSES = (0.05, 0.2, 0.5)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server could not be reached (worth retrying)."""
    if isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError)):
        return False
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, ConnectionError, OSError)):
        return True
    if isinstance(exc, rx.ResponseError):
        msg = str(exc)
        return msg.startswith(("LOADING", "MASTERDOWN", "TRYAGAIN"))
    return False


def backend_error(exc: BaseException, where: str, doing: str) -> BackendError:
    """Our error for a Redis error ``exc`` met while ``doing`` something on server ``where``."""
    if isinstance(exc, BackendError):
        return exc
    if is_unavailable(exc):
        return BackendUnavailableError(
            f"Redis at {where} could not be reached while {doing}: {exc}. "
            "Check that the server is running and the URL is right; the operation can be retried."
        )
    if isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError)):
        return BackendError(
            f"Redis at {where} refused the credentials while {doing}: {exc}. "
            "Put the right user and password in the URL (redis://user:password@host:port/db)."
        )
    return BackendError(f"Redis at {where} failed while {doing}: {type(exc).__name__}: {exc}")


def with_retries(fn: Callable[[], T], where: str, doing: str, pauses: Sequence[float] = RETRY_PAUSES) -> T:
    """``fn()``, repeated after short pauses while the server is unreachable (for idempotent work)."""
    for pause in (*pauses, None):
        try:
            return fn()
        except Exception as exc:
            if pause is None or not is_unavailable(exc):
                raise backend_error(exc, where, doing) from exc
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


class Link:
    """One dedicated connection; not shared between threads."""

    __slots__ = ("_conn", "_make", "__weakref__")

    def __init__(self, make: Callable[[], AbstractConnection]) -> None:
        self._make = make
        self._conn: Any = None  # a redis-py connection (its methods are untyped)

    @property
    def conn(self) -> Any:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._make()
        return conn

    def call(self, *args: Any) -> Any:
        """Send one command and return its reply (a Redis error reply is raised)."""
        conn = self.conn
        conn.send_packed_command([_pack(args)] if _pack is not None else conn.pack_command(*args), check_health=False)
        return conn.read_response()

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` (``EVALSHA``; sends the source when the server lacks it)."""
        try:
            return self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except rx.NoScriptError:
            return self.call("EVAL", script.source, len(keys), *keys, *args)

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send several commands in one write; their replies, an error reply as its exception."""
        if not commands:
            return []
        conn = self.conn
        if _pack is not None:
            packed = [b"".join([_pack(tuple(c)) for c in commands])]
        else:
            packed = conn.pack_commands(commands)
        conn.send_packed_command(packed, check_health=False)
        out: list[Any] = []
        for _ in commands:
            try:
                out.append(conn.read_response())
            except rx.ResponseError as exc:
                out.append(exc)
        return out

    def read(self, timeout: float | None = None) -> Any:
        """Read one more reply or push message (pub/sub); None when ``timeout`` passes first."""
        conn = self.conn
        if timeout is not None and not conn.can_read(timeout=timeout):
            return None
        return conn.read_response()

    def send(self, *args: Any) -> None:
        """Send a command without reading its reply (pub/sub subscriptions)."""
        conn = self.conn
        conn.send_packed_command(conn.pack_command(*args), check_health=False)

    def reset(self) -> None:
        """Drop the connection (after an error or an interrupted reply); the next call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:
                pass

    close = reset
