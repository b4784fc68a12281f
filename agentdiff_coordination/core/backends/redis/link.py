"""The one connection context of the Redis backend: keys, connections, one retry policy,
one way to run a script, and how Redis errors become ours.

- ``Context.key(*parts)`` names every key: ``PREFIX:kind:NAME``. The prefix holds no
  ``:`` (``check_prefix``) and the kinds are fixed words, so the name is whatever
  follows the second ``:`` and two different (prefix, name) pairs never share a key.
- A ``Link`` is one dedicated connection used by one thread at a time. It sends
  pre-packed commands and reads the replies directly (no pool lookup on the lock path).
  Every command has a read timeout: the caller's deadline when it has one, else
  ``IO_TIMEOUT``; connecting (TLS handshake and ``AUTH`` included) is bounded the same way.
- ``plan(...)`` is the one plan of a command or a script: ``EVALSHA``, the source sent
  once on ``NOSCRIPT``, pauses from ``core.retry.delays`` (with jitter) while the server
  is unreachable and the work is safe to repeat, never past the deadline. ``run`` (a
  thread, on a ``Link``) and ``arun`` (a task, on the loop's asyncio client) drive it.

Errors: a connection refused, lost or timed out, and a server still loading its data,
become ``BackendUnavailableError`` (retried while the work is safe to repeat); a
password the server wants or refuses, and a TLS certificate that fails verification,
are configuration errors (``BackendError``, raised at once, saying what to fix); any
other Redis error is a ``BackendError``. All name the server and what was being done.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...errors import BackendError, BackendUnavailableError
from ...retry import delays
from .scripts import Script

__all__ = ["IO_TIMEOUT", "SLACK", "Context", "Link", "Pauses", "made_once", "arun", "backend_error", "is_unavailable", "plan", "run"]

_pack: Callable[[tuple[Any, ...]], Any] | None
try:  # the C packer redis-py itself uses when hiredis is installed, minus its wrapper
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis is part of the redis extra
    _pack = None

T = TypeVar("T")

#: seconds a command may wait for its reply when its caller has no deadline
IO_TIMEOUT = 10.0
#: seconds a call with a timeout may take beyond it (the last step at its deadline:
#: giving up its place in a queue, or raising the server's error)
SLACK = 0.5
#: attempts after the first of work that is safe to repeat, and the first pause
RETRIES = 5
FIRST_PAUSE = 0.05

#: a step of a plan: a command and its timeout, or a pause in seconds
Step = "tuple[tuple[Any, ...], float | None] | float"


def made_once(owner: object, attr: str, mutex: threading.Lock, make: Callable[[], T]) -> T:
    """``owner.attr``, made by ``make()`` on first use (once, under ``mutex``)."""
    value: T | None = getattr(owner, attr)
    if value is None:
        with mutex:
            value = getattr(owner, attr)
            if value is None:
                value = make()
                setattr(owner, attr, value)
    return value


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 8:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def is_tls_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a TLS certificate or handshake failure (a configuration error)."""
    for e in _chain(exc):
        if isinstance(e, ssl.SSLError) and not isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return True
        tb = e.__traceback__
        while tb is not None:  # no answer to the TLS handshake: the port does not speak TLS
            if tb.tb_frame.f_code.co_name == "do_handshake":
                return True
            tb = tb.tb_next
        text = str(e)
        if "CERTIFICATE_VERIFY_FAILED" in text or "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            return True
    return False


