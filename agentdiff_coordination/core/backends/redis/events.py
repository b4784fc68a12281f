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
from typing import Any, Protocol

from ...errors import BackendUnavailableError
from ...records import BackendStatistics, Event, SubscriptionSpec
from ..base import BackendDefaults, EventSink
from .codec import encode_event
from .consumers import ConsumerHost, GroupReader, Maintenance, Tail, entry_id_key
from .link import SLACK, Context, Link, Pauses, is_unavailable, made_once, pack
from .scripts import DRAIN_STATE, TRIM
from .url import RedisOptions

__all__ = ["EventsHost", "RedisEvents"]

logger = logging.getLogger("agentdiff_coordination")

#: events kept for local handlers as the objects that were emitted
CACHE_LIMIT = 65536
#: events queued for the sender before ``emit`` waits for room
QUEUE_LIMIT = 100_000
#: seconds ``emit`` waits for room in a full queue before it raises
QUEUE_WAIT = 30.0
#: most commands in one round trip of the sender
BATCH = 1000


class EventsHost(ConsumerHost, Protocol):
    """What the events need of their backend (``RedisBackend``): its connections, options,
    the runtime's defaults and the sink that takes incoming events."""

    @property
    def ctx(self) -> Context: ...

    @property
    def options(self) -> RedisOptions: ...

    @property
    def defaults(self) -> BackendDefaults: ...

    @property
    def sink(self) -> EventSink: ...


