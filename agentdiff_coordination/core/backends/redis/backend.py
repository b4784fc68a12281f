"""The Redis backend: the same locks, limits and events across processes and machines.

``RedisBackend("redis://host:6379/0")`` makes every lock, limit and event shared through
one Redis server; the URL and its options are described in ``url``. Locks live in
``locks`` (leases, fencing, queue, hand-offs), ``lease`` (watchdog, wake channel) and
``grant`` (the grant both use), events in ``events`` and ``consumers`` (Streams, consumer
groups), the Lua scripts in ``scripts`` and ``lua/``, the wire format of events in
``codec``; ``link`` is the one connection context they all run their commands through.
Each lower module states what it needs of the one above as a small ``Protocol``
(``LimitHost``, ``EventsHost``, ``EventSource``, ``LeaseKeeper``), so no import runs back up.

The backend knows nothing of the bus or the settings: ``attach(sink, defaults)`` gives
it where incoming events go and the key prefix, lease, lease-lost callback and exit
bound for whatever its URL or constructor left unset.

For code built on this backend (the limit store):

- ``backend.client``: a synchronous ``redis.Redis`` on the backend's pool (bytes replies);
- ``backend.async_client()``: a ``redis.asyncio.Redis`` for the running event loop;
- ``backend.key(*parts)``: a key under the prefix, ``key("limit", name)``;
- ``backend.new_connection()``: a dedicated synchronous connection (not pooled);
- ``backend.ctx``: the connection context (``run``/``arun`` a command or script by the one
  retry policy, ``link()``, ``error(exc, doing)``);
- ``backend.safe_url``: the URL without its password; ``backend.lease``: the lease in seconds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import weakref
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from ...errors import CoordinationError, LeaseLostError
from ...snapshots import Status
from ...records import BackendStatistics, DeadLetter, Event, LockGrant, SubscriptionSpec
from ..base import Backend, BackendDefaults, EventSink
from . import dead_letters
from .events import RedisEvents
from .grant import RedisLockGrant
from .status import holder_json, snapshot
from .link import Context, made_once
from .locks import RedisLocks
from .url import RedisOptions, parse_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..base import LimitStore

__all__ = ["RedisBackend", "RedisLockGrant"]

logger = logging.getLogger("agentdiff_coordination")




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
        stream_retention: int | None = None,
        on_lease_lost: Callable[[LockGrant, LeaseLostError], Any] | None = None,
        exit_flush: float | None = None,
        **redis_options: Any,
    ) -> None:
        ours = {"key_prefix": key_prefix, "lease": lease, "max_deliveries": max_deliveries,
                "consumer_ttl": consumer_ttl, "stream_retention": stream_retention}
        self.options: RedisOptions = parse_url(url, ours, redis_options)
        if on_lease_lost is not None and not callable(on_lease_lost):
            raise TypeError(f"on_lease_lost must be a callable(grant, error) or None, not {on_lease_lost!r}")
        self._on_lease_lost = on_lease_lost
        self._exit_flush = exit_flush
        self.url = url
        self.safe_url = self.options.safe_url
        self.ctx = Context(self.options.redis_url, self.safe_url, self.options.redis_options)
        self.client: redis.Redis = self.ctx.client
        self._prefix: str | None = self.options.prefix
        self._mutex = threading.Lock()
        self._limit_store: LimitStore | None = None
        self._closed = False
        self._start()
        ref = weakref.ref(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _restart_in_child(ref))

    def _start(self, forked: bool = False) -> None:
        """Fresh per-process state (at construction, and in a forked child)."""
        #: this process's name towards Redis (consumer name, wake channel, liveness key)
        self.host = socket.gethostname()
        self.process_id = f"{self.host.replace('|', '_')}:{os.getpid()}:{secrets.token_hex(3)}"
        self.pid = os.getpid()
        if forked:
            self.ctx.forked()
            self._mutex = threading.Lock()
        self._locks = RedisLocks(self.ctx, self.process_id, lambda: self.lease, self._report_lost,
                                 self.describe_holder)
        self._events = RedisEvents(self)
        subs = self.sink.subscriptions() if forked and not self._closed else []
        if subs:  # the child keeps the parent's subscriptions: read their groups from here too
            threading.Thread(target=self._resubscribe, args=(subs,),
                             name="agentdiff-redis-resubscribe", daemon=True).start()

    def _resubscribe(self, subs: list[SubscriptionSpec]) -> None:
        for sub in subs:
            try:
                self._events.subscribe(sub)
            except Exception as exc:
                logger.error("could not subscribe %r again in this forked process: %s", sub, exc)

    # -- what the runtime gives ---------------------------------------------------------
    def attach(self, sink: EventSink, defaults: BackendDefaults) -> None:
        """Take events to ``sink``; the prefix, lease, callback and exit bound not given
        to the constructor come from ``defaults`` (the prefix is fixed at first use)."""
        super().attach(sink, defaults)

    @property
    def prefix(self) -> str:
        """The key prefix (fixed at first use: from the URL, the keyword, or the defaults)."""
        p = self._prefix
        if p is None:
            p = self._prefix = self.defaults.key_prefix
        self.ctx.prefix = p
        return p

    def key(self, *parts: str) -> str:
        """A key under this backend's prefix: ``key("lock", "db")`` -> ``"agentdiff:lock:db"``."""
        self.prefix  # noqa: B018 - fixes the prefix on first use
        return self.ctx.key(*parts)

    @property
    def lease(self) -> float:
        """Seconds of a lock lease unless a lock asks for its own."""
        return self.options.lease if self.options.lease is not None else float(self.defaults.lease)

    @property
    def exit_flush(self) -> float:
        return self._exit_flush if self._exit_flush is not None else self.defaults.exit_flush

    @property
    def consumer_ttl(self) -> float:
        return self.options.consumer_ttl

    @property
    def max_deliveries(self) -> int:
        return self.options.max_deliveries

    def new_connection(self) -> Any:
        """A dedicated synchronous connection to the server (not taken from the pool)."""
        return self.ctx.new_connection()

    def async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running event loop (one per loop, made on first use)."""
        return self.ctx.async_client()

    def describe_holder(self, holder: str | None) -> str:
        """Who takes a lock, as stored with its grant for other processes to see (JSON)."""
        return holder_json(holder)

    def _keyed(self) -> Context:
        """The connection context, its key prefix fixed (a backend made only to look, by the CLI)."""
        self._check_open()
        _ = self.prefix
        return self.ctx

    def record_dead_letter(self, letter: DeadLetter) -> None:
        dead_letters.record(self._keyed(), letter)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter of the prefix (all processes), oldest first."""
        return dead_letters.dead_letters(self._keyed())

    def replay_dead_letters(self) -> int:
        """Send every dead letter again to the handler (group) that failed it; how many."""
        return dead_letters.replay(self._keyed())

    def purge_dead_letters(self) -> int:
        """Drop every dead letter of the prefix; how many."""
        return dead_letters.purge(self._keyed())

    def snapshot(self) -> Status:
        """Every lock and event stream of the prefix (all processes); the limits declared here."""
        self._keyed()
        return snapshot(self)

    def _report_lost(self, grant: RedisLockGrant, error: LeaseLostError) -> None:
        """A lease was lost: mark the grant, log it, and run the lease-lost callback."""
        if grant._lost is not None:
            return
        grant._lost = error
        logger.warning("%s", error, extra={"coordination_lock": grant.name, "coordination_fencing": grant.fencing})
        callback = self._on_lease_lost or self.defaults.on_lease_lost
        if callback is not None:
            try:
                callback(grant, error)
            except Exception:
                logger.exception("the lease-lost callback %r failed", callback)

    def _check_open(self) -> None:
        if self._closed:
            raise CoordinationError(f"the Redis backend for {self.safe_url} is closed; call configure() again")
        self.prefix  # noqa: B018 - fixes the prefix on first use

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
        self._check_open()
        return self._locks.holder(name)

    # -- limits ------------------------------------------------------------------------
    def limit_store(self) -> LimitStore:
        """This backend's limit store (made on first use)."""
        from .limits import RedisLimitStore

        return self._limit_store or made_once(self, "_limit_store", self._mutex, lambda: RedisLimitStore(self))

    # -- events ------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        self._check_open()
        self._events.publish(event)

    def subscribe(self, subscription: SubscriptionSpec) -> None:
        self.prefix  # noqa: B018 - fixes the prefix on first use
        self._events.subscribe(subscription)

    def unsubscribe(self, subscription: SubscriptionSpec) -> None:
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
            store: Any = self._limit_store
            if store is not None and hasattr(store, "close"):
                try:
                    store.close()
                except Exception:
                    logger.exception("closing the Redis limit store failed")
            self.ctx.close()

    def statistics(self) -> BackendStatistics:
        return self._events.statistics(len(self._locks.held), self._locks.waiting_count())

    def __repr__(self) -> str:
        return f"<RedisBackend {self.safe_url} prefix={self._prefix or '(defaults)'}>"


def _restart_in_child(ref: weakref.ref[RedisBackend]) -> None:
    """After ``fork``: the child gets its own threads and connections (the parent's stay its own)."""
    backend = ref()
    if backend is not None:
        backend._start(forked=True)
