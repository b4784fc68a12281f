"""Running an awaitable step by step inside a ``contextvars.Context`` of one's own.

Adapters that hold a lock across calls they do not control (a turn streamed to the
caller, a graph run streamed chunk by chunk) record its ownership in a private context,
so the caller's context stays clean and whoever closes the stream (asyncio's finalizer
included) can still release it.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Awaitable, Generator
from typing import Any

__all__ = ["in_context"]


@types.coroutine
def in_context(ctx: contextvars.Context, awaitable: Awaitable[Any], wait: Any = None) -> Generator[Any, Any, Any]:
    """``await awaitable`` from the calling task, but with every step run inside ``ctx``.

    Like ``yield from``, it passes what the awaitable yields (the futures it waits on)
    to the task and sends back what the task answers, so the awaitable runs in the
    caller's task, as if awaited directly; only its context is ``ctx``. With ``wait``
    (an object with ``cancelled`` and ``blocked_on``, such as the AutoGen adapter's link
    to a ``CancellationToken``), a fired token cancels the future being waited on, or is
    thrown in at the next step.
    """
    it = awaitable.__await__()
    send, throw = it.send, it.throw
    value: Any = None
    error: BaseException | None = None
    while True:
        if wait is not None and wait.cancelled:  # delivered once: the wait may clean up after it
            wait.cancelled = False
            if error is None:
                error = asyncio.CancelledError()
        try:
            signal = ctx.run(send, value) if error is None else ctx.run(throw, error)
        except StopIteration as stop:
            return stop.value
        if wait is not None:
            wait.blocked_on = signal
        try:
            value, error = (yield signal), None
        except GeneratorExit:
            close = getattr(it, "close", None)
            if close is not None:
                ctx.run(close)
            raise
        except BaseException as exc:  # noqa: BLE001  the task threw in (cancellation): pass it on
            value, error = None, exc