class _Sender:
    """Writes queued events (``XADD``) and acknowledgements (``XACK``) in batches.

    One round trip carries everything queued meanwhile; each command's reply is its own,
    so a command Redis refuses costs only itself: an event refused for a reason that may
    pass (``OOM``, ``LOADING``, ``BUSY``...) is tried again, ``ATTEMPTS`` times in all, else
    (or when refused for good) it is counted in ``lost`` and logged, and ``drain()`` says so.
    After each batch the stream is trimmed to its retention (``TRIM``).
    """

    ATTEMPTS = 6

    def __init__(self, events: RedisEvents) -> None:
        self.events = events
        self._cond = threading.Condition()
        self._items: deque[list[Any]] = deque()  # [kind, a, b, attempts]
        self.queued = 0  # items (events and acknowledgements) ever queued
        self.done = 0  # items ever written (or given up on)
        self.unsent = 0  # events queued and not yet written or given up on
        self.lost = 0  # events given up on
        self.last_id: bytes = b""  # the id of the last event written
        self.failing: BaseException | None = None
        self._busy = False
        self._stopped = False
        self._link = events.ctx.new_link()
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-sender", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        _at_exit(lambda: _exit(ref))

    def _put(self, item: list[Any]) -> None:
        self._items.append(item)
        self.queued += 1
        if not self._busy:
            self._cond.notify()

    def add(self, packed: bytes, event: Event) -> None:
        with self._cond:
            if self.failing is not None:
                raise self.events.ctx.error(self.failing, "sending an event")
            if len(self._items) >= QUEUE_LIMIT and not self._cond.wait_for(
                lambda: len(self._items) < QUEUE_LIMIT, QUEUE_WAIT
            ):
                raise BackendUnavailableError(
                    f"{QUEUE_LIMIT} events are waiting to be written to Redis at {self.events.ctx.safe_url}; "
                    f"the server is too slow or unreachable (emit waited {QUEUE_WAIT:g}s for room)"
                )
            self.unsent += 1
            self._put(["x", packed, event, 0])

    def ack(self, group: str, entry_id: bytes) -> None:
        with self._cond:
            self._put(["a", group, entry_id, 0])

    def quiet(self) -> bool:
        """Whether everything queued so far has been written."""
        return self.done == self.queued

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything queued so far is written (events and acknowledgements)."""
        with self._cond:
            target = self.queued
            self._cond.wait_for(lambda: self.done >= target or self._stopped, timeout)
            return self.done >= target

    def exit(self) -> None:
        """At interpreter exit: wait at most the exit bound, then say what was not sent."""
        bound = self.events.exit_flush()
        if not self.flush(bound) and self.unsent:
            logger.error(
                "%d event(s) not sent to Redis at %s within the exit bound of %gs (exit_drain_timeout, "
                "AGENTDIFF_COORDINATION_EXIT_DRAIN); they are lost", self.unsent, self.events.ctx.safe_url, bound,
            )

    def stop(self, timeout: float) -> None:
        self.flush(timeout)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _take(self) -> list[list[Any]] | None:
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
        pauses = Pauses()
        while (batch := self._take()) is not None:
            commands: list[Any] = [item[1] for item in batch if item[0] == "x"]
            adds = len(commands)
            acks: dict[str, list[bytes]] = {}
            for item in batch:
                if item[0] == "a":
                    acks.setdefault(item[1], []).append(item[2])
            commands += [["XACK", stream, group, *ids] for group, ids in acks.items()]
            replies: list[Any] | None = None
            try:
                replies = self._link.pipeline(commands)
                if adds:  # the stream's retention, kept on every write
                    self.events.ctx.run("trimming the event stream", TRIM, [stream],
                                        [self.events.stream_retention], link=self._link, retry=False)
            except Exception as exc:
                self._link.reset()
                if replies is None and not self._stopped and is_unavailable(exc):
                    with self._cond:
                        self._items.extendleft(reversed(batch))  # at least once: write them again
                        self.failing = exc
                    pause = pauses.next()
                    logger.warning("Redis unreachable while writing events (%s); retrying in %.2fs", exc, pause)
                    time.sleep(pause)
                    continue
                if replies is None:  # refused for good (a configuration error): each event counts
                    replies = [exc] * len(commands)
                else:
                    logger.debug("trimming the event stream failed (%s); the next write trims it", exc)
            pauses.reset()
            self._settle(batch, adds, replies)
        self._link.close()

    def _settle(self, batch: list[list[Any]], adds: int, replies: list[Any]) -> None:
        """Count what was written; put back what may pass, give up on the rest (counted)."""
        last = b""
        again: list[list[Any]] = []
        lost: list[tuple[Event, BaseException]] = []
        events = [item for item in batch if item[0] == "x"]
        for item, reply in zip(events, replies):
            if not isinstance(reply, BaseException):
                last = reply
                continue
            item[3] += 1
            if item[3] < self.ATTEMPTS and _may_pass(reply):
                again.append(item)
                continue
            lost.append((item[2], reply))
            logger.error("Redis at %s refused an event after %d attempt(s) (%s); it is kept in dead_letters() "
                         "(and counted in statistics().events_lost; drain() returns False)",
                         self.events.ctx.safe_url, item[3], str(reply).rstrip("."))
        for reply in replies[adds:]:
            if isinstance(reply, BaseException):
                logger.warning("Redis refused acknowledgements (%s); the entries are delivered again", reply)
        if again:
            time.sleep(0.05 * 2 ** min(again[0][3], 5))
        with self._cond:
            self.failing = None
            self._items.extendleft(reversed(again))
            self.done += len(batch) - len(again)
            self.unsent -= adds - len(again)
            self.lost += len(lost)
            if last:
                self.last_id = last
            self._cond.notify_all()
        for event, reply in lost:  # where users look: dead_letters() of this process
            self.events.b.sink.unsent(event, reply)


def _exit(ref: weakref.ref[_Sender]) -> None:
    sender = ref()
    if sender is not None:
        sender.exit()


def _may_pass(exc: BaseException) -> bool:
    """Whether a refusal may pass if the command is sent again (memory, loading, failover)."""
    return is_unavailable(exc) or str(exc).startswith(("OOM", "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY"))


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

    def __init__(self, backend: EventsHost) -> None:
        self.b = backend
        self.ctx = backend.ctx
        self._mutex = threading.Lock()
        self._sender: _Sender | None = None
        self._lost_seen = 0  # events lost when drain() last looked
        self._readers: dict[SubscriptionSpec, GroupReader] = {}
        self._tail: Tail | None = None
        self._maintenance: Maintenance | None = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self.closed = False

    @property
    def stream(self) -> str:
        return self.ctx.key("events")

    @property
    def dead_stream(self) -> str:
        return self.ctx.key("events", "dead")

    @property
    def stream_retention(self) -> int:
        return self.b.options.stream_retention

    def exit_flush(self) -> float:
        return self.b.defaults.exit_flush

    def link(self) -> Link:
        """This thread's own connection for short commands."""
        return self.ctx.link()

    def sender(self) -> _Sender:
        return self._sender or made_once(self, "_sender", self._mutex, lambda: _Sender(self))

    def maintenance(self) -> Maintenance:
        return self._maintenance or made_once(self, "_maintenance", self._mutex, lambda: Maintenance(self))

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
            raise BackendUnavailableError(f"the Redis backend for {self.ctx.safe_url} is closed; configure() a new one")
        packed = pack(["XADD", self.stream, "*", *encode_event(event)])  # a bad event is refused here
        if self._readers or self._tail is not None:
            self._remember(event)
        self.sender().add(packed, event)

    # -- subscriptions -----------------------------------------------------------------
    def _group_name(self, sub: SubscriptionSpec) -> str:
        taken = {r.group for r in self._readers.values()}
        name, n = sub.group, 1
        while name in taken:  # the same subscription twice in one process: two groups
            n += 1
            name = f"{sub.group}#{n}"
        return name

    def subscribe(self, sub: SubscriptionSpec) -> None:
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

        try:
            self.ctx.run(f"creating the consumer group {group!r}",
                         ("XGROUP", "CREATE", self.stream, group, start, "MKSTREAM"))
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def unsubscribe(self, sub: SubscriptionSpec) -> None:
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
        """Wait until the groups of the local subscriptions hold no entry emitted so far;
        False also when events were lost (refused by Redis) since the last drain."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._drain(deadline)
        sender = self._sender
        if sender is not None and sender.lost != self._lost_seen:
            self._lost_seen = sender.lost
            return False
        return done

    def _drain(self, deadline: float | None) -> bool:

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
            last, states = self.ctx.run("waiting for events to be handled (drain)", DRAIN_STATE,
                                        [self.stream], groups, deadline=None if deadline is None else deadline + SLACK)
            if horizon is None:
                horizon = entry_id_key(last) if last else (0, 0)
            mine = entry_id_key(sender.last_id) if sender is not None and sender.last_id else (0, 0)
            target = max(horizon, mine)
            idle = quiet and self.b.sink.pending == 0
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
            sender.stop(self.exit_flush())

    def statistics(self, locks_held: int, lock_waiters: int) -> BackendStatistics:
        s = self._sender
        return BackendStatistics(
            locks_held=locks_held,
            lock_waiters=lock_waiters,
            event_groups=len(self._readers),
            events_queued=0 if s is None else s.unsent,
            events_in_flight=sum(r.inflight for r in self.readers()),
            events_lost=0 if s is None else s.lost,
        )
