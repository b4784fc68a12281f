"""The threads that read the event stream: group readers, the waiters' tail, maintenance.

- ``GroupReader``: one per handler subscription; reads the subscription's consumer
  group and hands entries to the bus, keeping at most ``PREFETCH`` entries in flight
  so that the other processes of the group get their share.
- ``Tail``: one per process while someone is in ``wait_for``; reads the stream
  without a group (every waiter sees every event).
- ``Maintenance``: one per process with handler subscriptions; keeps this consumer
  marked alive, reclaims entries from consumers that are gone (or dead-letters them
  after ``max_deliveries`` deliveries), and trims the stream.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Protocol

from ...records import Event, SubscriptionSpec
from .codec import decode_event, entry_fields
from .link import Context, Link, Pauses, is_unavailable
from .scripts import TRIM

__all__ = ["ConsumerHost", "EventSource", "GroupReader", "Maintenance", "Tail", "entry_id_key"]

logger = logging.getLogger("agentdiff_coordination")

#: most entries a process holds undone per subscription
PREFETCH = 512
#: most entries read at once
READ_COUNT = 256
#: how long one blocking read waits (ms); also how soon a stopped reader notices
BLOCK_MS = 500


class ConsumerHost(Protocol):
    """What the readers need of the backend (``RedisBackend``): this consumer and its options."""

    @property
    def process_id(self) -> str: ...

    @property
    def consumer_ttl(self) -> float: ...

    @property
    def max_deliveries(self) -> int: ...


class Acks(Protocol):
    """Where a reader acknowledges entries (the events' sender)."""

    def ack(self, group: str, entry_id: bytes) -> None: ...


class EventSource(Protocol):
    """What the readers need of the events they serve (``RedisEvents``)."""

    @property
    def b(self) -> ConsumerHost: ...

    @property
    def ctx(self) -> Context: ...

    @property
    def closed(self) -> bool: ...

    @property
    def stream(self) -> str: ...

    @property
    def dead_stream(self) -> str: ...

    @property
    def stream_retention(self) -> int: ...

    def link(self) -> Link: ...

    def sender(self) -> Acks: ...

    def maintenance(self) -> Maintenance: ...

    def readers(self) -> list[GroupReader]: ...

    def create_group(self, group: str, start: str) -> None: ...

    def has_cache(self) -> bool: ...

    def cached(self, event_id: str) -> tuple[bool, Any]: ...


def entry_id_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id (``"ms-seq"``) as a sortable pair."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class GroupReader:
    """Reads one subscription's consumer group and hands its entries to the bus."""

    def __init__(self, events: EventSource, sub: SubscriptionSpec, group: str) -> None:
        self.events = events
        self.sub = sub
        self.group = group
        self.inflight = 0
        self.inflight_ids: set[bytes] = set()
        self._cond = threading.Condition()
        self._stopped = False
        self._client_id: int | None = None  # of the reading connection, for CLIENT UNBLOCK
        self._link = events.ctx.new_link()
        self._thread = threading.Thread(target=self._run, name=f"agentdiff-redis-group-{group}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, hard: bool = False) -> None:
        """Stop reading, at once: entries read before are still handled, later ones are not read."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if threading.current_thread() is self._thread:
            return
        link = self.events.link()
        deadline = time.monotonic() + (0.2 if hard else 2.0)
        while self._thread.is_alive() and time.monotonic() < deadline:
            client_id = self._client_id
            if client_id is not None:
                try:  # wake the blocked read (it returns nothing, as on a timeout)
                    link.call("CLIENT", "UNBLOCK", client_id)
                except Exception:
                    link.reset()
                    break
            self._thread.join(0.01)
        if hard:
            self._link.close()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _room(self) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self.inflight < PREFETCH or self._stopped, 1.0)
            return self.inflight < PREFETCH

    def _run(self) -> None:
        ev = self.events
        stream, group, consumer = ev.stream, self.group, ev.b.process_id
        pauses = Pauses()
        while not self._stopped and not ev.closed:
            if not self._room():
                continue
            try:
                if self._client_id is None:
                    self._client_id = int(self._link.call("CLIENT", "ID"))
                if self._stopped:
                    break
                reply = self._link.call(
                    "XREADGROUP", "GROUP", group, consumer, "COUNT", READ_COUNT, "BLOCK", BLOCK_MS,
                    "STREAMS", stream, ">",
                )
                pauses.reset()
            except Exception as exc:
                self._link.reset()
                self._client_id = None
                if self._stopped or ev.closed:
                    break
                if "NOGROUP" in str(exc):
                    # the group or the stream vanished (Redis restarted without persistence):
                    # make it again and read everything the new stream holds
                    try:
                        ev.create_group(group, "0")
                    except Exception as again:
                        logger.warning("could not re-create consumer group %r: %s", group, again)
                        time.sleep(pauses.next())
                    continue
                pause = pauses.next()
                level = logging.DEBUG if is_unavailable(exc) else logging.ERROR
                logger.log(level, "reading events for %s failed (%s); retrying in %.2fs", group, exc, pause)
                time.sleep(pause)
                continue
            if reply:
                self.deliver(reply[0][1])
        self._link.close()

    def deliver(self, entries: list[Any]) -> None:
        """Hand read (or reclaimed) entries to the bus; acknowledge those not for this subscription."""
        ev = self.events
        sender = ev.sender()
        sub = self.sub
        group = self.group
        for entry_id, fields in entries:
            if fields is None:  # deleted meanwhile
                sender.ack(group, entry_id)
                continue
            values = entry_fields(fields)
            name = values.get(b"n")
            only = values.get(b"only")  # a dead letter replayed for one group
            if name is None or not sub.matches(name.decode()) or (only is not None and only.decode() != group):
                sender.ack(group, entry_id)
                continue
            try:
                event = _decode(ev, values)
            except Exception as exc:
                logger.error("event entry %s in %s cannot be decoded (%s); dead-lettered", entry_id, ev.stream, exc)
                ev.maintenance().dead_letter(group, entry_id, fields, f"undecodable: {exc}")
                continue
            with self._cond:
                if entry_id in self.inflight_ids:
                    continue  # already being handled here
                self.inflight += 1
                self.inflight_ids.add(entry_id)
            sub.deliver(event, self._acker(entry_id))

    def _acker(self, entry_id: bytes) -> Any:
        def ack() -> None:
            with self._cond:
                self.inflight -= 1
                self.inflight_ids.discard(entry_id)
                self._cond.notify_all()
            self.events.sender().ack(self.group, entry_id)

        return ack


def _decode(ev: EventSource, values: dict[bytes, bytes]) -> Event:
    """The event of an entry: with the very data object when it was emitted here."""
    if ev.has_cache():
        event_id = values.get(b"i")
        if event_id is not None:
            found, data = ev.cached(event_id.decode())
            if found:
                return decode_event(values, data)
    return decode_event(values)


class Tail:
    """Reads the stream without a group for the local ``wait_for`` waiters."""

    def __init__(self, events: EventSource) -> None:
        self.events = events
        self._cond = threading.Condition()
        self._waiters: dict[SubscriptionSpec, tuple[int, int]] = {}
        self._position: bytes | None = None
        self._stopped = False
        self._link = events.ctx.new_link()
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-tail", daemon=True)
        self._thread.start()

    def add(self, sub: SubscriptionSpec) -> None:
        stream = self.events.stream
        doing = "starting to wait for an event"
        last = self.events.ctx.run(doing, ("XREVRANGE", stream, "+", "-", "COUNT", 1))
        start = last[0][0] if last else b"0-0"
        with self._cond:
            pos = self._position
            if self._waiters and pos is not None and entry_id_key(pos) > entry_id_key(start):
                # the tail already read past this waiter's start: give it what it missed
                missed = self.events.ctx.run(doing, ("XRANGE", stream, b"(" + start, pos))
                self._waiters[sub] = entry_id_key(start)
                self._dispatch(missed, only=sub)
            else:
                if not self._waiters:
                    self._position = start
                self._waiters[sub] = entry_id_key(start)
            self._cond.notify_all()

    def remove(self, sub: SubscriptionSpec) -> None:
        with self._cond:
            self._waiters.pop(sub, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._link.close()

    def _dispatch(self, entries: list[Any], only: SubscriptionSpec | None = None) -> None:
        """Under the condition's lock: give each entry to the waiters it matches."""
        for entry_id, fields in entries:
            if fields is None:
                continue
            values = entry_fields(fields)
            name = values.get(b"n")
            if name is None:
                continue
            key = entry_id_key(entry_id)
            event = None
            for sub, start in list(self._waiters.items()):
                if (only is not None and sub is not only) or key <= start or not sub.matches(name.decode()):
                    continue
                if event is None:
                    try:
                        event = _decode(self.events, values)
                    except Exception:
                        break
                sub.deliver(event)

    def _run(self) -> None:
        pauses = Pauses()
        while True:
            with self._cond:
                while not self._waiters and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    break
                pos = self._position or b"$"
            try:
                reply = self._link.call("XREAD", "COUNT", 500, "BLOCK", BLOCK_MS, "STREAMS", self.events.stream, pos)
                pauses.reset()
            except Exception as exc:
                self._link.reset()
                if self._stopped:
                    break
                logger.debug("reading events for wait_for failed (%s); retrying", exc)
                time.sleep(pauses.next())
                continue
            if not reply:
                continue
            entries = reply[0][1]
            with self._cond:
                if entries:
                    self._position = entries[-1][0]
                self._dispatch(entries)
        self._link.close()


class Maintenance:
    """Heartbeat, reclaiming, dead-lettering and trimming for this process's groups."""

    TRIM_EVERY = 5.0
    TIDY_EVERY = 30.0

    def __init__(self, events: EventSource) -> None:
        self.events = events
        b = events.b
        self.alive_key = events.ctx.key("consumer", b.process_id)
        self._stopped = threading.Event()
        self._link = events.ctx.new_link()
        self._mutex = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="agentdiff-redis-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        try:  # let the others reclaim what this process still holds, now
            link = self.events.ctx.new_link()
            link.call("DEL", self.alive_key)
            link.close()
        except Exception:
            pass

    def heartbeat_now(self) -> None:
        with self._mutex:
            self._link.call("SET", self.alive_key, "1", "PX", int(self.events.b.consumer_ttl * 1000))

    def _run(self) -> None:
        b = self.events.b
        interval = min(1.0, b.consumer_ttl / 3)
        next_trim = time.monotonic() + self.TRIM_EVERY
        next_tidy = time.monotonic() + self.TIDY_EVERY
        while not self._stopped.wait(interval * random.uniform(0.8, 1.0)):
            if self.events.closed:
                break
            try:
                self.heartbeat_now()
                for reader in self.events.readers():
                    if not reader.stopped:
                        self._reclaim(reader)
                now = time.monotonic()
                if now >= next_trim:
                    next_trim = now + self.TRIM_EVERY
                    with self._mutex:
                        self._link.script(TRIM, [self.events.stream], [self.events.stream_retention])
                        self._link.call("XTRIM", self.events.dead_stream, "MAXLEN", "~", 10000)
                if now >= next_tidy:
                    next_tidy = now + self.TIDY_EVERY
                    for reader in self.events.readers():
                        self._tidy(reader.group)
            except Exception as exc:
                with self._mutex:
                    self._link.reset()
                level = logging.DEBUG if is_unavailable(exc) else logging.WARNING
                logger.log(level, "event maintenance failed (%s); trying again soon", exc)
        self._link.close()

    def _reclaim(self, reader: GroupReader) -> None:
        """Take over the entries of consumers that are gone; re-deliver our own lost reads."""
        ev, b = self.events, self.events.b
        stream, group, me = ev.stream, reader.group, b.process_id.encode()
        min_idle = int(b.consumer_ttl * 1000)
        with self._mutex:
            pending = self._link.call("XPENDING", stream, group, "IDLE", min_idle, "-", "+", 100)
        if not pending:
            return
        others = sorted({p[1] for p in pending if p[1] != me})
        alive: dict[bytes, bool] = {}
        if others:
            with self._mutex:
                flags = self._link.call("MGET", *[self.events.ctx.key("consumer", c.decode()) for c in others])
            alive = {c: f is not None for c, f in zip(others, flags)}
        take: list[bytes] = []
        for entry_id, consumer, _idle, deliveries in pending:
            if consumer == me:
                if entry_id in reader.inflight_ids:
                    continue  # still being handled here
            elif alive.get(consumer, False):
                continue
            if deliveries >= b.max_deliveries:
                with self._mutex:
                    found = self._link.call("XRANGE", stream, entry_id, entry_id)
                fields = found[0][1] if found else []
                self.dead_letter(group, entry_id, fields, f"delivered {deliveries} times; last consumer "
                                 f"{consumer.decode()} is gone")
                continue
            take.append(entry_id)
        if take:
            with self._mutex:
                claimed = self._link.call("XCLAIM", stream, group, me, min_idle, *take)
            claimed = [c for c in claimed if c]
            if claimed:
                logger.info("reclaimed %d event(s) of %s from consumers that are gone", len(claimed), group)
                reader.deliver(claimed)

    def dead_letter(self, group: str, entry_id: bytes, fields: list[bytes], reason: str) -> None:
        """Move one entry of ``group`` to the dead-letter stream and acknowledge it."""
        ev = self.events
        logger.error("event entry %s of %s moved to %s: %s", entry_id.decode(), group, ev.dead_stream, reason)
        with self._mutex:
            self._link.pipeline([
                ["XADD", ev.dead_stream, "*", *fields, "group", group, "entry", entry_id, "reason", reason],
                ["XACK", ev.stream, group, entry_id],
            ])

    def _tidy(self, group: str) -> None:
        """Forget consumers of ``group`` that are gone and hold nothing."""
        b = self.events.b
        with self._mutex:
            consumers = self._link.call("XINFO", "CONSUMERS", self.events.stream, group)
        for info in consumers:
            d = dict(zip(info[::2], info[1::2]))
            name, pending, idle = d.get(b"name"), d.get(b"pending", 0), d.get(b"idle", 0)
            if name is None or pending or idle < b.consumer_ttl * 1000 or name.decode() == b.process_id:
                continue
            with self._mutex:
                if self._link.call("EXISTS", self.events.ctx.key("consumer", name.decode())):
                    continue
                self._link.call("XGROUP", "DELCONSUMER", self.events.stream, group, name)
