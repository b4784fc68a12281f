"""Events on Redis Streams: at least once per subscription, across every process.

Every event of a key prefix is one entry of one stream, ``P:events``. Each handler
subscription (``@when``) is a consumer group of that stream, named after the
subscription (``Subscription.group``), so the processes that run the same handler
share its events: each entry is handled by one of them, at least once. Waiters
(``wait_for``) read the stream directly, without a group: every waiter sees every
matching event emitted after it started waiting.

- ``emit`` encodes the event (JSON; a ``TypeError`` right there when it cannot be
  encoded) and queues it for the sender thread, which writes queued events and
  acknowledgements in batches: one round trip carries everything queued meanwhile.
- A reader thread per handler subscription reads its group (``XREADGROUP``) and
  hands matching entries to the bus; an entry is acknowledged (``XACK``) once its
  handler has finished or has been dead-lettered; entries that do not match the
  subscription's pattern are acknowledged at once.
- The maintenance thread keeps this process's consumer marked alive, reclaims the
  entries held by consumers that are gone, moves entries delivered
  ``max_deliveries`` times to the dead-letter stream ``P:events:dead``, and trims
  the stream below the oldest entry some group still needs.

Handlers in the emitting process receive the very objects that were emitted;
handlers elsewhere receive them decoded from JSON (see ``redis_codec``).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailableError
from .redis_codec import encode_event
from .redis_conn import Link, backend_error, is_unavailable
from .redis_consumers import GroupReader, Maintenance, Tail, entry_id_key
from .redis_lua import DRAIN_STATE

if TYPE_CHECKING:
    from ..events import Event, Subscription
    from .redis import RedisBackend

__all__ = ["RedisEvents"]

logger = logging.getLogger("agentdiff_coordination")

#: events kept for local handlers as the objects that were emitted
CACHE_LIMIT = 65536
#: events queued for the sender before ``emit`` waits for room
QUEUE_LIMIT = 100_000
#: most commands in one round trip of the sender
BATCH = 1000


class _Sender:
    """Writes queued events (``XADD``) and acknowledgements (``XACK``) in batches."""

    def __init__(self, events: RedisEvents) -> None:
        self.events = events
        self._cond = threading.Condition()
        self._items: deque[tuple[str, Any, Any]] = deque()
        self.queued = 0  # items (events and acknowledgements) ever queued
        self.done = 0  # items ever written (or given up on)
        self.last_id: bytes = b""  # the id of the last event written
        self.failing: BaseException | None = None
        self._busy = False
        self._stopped = False
        self._link = Link(events.b.new_connection)
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-sender", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        _at_exit(lambda: (s := ref()) is not None and s.flush(events.b.exit_flush))

    def _put(self, item: tuple[str, Any, Any]) -> None:
        self._items.append(item)
        self.queued += 1
        if not self._busy:
            self._cond.notify()

    def add(self, fields: list[Any]) -> None:
        with self._cond:
            if self.failing is not None:
                raise backend_error(self.failing, self.events.b.safe_url, "sending an event")
            if len(self._items) >= QUEUE_LIMIT and not self._cond.wait_for(
                lambda: len(self._items) < QUEUE_LIMIT, 30.0
            ):
                raise BackendUnavailableError(
                    f"{QUEUE_LIMIT} events are waiting to be written to Redis at {self.events.b.safe_url}; "
                    "the server is too slow or unreachable"
                )
            self._put(("x", fields, None))

    def ack(self, group: str, entry_id: bytes) -> None:
        with self._cond:
            self._put(("a", group, entry_id))

    def quiet(self) -> bool:
        """Whether everything queued so far has been written."""
        return self.done == self.queued

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything queued so far is written (events and acknowledgements)."""
        with self._cond:
            target = self.queued
            self._cond.wait_for(lambda: self.done >= target or self._stopped, timeout)
            return self.done >= target

    def stop(self, timeout: float) -> None:
        self.flush(timeout)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _take(self) -> list[tuple[str, Any, Any]] | None:
        with self._cond:
            while not self._items:
                self._busy = False
                if self._stopped:
                    return None
                self._cond.wait()
            self._busy = True
            n = min(len(self._items), BATCH)
            return [self._items.popleft() for _ in range(n)]

    def _run(self) -> None:
        stream = self.events.stream
        pause = 0.05
        while (batch := self._take()) is not None:
            commands: list[list[Any]] = []
            acks: dict[str, list[bytes]] = {}
            adds = 0
            for kind, a, b in batch:
                if kind == "x":
                    commands.append(["XADD", stream, "*", *a])
                    adds += 1
                else:
                    acks.setdefault(a, []).append(b)
            for group, ids in acks.items():
                commands.append(["XACK", stream, group, *ids])
            try:
                replies = self._link.pipeline(commands)
            except Exception as exc:
                self._link.reset()
                if is_unavailable(exc) and not self._stopped:
                    with self._cond:
                        self._items.extendleft(reversed(batch))  # at least once: write them again
                        self.failing = exc
                    logger.warning("Redis unreachable while writing events (%s); retrying in %.2fs", exc, pause)
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                logger.error("could not write %d events and %d acknowledgements to Redis: %s",
                             adds, len(batch) - adds, exc)
                replies = []
            pause = 0.05
            last = b""
            for i, reply in enumerate(replies):
                if isinstance(reply, Exception):
                    logger.error("Redis refused an event or an acknowledgement: %s", reply)
                elif i < adds:
                    last = reply
            with self._cond:
                self.failing = None
                self.done += len(batch)
                if last:
                    self.last_id = last
                self._cond.notify_all()
        self._link.close()


