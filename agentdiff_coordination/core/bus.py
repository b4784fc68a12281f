"""The bus: this process's subscriptions, the delivery of events to them, and the
accounting that lets ``drain()`` wait for a whole chain of handlers.

The bus matches event names against subscriptions and queues each delivery; the
handler runner (``handlers.py``) runs the queued handlers. The backend carries events
between emitters and subscribers (here only, or across processes) and hands them back
through the bus, which is its ``EventSink``. The runtime makes the one bus of the
process and gives it what it needs: the backend in force and the settings.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .backends.base import Backend
from .errors import CoordinationError
from . import observers as _observers
from .handlers import HandlerRunner, in_handler
from .observers import carrier
from .records import Ack, DeadLetter, Event, SubscriptionSpec, new_event_id
from .settings import Settings
from .snapshots import ConsumerStatus, EventsStatus
from .subscriptions import Subscription
from .validation import check_encodable, check_name

__all__ = ["UNSENT", "Bus"]

#: the "handler" of a dead letter the backend could not send
UNSENT = "(not sent)"

logger = logging.getLogger("agentdiff_coordination")


class Bus:
    """The process's event bus: subscriptions, delivery, accounting for ``drain``.

    ``listeners`` maps an event name to the local subscriptions it matches (a cache,
    read-only outside the bus): ``listeners.get(name) == ()`` tells, without a call,
    that nobody here listens. ``local_only`` is True while the backend in use carries
    events to this process only.
    """

    CACHE_LIMIT = 4096

    def __init__(self, backend: Callable[[], Backend], settings: Callable[[], Settings]) -> None:
        self._backend_in_force = backend
        self._settings = settings
        self._mutex = threading.Lock()
        self._idle = threading.Condition(self._mutex)
        self._room = threading.Condition(self._mutex)
        self._subs: list[SubscriptionSpec] = []
        self.listeners: dict[str, tuple[SubscriptionSpec, ...]] = {}
        self._pending = 0
        self.attached: Backend | None = None
        self.local_only = False
        self._runner = HandlerRunner(self, settings)
        self._exit_hook = False

    # -- backend -----------------------------------------------------------------
    def attach(self, backend: Backend) -> None:
        """Make ``backend`` carry this bus's events; existing subscriptions move to it."""
        with self._mutex:
            self.attached = backend
            self.local_only = not backend.shared
            subs = list(self._subs)
        for sub in subs:
            backend.subscribe(sub)

    def detach(self) -> None:
        """Forget the backend; the next use attaches the one in force then."""
        with self._mutex:
            self.attached = None
            self.local_only = False

    @property
    def backend(self) -> Backend:
        """The backend carrying this bus's events (the one in force, attached on first use)."""
        b = self.attached
        return b if b is not None else self._backend_in_force()

    # -- subscriptions -----------------------------------------------------------
    def add(self, sub: SubscriptionSpec) -> SubscriptionSpec:
        backend = self.backend
        if isinstance(sub, Subscription):
            sub.bus = self
        with self._mutex:
            self._subs.append(sub)
            self.listeners.clear()
        backend.subscribe(sub)
        return sub

    def remove(self, sub: SubscriptionSpec) -> None:
        with self._mutex:
            if not sub.active:
                return
            sub.active = False
            try:
                self._subs.remove(sub)
            except ValueError:
                pass
            self.listeners.clear()
            backend = self.attached
        if backend is not None:
            backend.unsubscribe(sub)

    def subscriptions(self) -> list[SubscriptionSpec]:
        with self._mutex:
            return list(self._subs)

    def matching(self, name: str) -> tuple[SubscriptionSpec, ...]:
        """The local subscriptions whose pattern matches ``name`` (cached)."""
        subs = self.listeners.get(name)
        if subs is None:
            with self._mutex:
                subs = tuple(s for s in self._subs if s.matches(name))
                if len(self.listeners) >= self.CACHE_LIMIT:
                    self.listeners.clear()
                self.listeners[name] = subs
        return subs

    def interested(self, name: str) -> bool:
        """Whether an event named ``name`` could reach anyone (cheap; for lazy payloads)."""
        subs = self.listeners.get(name)
        if subs is None:
            subs = self.matching(name)
        if subs:
            return True
        return self.backend.shared

    # -- emitting ----------------------------------------------------------------
    def emit(self, name: str, data: Any = None, sender: str | None = None) -> str:
        if type(name) is not str or not name or name.strip() is not name:
            check_name(name, "event name")
        if sender is not None and type(sender) is not str:
            raise TypeError(f"sender must be a string or None, not {type(sender).__name__} ({sender!r})")
        event_id = new_event_id()
        subs = self.listeners.get(name)
        backend = self.attached or self.backend
        if not subs and not backend.shared and not (subs is None and self.matching(name)):
            return event_id
        if data is not None:
            check_encodable(name, data)
        trace = carrier() if _observers.current else None
        backend.publish(Event(name, data, event_id, sender, time.time(), trace))
        return event_id

    def dispatch_local(self, event: Event) -> None:
        """Hand ``event`` to every local subscription that matches it."""
        for sub in self.matching(event.name):
            sub.deliver(event)

    def deliver(self, sub: Subscription, event: Event, ack: Ack | None = None) -> None:
        """Queue one event for one handler subscription; it is counted until handled."""
        with self._mutex:
            if self._pending >= self._max_pending:
                self._wait_for_room(event, local=ack is None)
            self._pending += 1
            sub.queue.append((event, ack))
            if sub.running:
                return
            sub.running = True
            if not self._exit_hook:
                self._exit_hook = True
                _register_exit_drain(self)
        self._runner.start(sub)

    @property
    def _max_pending(self) -> int:
        return self._settings().max_pending

    def _wait_for_room(self, event: Event, local: bool) -> None:
        """Under the mutex, with ``max_pending`` deliveries waiting: wait until one is handled.
        An event emitted here waits at most ``pending_timeout``, then ``emit`` raises; one read
        from a shared backend waits as long as it takes (it is not acknowledged meanwhile)."""
        s = self._settings()
        timeout = s.pending_timeout if local else None
        if not self._room.wait_for(lambda: self._pending < s.max_pending, timeout):
            raise CoordinationError(
                f"event {event.name!r} was not accepted: {self._pending} events are waiting for their handlers "
                f"(max_pending={s.max_pending}) and none was handled within {timeout}s (pending_timeout); "
                "handlers are too slow for the rate of emits: raise max_pending, speed the handlers up, or emit less"
            )

    # -- the handler runner's side ---------------------------------------------------
    def next_delivery(self, sub: Subscription) -> tuple[Event, Ack | None] | None:
        """The next event queued for ``sub``; None (and ``sub`` marked idle) when none is."""
        with self._mutex:
            if not sub.queue:
                sub.running = False
                return None
            return sub.queue.popleft()

    def delivery_done(self) -> None:
        """One delivery was handled (or dead-lettered)."""
        with self._mutex:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()
            self._room.notify()

    def dead_lettered(self, letter: DeadLetter, shared: bool) -> None:
        """A handler gave up on an event; one that came from a shared backend is kept there too."""
        backend = self.attached
        if shared and backend is not None:
            try:
                backend.record_dead_letter(letter)
            except Exception:
                logger.exception("could not keep the dead letter of %r on %s", letter.event.name, backend.url)

    def unsent(self, event: Event, error: BaseException) -> None:
        """An event the backend could not send: kept in ``dead_letters()`` (handler ``(not sent)``)."""
        self._runner.keep(DeadLetter(event, UNSENT, error, f"{type(error).__name__}: {error}", 0))

    def requeue(self, sub: Subscription, event: Event, ack: Ack | None) -> None:
        """Put an event back at the head of ``sub``'s queue (its loop went away)."""
        with self._mutex:
            sub.queue.appendleft((event, ack))

    def dead_letters(self, clear: bool = False) -> list[DeadLetter]:
        return self._runner.dead_letters(clear)

    def replay_dead_letters(self) -> int:
        """Hand every dead letter again to the handler that failed it; how many were sent.
        Refused (``LookupError``, nothing dropped) when one of those handlers is gone."""
        groups = {sub.group: sub for sub in self.subscriptions() if isinstance(sub, Subscription)}
        missing = sorted({d.handler for d in self.dead_letters() if d.handler not in groups})
        if missing:
            raise LookupError(
                f"cannot replay: no handler is subscribed for {', '.join(missing)} in this process; subscribe it "
                "again, or purge the dead letters"
            )
        letters = self.dead_letters(clear=True)
        for letter in letters:
            self.deliver(groups[letter.handler], letter.event)
        return len(letters)

    def events_status(self) -> EventsStatus:
        """Pending deliveries, dead letters, and each handler subscription's queue here."""
        me = f"{socket.gethostname()}:{os.getpid()}"
        consumers = tuple(
            ConsumerStatus(sub.group, me, len(sub.queue), None) for sub in self.subscriptions() if isinstance(sub, Subscription)
        )
        return EventsStatus(self._pending, len(self.dead_letters()), consumers)

    # -- waiting -----------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Deliveries queued in this process and not yet handled."""
        return self._pending

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every delivery (and what the backend still carries) is handled."""
        if in_handler():
            raise CoordinationError(
                "drain() was called from inside a handler: it would wait for that handler itself; "
                "drain from the code that emits instead"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        backend = self.attached
        if backend is not None and not backend.drain(remaining):
            return False
        # events that could not be sent are lost until someone looks: not idle while they are kept
        return self._pending == 0 and not any(d.handler == UNSENT for d in self.dead_letters())

    def exit_drain(self) -> None:
        """At interpreter exit: drain within ``exit_drain_timeout`` and say what was left."""
        if not self._pending:
            return
        timeout = self._settings().exit_drain_timeout
        try:
            idle = self.drain(timeout)
        except CoordinationError as exc:  # e.g. the shared backend is unreachable at exit
            logger.warning("could not drain pending events at interpreter exit: %s", exc)
            return
        if not idle:
            logger.warning(
                "%d event deliveries were still pending at interpreter exit after waiting %.1fs "
                "(exit_drain_timeout, AGENTDIFF_COORDINATION_EXIT_DRAIN); their handlers did not run to the end",
                self._pending, timeout,
            )

    # -- resets ------------------------------------------------------------------
    def after_fork(self) -> None:
        """In a forked child: none of the parent's threads exist here; start afresh."""
        self._mutex = threading.Lock()
        self._idle = threading.Condition(self._mutex)
        self._room = threading.Condition(self._mutex)
        self._pending = 0
        self._runner = HandlerRunner(self, self._settings)
        for sub in self._subs:
            if isinstance(sub, Subscription):
                sub.queue.clear()
                sub.running = False

    def reset(self, timeout: float = 5.0) -> None:
        """Drain (bounded), then drop every subscription and dead letter."""
        if not in_handler():
            self.drain(timeout)
        for sub in self.subscriptions():
            self.remove(sub)
        self.dead_letters(clear=True)


def _register_exit_drain(bus: Bus) -> None:
    # threading's own exit hooks run before the interpreter finalizes, while
    # handler threads may still start; fall back to atexit elsewhere. Hooks run in
    # reverse order of registration: importing the thread pool module first makes its
    # shutdown hook run after the drain, so handlers can still use to_thread/executors.
    import concurrent.futures.thread  # noqa: F401

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(bus.exit_drain)
            return
    except RuntimeError:
        return  # already shutting down
    import atexit

    atexit.register(bus.exit_drain)
