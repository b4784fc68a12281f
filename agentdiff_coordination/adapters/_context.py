"""Context helpers shared by the adapters.

``in_context``: running an awaitable step by step inside a ``contextvars.Context`` of
one's own. Adapters that hold a lock across calls they do not control (a turn streamed
to the caller, a graph run streamed chunk by chunk) record its ownership in a private
context, so the caller's context stays clean and whoever closes the stream (asyncio's
finalizer included) can still release it.

``track_thread_work`` / ``outlive_thread_work``: a lock held around a framework's async
code is kept until the sync work that code handed to worker threads has returned, even
when the task awaiting it was cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

__all__ = ["in_context", "outlive_thread_work", "stop_tracking", "track_thread_work"]


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
    if wait is not None:
        wait.task = asyncio.current_task()  # the task that a fired token cancels while it is blocked
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


# -- work handed to threads: a lock outlives it -------------------------------------------
#
# A framework's async code often awaits sync work in a worker thread (``asyncio.to_thread``,
# ``loop.run_in_executor(None, ...)``: sync tools, blocking clients). When the task awaiting
# it is cancelled, the thread runs on; a lock taken around the async code must be held
# until that work has returned. The loop's default executor records what each context
# hands it, so the coordinated code can wait for it before releasing.

_pending: contextvars.ContextVar[set[concurrent.futures.Future[Any]] | None] = contextvars.ContextVar(
    "agentdiff_pending_thread_work", default=None
)


class _TrackingExecutor(concurrent.futures.ThreadPoolExecutor):
    """asyncio's default executor, recording each submission in the submitter's context."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        pending = _pending.get()
        if pending is not None:
            pending.add(future)
            future.add_done_callback(pending.discard)
        return future


def track_thread_work() -> tuple[set[concurrent.futures.Future[Any]], contextvars.Token[Any]]:
    """From now on, record in this context the work it hands to the loop's default executor.

    Installs a recording default executor on the running loop the first time (the one it
    replaces finishes its work and is shut down). Returns the set of pending work and the
    token that ``_pending.reset`` takes to stop recording.
    """
    loop = asyncio.get_running_loop()
    current = getattr(loop, "_default_executor", None)
    if not isinstance(current, _TrackingExecutor):
        loop.set_default_executor(_TrackingExecutor(thread_name_prefix="asyncio"))
        if current is not None:
            current.shutdown(wait=False)
    pending: set[concurrent.futures.Future[Any]] = set()
    return pending, _pending.set(pending)


def stop_tracking(token: contextvars.Token[Any]) -> None:
    _pending.reset(token)


async def outlive_thread_work(pending: set[concurrent.futures.Future[Any]]) -> None:
    """Wait until the thread work in ``pending`` has returned, whatever is thrown at this
    task meanwhile; a cancellation received while waiting is re-raised afterwards."""
    cancelled: BaseException | None = None
    while pending:
        waiting = [asyncio.wrap_future(f) for f in list(pending)]
        try:
            await asyncio.wait(waiting)
        except asyncio.CancelledError as exc:
            cancelled = exc
        pending.difference_update(f for f in list(pending) if f.done())
    if cancelled is not None:
        raise cancelled