_exit_hooks: list[Any] = []


def _at_exit(fn: Any) -> None:
    """Run ``fn`` at interpreter exit, before daemon threads stop (like the bus's drain)."""
    if not _exit_hooks:
        register = getattr(threading, "_register_atexit", None)
        try:
            if register is not None:
                register(_run_exit_hooks)
            else:  # pragma: no cover
                atexit.register(_run_exit_hooks)
        except RuntimeError:
            return  # already shutting down
    _exit_hooks.append(fn)


def _run_exit_hooks() -> None:
    for fn in _exit_hooks:
        try:
            fn()
        except Exception:
            logger.exception("could not write pending events at exit")


class RedisEvents:
    """The event half of ``RedisBackend``."""

    def __init__(self, backend: RedisBackend) -> None:
        self.b = backend
        self._mutex = threading.Lock()
        self._sender: _Sender | None = None
        self._readers: dict[Subscription, GroupReader] = {}
        self._tail: Tail | None = None
        self._maintenance: Maintenance | None = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self.closed = False

    @property
    def stream(self) -> str:
        return self.b.key("events")

    @property
    def dead_stream(self) -> str:
        return self.b.key("events", "dead")

    def link(self) -> Link:
        """This thread's own connection for short commands."""
        return self.b.link()

    def sender(self) -> _Sender:
        s = self._sender
        if s is None:
            with self._mutex:
                if self._sender is None:
                    self._sender = _Sender(self)
                s = self._sender
        return s

    def maintenance(self) -> Maintenance:
        m = self._maintenance
        if m is None:
            with self._mutex:
                if self._maintenance is None:
                    self._maintenance = Maintenance(self)
                m = self._maintenance
        return m

    # -- the local object cache -------------------------------------------------------
    def has_cache(self) -> bool:
        return bool(self._cache)

    def cached(self, event_id: str) -> tuple[bool, Any]:
        with self._mutex:
            if event_id in self._cache:
                return True, self._cache[event_id]
        return False, None

    def _remember(self, event: Event) -> None:
        with self._mutex:
            cache = self._cache
            cache[event.id] = event.data
            if len(cache) > CACHE_LIMIT:
                cache.popitem(last=False)

    # -- publishing --------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        if self.closed:
            raise BackendUnavailableError(f"the Redis backend for {self.b.safe_url} is closed; configure() a new one")
        fields = encode_event(event)
        if self._readers or self._tail is not None:
            self._remember(event)
        self.sender().add(fields)

    # -- subscriptions -----------------------------------------------------------------
    def _group_name(self, sub: Subscription) -> str:
        taken = {r.group for r in self._readers.values()}
        name, n = sub.group, 1
        while name in taken:  # the same subscription twice in one process: two groups
            n += 1
            name = f"{sub.group}#{n}"
        return name

    def subscribe(self, sub: Subscription) -> None:
        if self.closed:
            return
        if sub.kind == "waiter":
            if self._sender is not None:
                self._sender.flush(5.0)  # only events emitted after the call count
            tail = self._tail
            if tail is None:
                with self._mutex:
                    if self._tail is None:
                        self._tail = Tail(self)
                    tail = self._tail
            tail.add(sub)
            return
        with self._mutex:
            if sub in self._readers:
                return
            group = self._group_name(sub)
            reader = GroupReader(self, sub, group)
            self._readers[sub] = reader
        try:
            self.create_group(group, "$")
            self.maintenance().heartbeat_now()
        except BaseException:
            with self._mutex:
                self._readers.pop(sub, None)
            raise
        reader.start()

    def create_group(self, group: str, start: str) -> None:
        """Create ``group`` on the stream (and the stream) unless it exists."""

        def create(link: Link) -> None:
            try:
                link.call("XGROUP", "CREATE", self.stream, group, start, "MKSTREAM")
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        self.b.retrying(f"creating the consumer group {group!r}", create)

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.kind == "waiter":
            if self._tail is not None:
                self._tail.remove(sub)
            return
        with self._mutex:
            reader = self._readers.pop(sub, None)
        if reader is not None:
            reader.stop()

    def readers(self) -> list[GroupReader]:
        with self._mutex:
            return list(self._readers.values())

    # -- draining ----------------------------------------------------------------------
    def drain(self, timeout: float | None) -> bool:
        """Wait until the groups of the local subscriptions hold no entry emitted so far."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        sender = self._sender
        if sender is not None and not sender.flush(left()):
            return False
        groups = [r.group for r in self.readers()]
        if not groups:
            return sender is None or sender.quiet()
        horizon: tuple[int, int] | None = None
        pause = 0.0005
        while True:
            queued = sender.queued if sender is not None else 0
            quiet = sender is None or sender.quiet()
            last, states = self.b.retrying(
                "waiting for events to be handled (drain)",
                lambda link: link.script(DRAIN_STATE, [self.stream], groups),
            )
            if horizon is None:
                horizon = entry_id_key(last) if last else (0, 0)
            mine = entry_id_key(sender.last_id) if sender is not None and sender.last_id else (0, 0)
            target = max(horizon, mine)
            idle = quiet and self.b.bus_pending() == 0
            for name, exists, delivered, pending, min_pending in states:
                if not exists:  # lost with Redis's data: its reader makes it again from the start
                    self.create_group(name.decode(), "0")
                    idle = False
                    break
                if entry_id_key(delivered) < target or (pending and entry_id_key(min_pending) <= target):
                    idle = False
                    break
            if idle and sender is not None and (sender.queued != queued or not sender.quiet()):
                idle = False  # a handler emitted meanwhile: look again
            if idle:
                return True
            remaining = left()
            if remaining is not None and remaining <= 0:
                return False
            if sender is not None and not sender.quiet():
                sender.flush(remaining)
            else:
                time.sleep(pause if remaining is None else min(pause, remaining))
                pause = min(pause * 2, 0.02)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self.closed = True
        with self._mutex:
            readers = list(self._readers.values())
            self._readers.clear()
            tail, self._tail = self._tail, None
            maintenance, self._maintenance = self._maintenance, None
            sender = self._sender
        for reader in readers:
            reader.stop(hard=True)
        if tail is not None:
            tail.stop()
        if maintenance is not None:
            maintenance.stop()
        if sender is not None:
            sender.stop(self.b.exit_flush)

    def statistics(self) -> dict[str, Any]:
        s = self._sender
        return {
            "event_groups": len(self._readers),
            "events_queued": 0 if s is None else s.queued - s.done,
            "events_in_flight": sum(r.inflight for r in self.readers()),
        }