def wants_password(exc: BaseException) -> bool:
    """Whether ``exc`` means the server wants a password (or refused the one given)."""
    text = str(exc)
    return isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError)) or (
        isinstance(exc, rx.ResponseError) and ("NOAUTH" in text or "unauthenticated" in text or "WRONGPASS" in text)
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server could not be reached (worth retrying)."""
    if wants_password(exc) or is_tls_failure(exc):
        return False
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, ConnectionError, OSError, TimeoutError)):
        return True
    if isinstance(exc, rx.ResponseError):
        return str(exc).startswith(("LOADING", "MASTERDOWN", "TRYAGAIN", "BUSY "))
    return False


def _text(exc: BaseException) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__


def backend_error(exc: BaseException, where: str, doing: str) -> BackendError:
    """Our error for a Redis error ``exc`` met while ``doing`` something on server ``where``."""
    if isinstance(exc, BackendError):
        return exc
    if wants_password(exc):
        refused = "WRONGPASS" in str(exc) or "invalid" in str(exc).lower()
        what = "refused the credentials given" if refused else "requires a password (AUTH)"
        return BackendError(
            f"Redis at {where} {what} while {doing}. Give them in the URL: "
            "redis://:PASSWORD@host:port/db, or redis://USER:PASSWORD@host:port/db with an ACL user"
        )
    if is_tls_failure(exc):
        return BackendError(
            f"TLS with Redis at {where} failed while {doing} ({_text(exc)}). This is a configuration "
            "error: check that the server speaks TLS on this port and that its certificate is trusted "
            "(?ssl_ca_certs=/path/ca.pem, or ?ssl_cert_reqs=none to skip verification)"
        )
    if is_unavailable(exc):
        return BackendUnavailableError(
            f"Redis at {where} could not be reached while {doing} ({_text(exc)}). "
            "Check that the server is running and the URL is right; the operation can be retried"
        )
    return BackendError(f"Redis at {where} failed while {doing}: {type(exc).__name__}: {_text(exc)}")


class Pauses:
    """The pauses of a background loop while the server is away: the one policy, unbounded."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """The server answered: the next pause is short again."""
        self._next = delays(FIRST_PAUSE, 1 << 30, cap=1.0, jitter=0.5)

    def next(self) -> float:
        return next(self._next)


class Link:
    """One dedicated connection; not shared between threads."""

    __slots__ = ("_conn", "_make", "_timeout", "io_timeout", "__weakref__")

    def __init__(self, make: Callable[[], Any], io_timeout: float | None = IO_TIMEOUT) -> None:
        self._make = make
        self._conn: Any = None  # a redis-py connection (its methods are untyped)
        self._timeout: float | None = -1.0
        #: the read timeout of a command whose caller gives none (None: wait for ever)
        self.io_timeout = io_timeout

    def _ready(self, timeout: float | None) -> Any:
        if timeout is None:
            timeout = self.io_timeout
        elif timeout < 0.001:
            timeout = 0.001
        conn = self._conn
        if conn is None or conn._sock is None:
            conn = self._conn = self._conn or self._make()
            bound = IO_TIMEOUT if timeout is None else timeout
            conn.socket_connect_timeout = min(conn.socket_connect_timeout or bound, bound)
            conn.socket_timeout = bound  # AUTH, HELLO and the TLS handshake
            self._timeout = -1.0
            conn.connect()
        if timeout != self._timeout:
            conn._sock.settimeout(timeout)
            self._timeout = timeout
        return conn

    def call(self, *args: Any, timeout: float | None = None) -> Any:
        """Send one command and return its reply (a Redis error reply is raised)."""
        conn = self._ready(timeout)
        conn.send_packed_command([_pack(args)] if _pack is not None else conn.pack_command(*args), check_health=False)
        return conn.read_response()

    def pipeline(self, commands: Sequence[Sequence[Any] | bytes], timeout: float | None = None) -> list[Any]:
        """Send several commands (argument lists, or packed already) in one write; their
        replies, an error reply as its exception (the others are not affected)."""
        if not commands:
            return []
        conn = self._ready(timeout)
        packed = [c if isinstance(c, bytes) else pack(c) for c in commands]
        conn.send_packed_command([b"".join(packed)], check_health=False)
        out: list[Any] = []
        for _ in commands:
            try:
                out.append(conn.read_response())
            except rx.ResponseError as exc:
                out.append(exc)
        return out

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any], timeout: float | None = None) -> Any:
        """Run ``script`` once (no retries); a Redis error is raised as it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return run(plan("", "", script, keys, args, deadline=deadline, retry=False, raw=True), self)

    def read(self, timeout: float) -> Any:
        """Read one more reply or push message (pub/sub); None when ``timeout`` passes first."""
        conn = self._ready(None)
        if not conn.can_read(timeout=timeout):
            return None
        return conn.read_response()

    def send(self, *args: Any) -> None:
        """Send a command without reading its reply (pub/sub subscriptions)."""
        conn = self._ready(None)
        conn.send_packed_command([pack(args)], check_health=False)

    def reset(self) -> None:
        """Drop the connection (after an error or an interrupted reply); the next call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:
                pass

    close = reset


def pack(args: Sequence[Any]) -> bytes:
    """One command in the wire format (``UnicodeEncodeError`` for a str that is not UTF-8)."""
    if _pack is not None:
        return bytes(_pack(tuple(args)))
    from redis.connection import Connection  # pragma: no cover - hiredis is part of the redis extra

    return b"".join(Connection().pack_command(*args))  # type: ignore[no-untyped-call]  # pragma: no cover


def plan(
    where: str, doing: str, command: Script | tuple[Any, ...], keys: Sequence[Any] = (), args: Sequence[Any] = (),
    *, deadline: float | None = None, retry: bool = True, raw: bool = False,
) -> Generator[Any, Any, Any]:
    """The one plan of a command or a script: yields ``(command, timeout)`` and takes its
    reply (or the exception), or yields a pause in seconds; returns the reply.

    A script goes as ``EVALSHA`` and once more as ``EVAL`` when the server lacks it. While
    the server is unreachable and ``retry`` (the work is safe to repeat) it is tried again
    after the pauses of ``delays`` (with jitter), never past ``deadline``. Failures are
    raised as our errors naming ``where`` and ``doing`` (as they are when ``raw``).
    """
    pauses = delays(FIRST_PAUSE, RETRIES if retry else 0, jitter=0.5)
    loaded = False
    while True:
        timeout = None if deadline is None else deadline - time.monotonic()
        if isinstance(command, Script):
            head = ("EVAL", command.source) if loaded else ("EVALSHA", command.sha)
            outcome = yield ((*head, len(keys), *keys, *args), timeout)
        else:
            outcome = yield (command, timeout)
        if not isinstance(outcome, BaseException):
            return outcome
        if isinstance(command, Script) and not loaded and isinstance(outcome, rx.NoScriptError):
            loaded = True
            continue
        pause = next(pauses, None) if is_unavailable(outcome) else None
        if pause is None or (deadline is not None and time.monotonic() + pause >= deadline):
            if raw:
                raise outcome
            raise backend_error(outcome, where, doing) from outcome
        yield pause


def run(steps: Generator[Any, Any, T], link: Link) -> T:
    """Drive a plan on a thread's ``link``."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, float):
                time.sleep(step)
                step = steps.send(None)
                continue
            (command, timeout) = step
            try:
                outcome = link.call(*command, timeout=timeout)
            except rx.ResponseError as exc:  # an error reply: the connection is fine
                outcome = exc
            except Exception as exc:
                link.reset()  # a reply may be half read: the next command starts on a fresh connection
                outcome = exc
            step = steps.send(outcome)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun(steps: Generator[Any, Any, T], client: redis.asyncio.Redis) -> T:
    """Drive a plan on the running loop's asyncio client."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, float):
                await asyncio.sleep(step)
                step = steps.send(None)
                continue
            (command, timeout) = step
            try:
                call = client.execute_command(*command)  # type: ignore[no-untyped-call]
                outcome = await uncancelled(call if timeout is None else asyncio.wait_for(call, max(0.001, timeout)))
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                outcome = exc
            step = steps.send(outcome)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def uncancelled(awaitable: Awaitable[T]) -> T:
    """``await awaitable``, raising ``CancelledError`` if the task was cancelled meanwhile.

    On Python 3.11, ``asyncio.wait_for`` (used by redis-py around socket writes, and
    here) returns the result instead of raising when a cancellation arrives just as
    the inner work completes; the task's ``cancelling()`` count still shows it.
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    before = cancelling() if cancelling is not None else 0
    result = await awaitable
    if cancelling is not None and cancelling() > before:
        raise asyncio.CancelledError()
    return result


class Context:
    """The connections of one backend, the names of its keys, and how it runs commands."""

    def __init__(self, redis_url: str, safe_url: str, options: dict[str, Any]) -> None:
        self.safe_url = safe_url
        self.prefix = ""  # set by the backend before first use
        options = {"socket_connect_timeout": 5.0, "health_check_interval": 0, **options}
        options.update(decode_responses=False, protocol=2, retry=Retry(NoBackoff(), 0))  # our retries only
        self._redis_url = redis_url
        self._options = options
        self.pool = redis.ConnectionPool.from_url(redis_url, **options)
        #: a synchronous client on the pool (replies are bytes)
        self.client = redis.Redis(connection_pool=self.pool)
        self._mutex = threading.Lock()
        self.forked()

    def forked(self) -> None:
        """Fresh per-process state (at construction, and in a forked child)."""
        self._local = threading.local()
        self._links: weakref.WeakSet[Link] = weakref.WeakSet()
        self._async: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], redis.asyncio.Redis]] = {}
        self._mutex = threading.Lock()

    # -- names -------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """A key under the prefix: ``key("lock", "db")`` -> ``"agentdiff:lock:db"``."""
        return ":".join((self.prefix, *parts))

    # -- connections -------------------------------------------------------------------
    def new_connection(self) -> Any:
        """A dedicated synchronous connection to the server (not taken from the pool)."""
        pool: Any = self.pool
        return pool.connection_class(**pool.connection_kwargs)

    def new_link(self) -> Link:
        """A ``Link`` of its own (for a background thread)."""
        link = Link(self.new_connection)
        with self._mutex:
            self._links.add(link)
        return link

    def link(self) -> Link:
        """This thread's own link for short commands."""
        link: Link | None = getattr(self._local, "link", None)
        if link is None:
            link = self._local.link = self.new_link()
        return link

    def async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop (one per loop, made on first use)."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(id(loop))
        if entry is not None and entry[0]() is loop:
            return entry[1]
        with self._mutex:
            self._prune(everything=False)
            # a blocking pool: many tasks at once wait for a connection instead of failing
            options = {"max_connections": 256, "timeout": None, **self._options}
            options["retry"] = redis.asyncio.retry.Retry(NoBackoff(), 0)
            pool = redis.asyncio.BlockingConnectionPool.from_url(self._redis_url, **options)
            client = redis.asyncio.Redis.from_pool(pool)  # closing the client closes its pool
            self._async[id(loop)] = (weakref.ref(loop), client)
        return client

    def _prune(self, everything: bool) -> None:
        """Drop the clients of loops that are closed (all of them when ``everything``)."""
        for key, (ref, client) in list(self._async.items()):
            loop = ref()
            if loop is not None and not loop.is_closed() and not everything:
                continue
            del self._async[key]
            if loop is not None and not loop.is_closed() and loop.is_running():
                try:
                    running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    loop.create_task(client.aclose())
                else:
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            else:
                _force_close(client)

    # -- running -----------------------------------------------------------------------
    def error(self, exc: BaseException, doing: str) -> BackendError:
        return backend_error(exc, self.safe_url, doing)

    def run(
        self, doing: str, command: Script | tuple[Any, ...], keys: Sequence[Any] = (), args: Sequence[Any] = (),
        *, deadline: float | None = None, retry: bool = True, link: Link | None = None,
    ) -> Any:
        """A command or script on this thread's link (or ``link``), by the one plan."""
        steps = plan(self.safe_url, doing, command, keys, args, deadline=deadline, retry=retry)
        return run(steps, link or self.link())

    async def arun(
        self, doing: str, command: Script | tuple[Any, ...], keys: Sequence[Any] = (), args: Sequence[Any] = (),
        *, deadline: float | None = None, retry: bool = True,
    ) -> Any:
        """A command or script on the running loop's client, by the one plan."""
        steps = plan(self.safe_url, doing, command, keys, args, deadline=deadline, retry=retry)
        return await arun(steps, self.async_client())

    def close(self) -> None:
        with self._mutex:
            self._prune(everything=True)
            links = list(self._links)
        for link in links:
            link.close()
        self.pool.disconnect()


def _force_close(client: redis.asyncio.Redis) -> None:
    """Close the sockets of a client whose event loop is gone, quietly (no loop to do it)."""
    pool: Any = client.connection_pool
    conns = list(getattr(pool, "_available_connections", ())) + list(getattr(pool, "_in_use_connections", ()))
    for conn in conns:
        writer = getattr(conn, "_writer", None)
        if writer is None:
            continue
        transport = writer.transport
        sock = getattr(transport, "_sock", None)
        try:
            if sock is not None:
                sock.close()
                transport._sock = None
        except Exception:
            pass
        conn._writer = conn._reader = None
