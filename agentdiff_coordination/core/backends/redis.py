"""The Redis backend: the same locks, limits and events across processes and machines.

``configure("redis://host:6379/0")`` (or ``AGENTDIFF_COORDINATION_BACKEND``) makes
every lock, limit and event shared through one Redis server. The URL takes what
redis-py takes (``redis://user:password@host:port/db``, ``rediss://`` for TLS with
``ssl_cert_reqs``/``ssl_ca_certs``..., ``unix:///path/redis.sock?db=0``) plus these
options of ours, in the query string or as keywords of ``RedisBackend``:

``prefix``          key prefix (default: the ``key_prefix`` setting, ``"agentdiff"``);
                    apps with different prefixes share one Redis without meeting
``lease``           seconds of a lock lease (default: the ``lease`` setting, 30)
``max_deliveries``  deliveries of one event to one subscription before it goes to the
                    dead-letter stream ``PREFIX:events:dead`` (default 5)
``consumer_ttl``    seconds after which a silent process counts as gone and its events
                    are taken over by the others (default 10)

Locks live in ``redis_locks`` (leases, fencing, watchdog, hand-offs), events in
``redis_events`` and ``redis_consumers`` (Streams, consumer groups), the Lua scripts
in ``redis_lua``, the wire format of events in ``redis_codec``.

For code built on this backend (the limit store, ``redis_limits``):

- ``backend.client``: a synchronous ``redis.Redis`` on the backend's connection pool
  (replies are ``bytes``);
- ``backend.async_client()``: a ``redis.asyncio.Redis`` for the running event loop,
  one per loop, made on first use and closed with the backend;
- ``backend.key(*parts)``: a key under the backend's prefix,
  ``key("limit", name)`` -> ``"agentdiff:limit:NAME"``;
- ``backend.new_connection()``: a dedicated synchronous connection (not pooled);
- ``backend.link()``: this thread's own ``redis_conn.Link`` for short commands and scripts;
- ``backend.retrying(doing, fn)``: ``fn(link)`` retried briefly while Redis is unreachable,
  its failures raised as our errors naming ``doing`` (for work that is safe to repeat);
- ``backend.safe_url``: the URL without its password, for messages;
- ``redis_conn.backend_error(exc, backend.safe_url, doing)``: our error for a Redis error;
- ``backend.limit_store()``: the ``RedisLimitStore`` (``redis_limits``), made on first use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio

from .. import config as _config
from ..errors import CoordinationError, LeaseLostError
from .base import Backend, LockGrant
from .redis_conn import RETRY_PAUSES, Link, backend_error, is_unavailable
from .redis_events import RedisEvents
from .redis_locks import RedisLockGrant, RedisLocks

if TYPE_CHECKING:
    from redis.connection import AbstractConnection

    from ..events import Event, Subscription
    from .redis_limits import RedisLimitStore

__all__ = ["RedisBackend", "RedisLockGrant"]

logger = logging.getLogger("agentdiff_coordination")

T = TypeVar("T")

LeaseLostCallback = Callable[[RedisLockGrant, LeaseLostError], Any]

_OUR_OPTIONS = {"prefix", "key_prefix", "lease", "max_deliveries", "consumer_ttl"}


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Redis backend option {name} must be a positive number, not {value!r}") from None
    if not number > 0:
        raise ValueError(f"Redis backend option {name} must be positive, not {value!r}")
    return number


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL for redis-py, and our own options taken out of its query string."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (ours.__setitem__(key, value) if key in _OUR_OPTIONS else kept.append((key, value)))
    return urlunsplit(parts._replace(query=urlencode(kept))), ours


def _safe(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return urlunsplit(parts._replace(query=""))
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}", query=""))


class RedisBackend(Backend):
    """Locks, limits and events shared by every process that uses the same Redis and prefix."""

    shared = True
    nonblocking_release = False

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        key_prefix: str | None = None,
        lease: float | None = None,
        max_deliveries: int | None = None,
        consumer_ttl: float | None = None,
        on_lease_lost: LeaseLostCallback | None = None,
        exit_flush: float = 10.0,
        **redis_options: Any,
    ) -> None:
        if not isinstance(url, str) or "://" not in url:
            raise ValueError(f"Redis URL must look like 'redis://host:6379/0', not {url!r}")
        self.url = url
        self.safe_url = _safe(url)
        self._redis_url, ours = _split_url(url)
        prefix = key_prefix or ours.get("prefix") or ours.get("key_prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise ValueError(f"key prefix must be a non-empty string, not {prefix!r}")
        self._prefix: str | None = prefix
        raw_lease = lease if lease is not None else ours.get("lease")
        self._lease = None if raw_lease is None else _positive("lease", raw_lease)
        deliveries = max_deliveries if max_deliveries is not None else ours.get("max_deliveries", 5)
        self.max_deliveries = int(_positive("max_deliveries", deliveries))
        self.consumer_ttl = _positive("consumer_ttl", consumer_ttl if consumer_ttl is not None
                                      else ours.get("consumer_ttl", 10))
        self.exit_flush = exit_flush
        self.on_lease_lost = on_lease_lost
        options: dict[str, Any] = {"socket_connect_timeout": 5.0, "health_check_interval": 0}
        options.update(redis_options)
        options["decode_responses"] = False
        options["protocol"] = 2  # the replies the scripts and stream readers parse
        self._redis_options = options
        self._pool = redis.ConnectionPool.from_url(self._redis_url, **options)
        #: a synchronous client on the backend's pool (replies are bytes)
        self.client = redis.Redis(connection_pool=self._pool)
        self._mutex = threading.Lock()
        self._async_clients: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], redis.asyncio.Redis]] = {}
        self._limit_store: RedisLimitStore | None = None
        self._closed = False
        self._start()
        ref = weakref.ref(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _restart_in_child(ref))

    def _start(self, forked: bool = False) -> None:
        """Fresh per-process state (at construction, and in a forked child)."""
        #: this process's name towards Redis (consumer name, wake channel)
        self.host = socket.gethostname()
        self.process_id = f"{self.host}:{os.getpid()}:{secrets.token_hex(3)}"
        self.pid = os.getpid()
        if forked:
            self._async_clients = {}
            self._mutex = threading.Lock()
        self._local = threading.local()
        self._links: weakref.WeakSet[Link] = weakref.WeakSet()
        self._locks = RedisLocks(self)
        self._events = RedisEvents(self)
        bus = getattr(self, "_bus", None)
        if forked and bus is not None and bus.subscriptions() and not self._closed:
            # the child keeps the parent's subscriptions: read their groups from here too
            threading.Thread(target=self._resubscribe, args=(bus.subscriptions(),),
                             name="agentdiff-redis-resubscribe", daemon=True).start()

    def _resubscribe(self, subs: list[Subscription]) -> None:
        for sub in subs:
            try:
                self._events.subscribe(sub)
            except Exception as exc:
                logger.error("could not subscribe %r again in this forked process: %s", sub, exc)

    # -- what the other modules build on ---------------------------------------------
    @property
    def prefix(self) -> str:
        """The key prefix (fixed at first use; from the URL, the keyword, or settings)."""
        p = self._prefix
        if p is None:
            p = self._prefix = _config.settings().key_prefix
        return p

    def key(self, *parts: str) -> str:
        """A key under this backend's prefix: ``key("lock", "db")`` -> ``"agentdiff:lock:db"``."""
        return ":".join((self.prefix, *parts))

    @property
    def lease(self) -> float:
        """Seconds of a lock lease unless a lock asks for its own."""
        if self._lease is not None:
            return self._lease
        return float(_config.settings().lease)

    def link(self) -> Link:
        """This thread's own dedicated connection for short commands (see ``redis_conn.Link``)."""
        link: Link | None = getattr(self._local, "link", None)
        if link is None:
            link = self._local.link = Link(self.new_connection)
            with self._mutex:
                self._links.add(link)
        return link

    def retrying(self, doing: str, fn: Callable[[Link], T]) -> T:
        """``fn(link)`` on this thread's link, repeated briefly while Redis is unreachable.

        For work that is safe to repeat. A connection that went stale (the server
        restarted) fails once and is made again; our own error names ``doing``.
        """
        link = self.link()
        for pause in (*RETRY_PAUSES, None):
            try:
                return fn(link)
            except Exception as exc:
                link.reset()
                if pause is None or not is_unavailable(exc):
                    raise backend_error(exc, self.safe_url, doing) from exc
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def new_connection(self) -> AbstractConnection:
        """A dedicated synchronous connection to the server (not taken from the pool)."""
        pool: Any = self._pool
        conn: AbstractConnection = pool.connection_class(**pool.connection_kwargs)
        return conn

    def async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop (one per loop, made on first use)."""
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(id(loop))
        if entry is not None and entry[0]() is loop:
            return entry[1]
        with self._mutex:
            self._prune_async_clients()
            # a blocking pool: many tasks at once wait for a connection instead of failing
            options = {"max_connections": 256, "timeout": None, **self._redis_options}
            pool = redis.asyncio.BlockingConnectionPool.from_url(self._redis_url, **options)
            client = redis.asyncio.Redis.from_pool(pool)  # closing the client closes its pool
            self._async_clients[id(loop)] = (weakref.ref(loop), client)
        return client

    def _prune_async_clients(self, everything: bool = False) -> None:
        """Drop the clients of loops that are closed (all of them when ``everything``)."""
        for key, (ref, client) in list(self._async_clients.items()):
            loop = ref()
            if loop is not None and not loop.is_closed() and not everything:
                continue
            del self._async_clients[key]
            if loop is not None and not loop.is_closed() and loop.is_running():
                try:
                    running = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    loop.create_task(client.aclose())
                else:
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            else:
                _force_close(client)

    def describe_holder(self, holder: str | None) -> str:
        """How a holder is shown to others (in timeout errors): its name, process and host."""
        who = repr(holder) if holder else "an anonymous holder"
        return f"{who} (pid {self.pid} on {self.host})"

    def report_lost(self, grant: RedisLockGrant, error: LeaseLostError) -> None:
        """A lease was lost: mark the grant, log it, and run the lease-lost callback."""
        if grant._lost is not None:
            return
        grant._lost = error
        logger.warning("%s", error)
        callback = self.on_lease_lost
        if callback is None:
            callback = getattr(_config.settings(), "on_lease_lost", None)
        if callback is not None:
            try:
                callback(grant, error)
            except Exception:
                logger.exception("the lease-lost callback %r failed", callback)

    def bus_pending(self) -> int:
        bus = getattr(self, "_bus", None)
        return 0 if bus is None else int(bus.pending)

    def deliver(self, sub: Subscription, event: Event, ack: Callable[[], None]) -> None:
        self._bus.deliver(sub, event, ack)

    def _check_open(self) -> None:
        if self._closed:
            raise CoordinationError(f"the Redis backend for {self.safe_url} is closed; call configure() again")

    # -- locks -------------------------------------------------------------------------
    def acquire_lock(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> RedisLockGrant:
        self._check_open()
        return self._locks.acquire(name, holder, timeout, lease)

    async def acquire_lock_async(
        self, name: str, holder: str | None, timeout: float | None, *, lease: float | None = None
    ) -> RedisLockGrant:
        self._check_open()
        return await self._locks.acquire_async(name, holder, timeout, lease)

    def release_lock(self, grant: LockGrant) -> None:
        self._locks.release(grant)

    async def release_lock_async(self, grant: LockGrant) -> None:
        await self._locks.release_async(grant)

    def lock_holder(self, name: str) -> str | None:
        return self._locks.holder(name)

    # -- limits ------------------------------------------------------------------------
    def limit_store(self) -> RedisLimitStore:
        """This backend's limit store (made on first use)."""
        store = self._limit_store
        if store is None:
            from .redis_limits import RedisLimitStore

            with self._mutex:
                if self._limit_store is None:
                    self._limit_store = RedisLimitStore(self)
                store = self._limit_store
        return store

    # -- events ------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        self._events.publish(event)

    def subscribe(self, subscription: Subscription) -> None:
        self._events.subscribe(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._events.unsubscribe(subscription)

    def drain(self, timeout: float | None) -> bool:
        return self._events.drain(timeout)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Stop the threads, free what this process holds, close every connection."""
        if self._closed:
            return
        self._closed = True
        try:
            self._events.close()
        finally:
            self._locks.close()
            with self._mutex:
                self._prune_async_clients(everything=True)
            store = self._limit_store
            if store is not None and hasattr(store, "close"):
                try:
                    store.close()
                except Exception:
                    logger.exception("closing the Redis limit store failed")
            with self._mutex:
                links = list(self._links)
            for link in links:
                link.close()
            self._pool.disconnect()

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "locks_held": self._locks.held_count(),
            "lock_waiters": self._locks.waiting_count(),
        }
        stats.update(self._events.statistics())
        return stats

    def __repr__(self) -> str:
        return f"<RedisBackend {self.safe_url} prefix={self._prefix or '(settings)'}>"


def _restart_in_child(ref: weakref.ref[RedisBackend]) -> None:
    """After ``fork``: the child gets its own threads and connections (the parent's stay its own)."""
    backend = ref()
    if backend is not None:
        backend._start(forked=True)


def _force_close(client: redis.asyncio.Redis) -> None:
    """Close the sockets of a client whose event loop is gone, quietly (no loop to do it)."""
    pool = client.connection_pool
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
