"""Subscriptions: a pattern and what receives the events that match it.

A ``Subscription`` runs a handler (``@when``); a ``Waiter`` resolves one ``wait_for``.
The bus (``bus.py``) matches event names against them and queues deliveries; the
handler runner (``handlers.py``) runs the queued handlers.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .records import Ack, Event, SubscriptionSpec


class Deliveries(Protocol):
    """Where a subscription's events are queued (the bus)."""

    def deliver(self, sub: Subscription, event: Event, ack: Ack | None = None) -> None: ...

__all__ = ["Subscription", "Waiter", "check_handler_signature", "is_unbound_method"]


def _callable_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{qualname}"


class Subscription(SubscriptionSpec):
    """A pattern and the handler that runs for the events that match it (``@when``).

    ``group`` names the subscription across processes: on a shared backend, the
    processes that subscribe with one group share its events (each event is handled
    once per group, at least once). Its events wait in ``queue`` until the handler
    runner takes them, one at a time, in emit order.
    """

    __slots__ = ("handler", "retries", "retry_delay", "is_async", "loop", "queue", "running", "bus")

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
        super().__init__(pattern, group or (f"{_callable_name(handler)}:{pattern}" if handler is not None else pattern))
        self.handler = handler
        self.retries = retries
        self.retry_delay = retry_delay
        self.is_async = handler is not None and (
            inspect.iscoroutinefunction(handler)
            or inspect.iscoroutinefunction(getattr(handler, "__call__", None))
        )
        self.loop = loop
        self.queue: deque[tuple[Event, Ack | None]] = deque()
        self.running = False
        #: the bus this subscription was added to (set by ``Bus.add``)
        self.bus: Deliveries | None = None

    def deliver(self, event: Event, ack: Ack | None = None) -> None:
        """Queue ``event`` for this subscription's handler (``ack`` runs once it is handled)."""
        b = self.bus
        if b is None:
            raise RuntimeError(f"{self!r} was never added to a bus; subscribe with @when(...)")
        b.deliver(self, event, ack)


class Waiter(SubscriptionSpec):
    """A one-shot subscription behind ``wait_for``: resolves on the first match."""

    __slots__ = ("done", "event", "future", "_mutex")
    kind = "waiter"

    def __init__(self, pattern: str, loop: asyncio.AbstractEventLoop | None) -> None:
        super().__init__(pattern, f"wait_for:{pattern}")
        self._mutex = threading.Lock()
        self.event: Event | None = None
        self.done = threading.Event()
        self.future: asyncio.Future[Event] | None = loop.create_future() if loop is not None else None

    def deliver(self, event: Event, ack: Ack | None = None) -> None:
        with self._mutex:
            if self.event is not None:
                return
            self.event = event
        self.done.set()
        fut = self.future
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
