"""Subscriptions: a pattern and what receives the events that match it.

A ``Subscription`` runs a handler (``@when``); a ``_Waiter`` resolves one ``wait_for``.
The bus (``events.py``) matches event names against them and queues deliveries; the
handler runner (``handlers.py``) runs the queued handlers.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import Bus, Event

__all__ = ["Subscription", "check_handler_signature", "is_unbound_method"]


def _callable_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{qualname}"


class Subscription:
    """A pattern and what to do with the events that match it.

    ``group`` names the subscription across processes: on a shared backend, the
    processes that subscribe with one group share its events (each event is handled
    once per group, at least once).
    """

    __slots__ = (
        "pattern", "handler", "group", "retries", "retry_delay", "is_async", "loop",
        "_exact", "_regex", "queue", "running", "active", "bus", "__weakref__",
    )

    kind = "handler"

    def __init__(
        self,
        pattern: str,
        handler: Callable[[Any], Any] | None,
        *,
        group: str | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.pattern = pattern
        self.handler = handler
        self.group = group or (f"{_callable_name(handler)}:{pattern}" if handler is not None else pattern)
        self.retries = retries
        self.retry_delay = retry_delay
        self.is_async = handler is not None and (
            inspect.iscoroutinefunction(handler)
            or inspect.iscoroutinefunction(getattr(handler, "__call__", None))
        )
        self.loop = loop
        self._exact = not any(c in pattern for c in "*?[")
        self._regex = None if self._exact else re.compile(fnmatch.translate(pattern))
        self.queue: deque[tuple[Event, Callable[[], None] | None]] = deque()
        self.running = False
        self.active = True
        #: the bus this subscription was added to
        self.bus: Bus | None = None

    def matches(self, name: str) -> bool:
        if self._exact:
            return name == self.pattern
        assert self._regex is not None
        return self._regex.match(name) is not None

    def deliver(self, event: Event, ack: Callable[[], None] | None = None) -> None:
        """Queue ``event`` for this subscription's handler (``ack`` runs once it is handled)."""
        b = self.bus
        if b is None:
            from .events import bus

            b = bus()
        b.deliver(self, event, ack)

    def cancel(self) -> None:
        """Stop receiving events; events already queued are still handled."""
        from .events import bus

        bus().remove(self)

    def __repr__(self) -> str:
        return f"<Subscription {self.pattern!r} -> {self.group}>"


class _Waiter(Subscription):
    """A one-shot subscription behind ``wait_for``: resolves on the first match."""

    __slots__ = ("_done", "_event", "_future", "_mutex")
    kind = "waiter"

    def __init__(self, pattern: str, loop: asyncio.AbstractEventLoop | None) -> None:
        super().__init__(pattern, None, group=f"wait_for:{pattern}")
        self._mutex = threading.Lock()
        self._event: Event | None = None
        self._done = threading.Event()
        self._future: asyncio.Future[Event] | None = loop.create_future() if loop is not None else None

    def deliver(self, event: Event, ack: Callable[[], None] | None = None) -> None:
        with self._mutex:
            if self._event is not None:
                return
            self._event = event
        self._done.set()
        fut = self._future
        if fut is not None:
            try:
                fut.get_loop().call_soon_threadsafe(_set_future, fut, event)
            except RuntimeError:
                pass  # the waiting loop is gone; nobody waits any more
        if ack is not None:
            ack()


def _set_future(fut: asyncio.Future[Event], event: Event) -> None:
    if not fut.done():
        fut.set_result(event)


def check_handler_signature(pattern: str, handler: Callable[..., Any]) -> None:
    """A handler receives one argument (the event's data): refuse one that cannot, now."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # a builtin or an object without a signature: find out at delivery
    if is_unbound_method(handler):
        return  # reported with its own message
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(
            f"@when({pattern!r}) handler {getattr(handler, '__qualname__', handler)!r}{signature} cannot take the "
            "event's data: a handler is called with one argument, e.g. def handler(data): ..."
        ) from None


def is_unbound_method(fn: Callable[..., Any]) -> bool:
    if inspect.ismethod(fn) or not inspect.isfunction(fn) or "." not in fn.__qualname__:
        return False
    if "<locals>" in fn.__qualname__.rsplit(".", 1)[0].rsplit(".", 1)[-1]:
        return False  # a function nested in a function, not in a class
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] in ("self", "cls")
