"""Events: ``emit``, ``@when`` handlers, ``wait_for`` and ``drain``.

Handlers run off the emitter's call stack (``handlers.py`` runs them): sync handlers
on worker threads, async handlers on an event loop (the one that was running where
``@when`` was applied while it runs, else one the bus owns). Each subscription has its
own queue and handles its events one at a time in emit order; different subscriptions
run in parallel. A handler that raises is logged with its traceback, retried, then kept
as a dead letter; the emitter and the other handlers never see its failure.

The bus counts deliveries not yet handled, so ``drain()`` can wait for a whole
chain of handlers that emit further events, and the interpreter drains (bounded)
at exit so a script that emits and returns still runs its handlers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .errors import CoordinationError, CoordinationTimeoutError
from .handlers import DeadLetter, HandlerRunner, _current_event, current_event
from .subscriptions import Subscription, _Waiter, check_handler_signature, is_unbound_method
from .validation import check_decorator_name, check_name, check_timeout

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = [
    "Bus",
    "DeadLetter",
    "Event",
    "Subscription",
    "bus",
    "current_event",
    "dead_letters",
    "drain",
    "emit",
    "unsubscribe",
    "wait_for",
    "when",
]

logger = logging.getLogger("agentdiff_coordination")

F = TypeVar("F", bound=Callable[..., Any])


class Event(NamedTuple):
    """One event: its ``name``, its ``data`` (what handlers receive), a unique ``id``,
    the ``sender`` given to ``emit`` (or the coordinated step's name) and the wall
    ``timestamp`` at emit. Immutable (a named tuple: cheap to make on every emit)."""

    name: str
    data: Any
    id: str
    sender: str | None
    timestamp: float


# Event ids: a per-process random prefix and a counter; cheap, unique across processes.
_id_prefix = secrets.token_hex(4) + "-"
_ids = itertools.count(1)


def _new_prefix() -> None:  # after fork, the child gets its own prefix
    global _id_prefix, _ids
    _id_prefix = secrets.token_hex(4) + "-"
    _ids = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Bus:
    """The process's event bus: subscriptions, delivery, accounting for ``drain``."""

    CACHE_LIMIT = 4096

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._idle = threading.Condition(self._mutex)
        self._subs: list[Subscription] = []
        self._cache: dict[str, tuple[Subscription, ...]] = {}
        self._pending = 0
        self._backend: Backend | None = None
        self._runner = HandlerRunner(self)
        self._exit_hook = False

    # -- backend -----------------------------------------------------------------
    def attach(self, backend: Backend) -> None:
        """Make ``backend`` carry this bus's events; existing subscriptions move to it."""
        backend.bind(self)
        with self._mutex:
            self._backend = backend
            subs = list(self._subs)
        for sub in subs:
            backend.subscribe(sub)

    @property
    def backend(self) -> Backend:
        b = self._backend
        if b is None:
            from .config import get_backend

            b = get_backend()
        return b

    # -- subscriptions -----------------------------------------------------------
    def add(self, sub: Subscription) -> Subscription:
        backend = self.backend
        sub.bus = self
        with self._mutex:
            self._subs.append(sub)
            self._cache.clear()
        backend.subscribe(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        with self._mutex:
            if not sub.active:
                return
            sub.active = False
            try:
                self._subs.remove(sub)
            except ValueError:
                pass
            self._cache.clear()
        if self._backend is not None:
            self._backend.unsubscribe(sub)

    def subscriptions(self) -> list[Subscription]:
        with self._mutex:
            return list(self._subs)

    def matching(self, name: str) -> tuple[Subscription, ...]:
        """The local subscriptions whose pattern matches ``name`` (cached)."""
        subs = self._cache.get(name)
        if subs is None:
            with self._mutex:
                subs = tuple(s for s in self._subs if s.matches(name))
                if len(self._cache) >= self.CACHE_LIMIT:
                    self._cache.clear()
                self._cache[name] = subs
        return subs

    def interested(self, name: str) -> bool:
        """Whether an event named ``name`` could reach anyone (cheap; for lazy payloads)."""
        subs = self._cache.get(name)
        if subs is None:
            subs = self.matching(name)
        if subs:
            return True
        return (self._backend or self.backend).shared

    # -- emitting ----------------------------------------------------------------
    def emit(self, name: str, data: Any = None, sender: str | None = None) -> str:
        if type(name) is not str or not name or name.strip() is not name:
            check_name(name, "event name")
        if sender is not None and type(sender) is not str:
            raise TypeError(f"sender must be a string or None, not {type(sender).__name__} ({sender!r})")
        event_id = _id_prefix + str(next(_ids))
        subs = self._cache.get(name)
        backend = self._backend or self.backend
        if not subs and not backend.shared and not (subs is None and self.matching(name)):
            return event_id
        backend.publish(Event(name, data, event_id, sender, time.time()))
        return event_id

    def dispatch_local(self, event: Event) -> None:
        """Hand ``event`` to every local subscription that matches it."""
        for sub in self.matching(event.name):
            sub.deliver(event)

    def deliver(self, sub: Subscription, event: Event, ack: Callable[[], None] | None = None) -> None:
        """Queue one event for one handler subscription; it is counted until handled."""
        with self._mutex:
            self._pending += 1
            sub.queue.append((event, ack))
            if sub.running:
                return
            sub.running = True
            if not self._exit_hook:
                self._exit_hook = True
                _register_exit_drain()
        self._runner.start(sub)

    # -- accounting (used by the handler runner) -----------------------------------
    def _done(self) -> None:
        with self._mutex:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def _next(self, sub: Subscription) -> tuple[Event, Callable[[], None] | None] | None:
        with self._mutex:
            if not sub.queue:
                sub.running = False
                return None
            return sub.queue.popleft()

    def _requeue(self, sub: Subscription, event: Event, ack: Callable[[], None] | None) -> None:
        with self._mutex:
            sub.queue.appendleft((event, ack))

    def dead_letters(self, clear: bool = False) -> list[DeadLetter]:
        return self._runner.dead_letters(clear)

    # -- waiting -----------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._pending

    def drain(self, timeout: float | None = None) -> bool:
        if _current_event.get() is not None:
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
        if self._backend is not None and not self._backend.drain(remaining):
            return False
        return self._pending == 0


_bus: Bus | None = None
_bus_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: start its bus afresh."""
    b = _bus
    if b is None:
        return
    b._mutex = threading.Lock()
    b._idle = threading.Condition(b._mutex)
    b._pending = 0
    b._runner = HandlerRunner(b)
    for sub in b._subs:
        sub.queue.clear()
        sub.running = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_for_tests(timeout: float = 5.0) -> None:
    """Drain, then drop every subscription and dead letter (test helper)."""
    b = _bus
    if b is None:
        return
    if _current_event.get() is None:
        b.drain(timeout)
    for sub in b.subscriptions():
        b.remove(sub)
    b.dead_letters(clear=True)


def bus() -> Bus:
    """The process's bus (made on first use; starts no thread by itself)."""
    global _bus
    b = _bus
    if b is None:
        with _bus_lock:
            if _bus is None:
                _bus = Bus()
            b = _bus
    return b


def _exit_drain() -> None:
    from .config import settings

    b = _bus
    if b is None or not b.pending:
        return
    timeout = settings().exit_drain_timeout
    try:
        idle = b.drain(timeout)
    except CoordinationError as exc:  # e.g. the shared backend is unreachable at exit
        logger.warning("could not drain pending events at interpreter exit: %s", exc)
        return
    if not idle:
        logger.warning(
            "%d event deliveries were still pending at interpreter exit after waiting %.1fs "
            "(AGENTDIFF_COORDINATION_EXIT_DRAIN); their handlers did not run to the end",
            b.pending, timeout,
        )


def _register_exit_drain() -> None:
    # threading's own exit hooks run before the interpreter finalizes, while
    # handler threads may still start; fall back to atexit elsewhere. Hooks run in
    # reverse order of registration: importing the thread pool module first makes its
    # shutdown hook run after the drain, so handlers can still use to_thread/executors.
    import concurrent.futures.thread  # noqa: F401

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(_exit_drain)
            return
    except RuntimeError:
        return  # already shutting down
    import atexit

    atexit.register(_exit_drain)


# -- the public functions ----------------------------------------------------------


def emit(event: str, data: Any = None, *, sender: str | None = None) -> str:
    """Publish ``event`` with ``data``; returns the event's id. Handlers run elsewhere."""
    return bus().emit(event, data, sender)


def when(
    pattern: str,
    *,
    retries: int | None = None,
    retry_delay: float | None = None,
    group: str | None = None,
) -> Callable[[F], F]:
    """Run the decorated handler with the data of every event matching ``pattern``.

    ``pattern`` uses shell wildcards (``"*_failed"``, ``"researcher_*"``). The handler
    is returned unchanged (still callable directly); ``unsubscribe(handler)`` stops it.
    ``retries``/``retry_delay`` override the configured retry policy for this handler;
    ``group`` names the subscription across processes (default: the handler's
    qualified name and the pattern).
    """
    check_decorator_name(pattern, "when", "researcher_complete")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        raise ValueError(f"retries must be an int >= 0, not {retries!r}")
    delay = check_timeout(retry_delay, "retry_delay")
    if group is not None:
        check_name(group, "group")

    def decorate(handler: F) -> F:
        if not callable(handler):
            raise TypeError(f"@when({pattern!r}) decorates a callable, not {handler!r}")
        check_handler_signature(pattern, handler)
        if is_unbound_method(handler):
            raise TypeError(
                f"@when({pattern!r}) on {handler.__qualname__}, a method defined in a class body, would be "
                "called without 'self'; subscribe the bound method instead: when(pattern)(instance.method)"
            )
        sub = Subscription(
            pattern, handler, group=group, retries=retries, retry_delay=delay, loop=_running_loop()
        )
        bus().add(sub)
        subs = getattr(handler, "__agentdiff_subscriptions__", None)
        if subs is None:
            try:
                handler.__agentdiff_subscriptions__ = subs = []  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                subs = None
        if subs is not None:
            subs.append(sub)
        return handler

    return decorate


def unsubscribe(handler: Callable[..., Any] | Subscription) -> int:
    """Stop a handler (every ``@when`` on it) or one subscription; returns how many stopped."""
    b = bus()
    if isinstance(handler, Subscription):
        b.remove(handler)
        return 1
    stopped = 0
    for sub in b.subscriptions():
        if sub.handler is handler or sub.handler == handler:
            b.remove(sub)
            stopped += 1
    return stopped


def dead_letters(*, clear: bool = False) -> list[DeadLetter]:
    """The events whose handlers failed every attempt (oldest first); ``clear`` empties the list."""
    return bus().dead_letters(clear)


def wait_for(pattern: str, *, timeout: float | None = None) -> Any:
    """Wait until an event matching ``pattern`` is emitted, and return its data.

    In sync code this blocks; called where an event loop is running it returns an
    awaitable (``data = await wait_for("x_complete")``). Only events emitted after the
    call count; ``timeout`` raises ``CoordinationTimeoutError``.
    """
    check_name(pattern, "event pattern")
    seconds = check_timeout(timeout)
    loop = _running_loop()
    b = bus()
    waiter = _Waiter(pattern, loop)
    b.add(waiter)
    if loop is not None:
        return _wait_async(b, waiter, pattern, seconds)
    try:
        if not waiter._done.wait(seconds):
            raise CoordinationTimeoutError(
                f"no event matching {pattern!r} arrived within {seconds}s", resource=pattern, timeout=seconds
            )
    finally:
        b.remove(waiter)
    assert waiter._event is not None
    return waiter._event.data


async def _wait_async(b: Bus, waiter: _Waiter, pattern: str, seconds: float | None) -> Any:
    assert waiter._future is not None
    try:
        event = await asyncio.wait_for(asyncio.shield(waiter._future), seconds)
    except (TimeoutError, asyncio.TimeoutError):  # distinct before 3.11
        raise CoordinationTimeoutError(
            f"no event matching {pattern!r} arrived within {seconds}s", resource=pattern, timeout=seconds
        ) from None
    finally:
        b.remove(waiter)
    return event.data


def drain(timeout: float | None = None) -> Any:
    """Wait until every event emitted so far, and every event its handlers emitted,
    has been handled; True when idle, False when ``timeout`` passed first.

    Where an event loop is running, returns an awaitable (``await drain()``).
    """
    seconds = check_timeout(timeout)
    b = bus()
    if _running_loop() is not None:
        return _drain_async(b, seconds)
    return b.drain(seconds)


async def _drain_async(b: Bus, seconds: float | None) -> bool:
    if _current_event.get() is not None:
        b.drain(0)  # raises the in-handler error
    return await asyncio.get_running_loop().run_in_executor(None, b.drain, seconds)
