"""Events: ``emit``, ``@when`` handlers, ``wait_for`` and ``drain``, on the runtime's bus.

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
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from .bus import Bus
from .errors import CoordinationTimeoutError
from .handlers import current_event, in_handler
from .records import DeadLetter, Event
from .runtime import RUNTIME
from .subscriptions import Subscription, Waiter, check_handler_signature, is_unbound_method
from .validation import check_decorator_name, check_name, check_timeout

__all__ = [
    "DeadLetter",
    "Event",
    "Subscription",
    "current_event",
    "dead_letters",
    "drain",
    "emit",
    "unsubscribe",
    "wait_for",
    "when",
]

F = TypeVar("F", bound=Callable[..., Any])


# -- the public functions ----------------------------------------------------------


_bus = RUNTIME.bus


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def emit(event: str, data: Any = None, *args: Any, sender: str | None = None) -> str:
    """Publish ``event`` with ``data``; returns the event's id. Handlers run elsewhere.

    ``sender`` names who emitted it (handlers see it in ``current_event().sender``).
    """
    if args:  # emit(name, data, sender): the 0.1 spelling
        if len(args) > 1 or sender is not None:
            raise TypeError(f"emit() takes the event, its data and sender= (keyword), not {len(args) + 2} positional arguments")
        warnings.warn(
            "emit(name, data, sender) with a positional sender is the 0.1 spelling; write "
            "emit(name, data, sender=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        sender = args[0]
    return _bus.emit(event, data, sender)


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
        _bus.add(sub)
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
    b = _bus
    if isinstance(handler, Subscription):
        b.remove(handler)
        return 1
    stopped = 0
    for sub in b.subscriptions():
        if isinstance(sub, Subscription) and (sub.handler is handler or sub.handler == handler):
            b.remove(sub)
            stopped += 1
    return stopped


def dead_letters(*, clear: bool = False) -> list[DeadLetter]:
    """The events whose handlers failed every attempt (oldest first); ``clear`` empties the list."""
    return _bus.dead_letters(clear)


def wait_for(pattern: str, *, timeout: float | None = None) -> Any:
    """Wait until an event matching ``pattern`` is emitted, and return its data.

    In sync code this blocks; called where an event loop is running it returns an
    awaitable (``data = await wait_for("x_complete")``). Only events emitted after the
    call count; ``timeout`` raises ``CoordinationTimeoutError``.
    """
    check_name(pattern, "event pattern")
    seconds = check_timeout(timeout)
    loop = _running_loop()
    b = _bus
    waiter = Waiter(pattern, loop)
    b.add(waiter)
    if loop is not None:
        return _wait_async(b, waiter, pattern, seconds)
    try:
        if not waiter.done.wait(seconds):
            raise CoordinationTimeoutError(
                f"no event matching {pattern!r} arrived within {seconds}s", resource=pattern, timeout=seconds
            )
    finally:
        b.remove(waiter)
    assert waiter.event is not None
    return waiter.event.data


async def _wait_async(b: Bus, waiter: Waiter, pattern: str, seconds: float | None) -> Any:
    assert waiter.future is not None
    try:
        event = await asyncio.wait_for(asyncio.shield(waiter.future), seconds)
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
    b = _bus
    if _running_loop() is not None:
        return _drain_async(b, seconds)
    return b.drain(seconds)


async def _drain_async(b: Bus, seconds: float | None) -> bool:
    if in_handler():
        b.drain(0)  # raises the in-handler error
    return await asyncio.get_running_loop().run_in_executor(None, b.drain, seconds)
