"""Running handlers: worker threads for sync handlers, an event loop for async ones,
retries, dead letters, and ``current_event()`` inside a handler.

The bus (``bus.py``) decides *what* each subscription receives; this module decides
*where and how* its handler runs. One subscription runs one event at a time, in the order
the bus queued them; different subscriptions run in parallel.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, cast

from . import observers as _observers
from .observers import LiveSpan
from .records import Ack, DeadLetter, Event
from .retry import delays
from .settings import Settings

if TYPE_CHECKING:
    from .subscriptions import Subscription

__all__ = ["HandlerRunner", "current_event"]

logger = logging.getLogger("agentdiff_coordination")

_current_event: ContextVar[Event | None] = ContextVar("agentdiff_current_event", default=None)


def current_event() -> Event | None:
    """The event being handled, inside a handler (its name, id, sender, time); else None."""
    return _current_event.get()


class _Queues(Protocol):
    """What the runner needs from the bus: the next queued event, and accounting."""

    def next_delivery(self, sub: Subscription) -> tuple[Event, Ack | None] | None: ...
    def delivery_done(self) -> None: ...
    def dead_lettered(self, letter: DeadLetter, shared: bool) -> None: ...
    def requeue(self, sub: Subscription, event: Event, ack: Ack | None) -> None: ...


class _Workers:
    """Daemon worker threads, made on demand up to a cap and retired when idle."""

    IDLE_SECONDS = 30.0

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._mutex = threading.Lock()
        self._threads = 0
        self._idle = 0  # workers blocked in get() minus tasks already promised to them

    def submit(self, task: Callable[[], None]) -> None:
        with self._mutex:
            if self._idle > 0:
                self._idle -= 1  # promised to a waiting worker
                number = 0
            elif self._threads >= self._cap:
                number = 0  # queued: a busy worker takes it when done
            else:
                self._threads += 1
                number = self._threads
        # the put comes last, so the woken worker does not wait for this thread to finish
        self._queue.put(task)
        if number:
            threading.Thread(target=self._work, name=f"agentdiff-handler-{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                task = self._queue.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._mutex:
                    if self._idle > 0:
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a task was promised to this worker: wait for it
            task()
            with self._mutex:
                self._idle += 1


def _safe_ack(ack: Ack, event: Event) -> None:
    try:
        ack()
    except Exception:
        logger.exception("could not acknowledge event %r (id %s); it may be delivered again", event.name, event.id)


class HandlerRunner:
    """Runs the handlers of the subscriptions the bus hands it."""

    def __init__(self, queues: _Queues, settings: Callable[[], Settings]) -> None:
        self._queues = queues
        self._settings = settings
        self._mutex = threading.Lock()
        self._workers: _Workers | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dead: deque[DeadLetter] = deque()
        self._dead_dropped = 0

    def start(self, sub: Subscription) -> None:
        """Begin running ``sub``'s queue (the bus marked it running)."""
        if sub.is_async:
            self._schedule_async(sub)
        else:
            self._pool().submit(lambda: self._run_sync(sub))

    # -- sync handlers on worker threads ---------------------------------------------
    def _pool(self) -> _Workers:
        w = self._workers
        if w is None:
            with self._mutex:
                if self._workers is None:
                    self._workers = _Workers(self._settings().handler_threads)
                w = self._workers
        return w

    def _run_sync(self, sub: Subscription) -> None:
        queues = self._queues
        while (item := queues.next_delivery(sub)) is not None:
            event, ack = item
            try:
                self._handle_sync(sub, event, ack is not None)
            finally:
                if ack is not None:
                    _safe_ack(ack, event)
                queues.delivery_done()

    def _handle_sync(self, sub: Subscription, event: Event, shared: bool) -> None:
        handler = cast(Callable[[Any], Any], sub.handler)
        attempts = _Attempts(self, sub, event, shared)
        token = _current_event.set(event)
        try:
            while True:
                try:
                    handler(event.data)
                    return attempts.handled()
                except BaseException as exc:  # SystemExit in a handler: dead-lettered, not fatal
                    pause = attempts.failed(exc)
                    if pause is None:
                        return
                time.sleep(pause)
        finally:
            _current_event.reset(token)

    # -- async handlers on an event loop -----------------------------------------------
    def _schedule_async(self, sub: Subscription) -> None:
        loop = sub.loop
        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(self._start_task, sub)
                return
            except RuntimeError:
                pass  # closed meanwhile
        sub.loop = None
        self._own_loop().call_soon_threadsafe(self._start_task, sub)

    def _start_task(self, sub: Subscription) -> None:
        asyncio.get_running_loop().create_task(self._run_async(sub))

    async def _run_async(self, sub: Subscription) -> None:
        queues = self._queues
        while (item := queues.next_delivery(sub)) is not None:
            event, ack = item
            try:
                await self._handle_async(sub, event, ack is not None)
            except asyncio.CancelledError:
                # the loop that ran this handler is shutting down: move the rest,
                # this event included, to the runner's own loop
                queues.requeue(sub, event, ack)
                sub.loop = None
                self._schedule_async(sub)
                raise
            if ack is not None:
                _safe_ack(ack, event)
            queues.delivery_done()

    async def _handle_async(self, sub: Subscription, event: Event, shared: bool) -> None:
        handler = cast(Callable[[Any], Coroutine[Any, Any, Any]], sub.handler)
        attempts = _Attempts(self, sub, event, shared)
        token = _current_event.set(event)
        try:
            while True:
                try:
                    await handler(event.data)
                    return attempts.handled()
                except Exception as exc:  # a cancellation is the loop's, never the handler's failure
                    pause = attempts.failed(exc)
                    if pause is None:
                        return
                await asyncio.sleep(pause)
        finally:
            _current_event.reset(token)

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            with self._mutex:
                if self._loop is None:
                    ready = threading.Event()
                    new = asyncio.new_event_loop()

                    def run() -> None:
                        asyncio.set_event_loop(new)
                        new.call_soon(ready.set)
                        new.run_forever()

                    threading.Thread(target=run, name="agentdiff-events-loop", daemon=True).start()
                    ready.wait()
                    self._loop = new
                loop = self._loop
        return loop

    # -- failures ----------------------------------------------------------------------
    def dead_letter(self, sub: Subscription, event: Event, exc: BaseException, attempts: int, shared: bool = False) -> None:
        """Keep ``event`` as a dead letter of ``sub`` (and on the shared backend it came from)
        and log why, with the traceback."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        logger.error(
            "handler %s failed on event %r (id %s) after %d attempt(s); kept in dead_letters()\n%s",
            sub.group, event.name, event.id, attempts, tb.rstrip(),
            extra={"coordination_event": event.name, "coordination_event_id": event.id, "coordination_handler": sub.group},
        )
        _observers.notify("dead_letter", event=event.name, handler=sub.group)
        letter = DeadLetter(event, sub.group, exc, tb, attempts)
        self._queues.dead_lettered(letter, shared)
        self.keep(letter)

    def keep(self, letter: DeadLetter) -> None:
        """Keep ``letter`` in ``dead_letters()`` (the oldest go past ``dead_letter_limit``, with a warning)."""
        limit = self._settings().dead_letter_limit
        dropped = 0
        with self._mutex:
            self._dead.append(letter)
            while len(self._dead) > limit:
                self._dead.popleft()
                self._dead_dropped += 1
                dropped = self._dead_dropped
        if dropped:
            logger.warning("dead-letter list is full (%d); dropped the oldest (%d dropped so far)", limit, dropped)

    def dead_letters(self, clear: bool = False) -> list[DeadLetter]:
        with self._mutex:
            out = list(self._dead)
            if clear:
                self._dead.clear()
        return out


class _Attempts:
    """The retry plan of one delivery, shared by the sync and async drivers: after a
    failure, the pause before the next attempt, or None once the event is dead-lettered."""

    __slots__ = ("runner", "sub", "event", "shared", "attempt", "retries", "pauses", "span")

    def __init__(self, runner: HandlerRunner, sub: Subscription, event: Event, shared: bool) -> None:
        s = runner._settings()
        self.runner, self.sub, self.event, self.shared = runner, sub, event, shared
        self.attempt = 1
        self.retries = s.handler_retries if sub.retries is None else sub.retries
        first = s.retry_delay if sub.retry_delay is None else sub.retry_delay
        self.pauses = delays(first, self.retries)
        self.span = None if not _observers.current else LiveSpan(
            "handle", None, None, event.name,
            {"coordination.event.name": event.name, "coordination.event.pattern": sub.pattern,
             "coordination.handler": sub.group},
            parent=event.trace,
        )

    def handled(self) -> None:
        if self.span is not None:
            self.span.finish("complete")

    def failed(self, exc: BaseException) -> float | None:
        pause = next(self.pauses, None) if isinstance(exc, Exception) else None
        sub, event = self.sub, self.event
        if pause is None:
            self.runner.dead_letter(sub, event, exc, self.attempt, self.shared)
            if self.span is not None:
                self.span.finish("failed", exc)
            return None
        logger.warning(
            "handler %s failed on event %r (id %s), attempt %d of %d; retrying: %s: %s",
            sub.group, event.name, event.id, self.attempt, self.retries + 1, type(exc).__name__, exc,
            extra={"coordination_event": event.name, "coordination_event_id": event.id, "coordination_handler": sub.group},
        )
        self.attempt += 1
        return pause


def in_handler() -> bool:
    """Whether the caller runs inside a handler."""
    return _current_event.get() is not None
