"""Named locks: ``with lock("db")``, ``async with lock("db")``, ``@lock("db")``.

Ownership belongs to the call chain, not the thread: what a holder holds is kept in
a context variable, so the holder itself, and any work it hands to another thread
or task with a copy of its context (``asyncio.to_thread``, ``create_task``, the
executors of LangGraph and CrewAI), re-enters instead of deadlocking. A grant is
released when the last user in the chain leaves it.

Several names are taken in one canonical (sorted) order and given all or none, so
two callers naming the same locks in opposite orders can never deadlock.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any, NamedTuple, TypeAlias, TypeVar, cast

from .backends.base import Backend
from .errors import LockNotHeldError
from . import observers as _observers
from .observers import LiveSpan, outcome_of
from .records import LockGrant
from .runtime import RUNTIME
from .settings import check_seconds
from .validation import check_decorator_name, check_name, check_timeout

__all__ = ["Lock", "acquire_async", "acquire_sync", "forget_held", "held_grants", "lock", "normalize_names", "release_async", "release_sync"]

F = TypeVar("F", bound=Callable[..., Any])


# What a call chain holds is a stack of frames in a context variable. A frame is a
# tuple (owner, grants, parent, backend, spans): ``owner`` is whoever entered it (a Lock, a
# Coordinator, a Run), ``grants`` the grants it counted, ``parent`` the frame below, and
# ``spans`` what observers watch until release (None when nobody observes). Tuples keep
# the uncontended path short; stacks are shallow, so a re-entry check walks them.
_Frame: TypeAlias = "tuple[object, tuple[LockGrant, ...], Any, Backend, tuple[LiveSpan, ...] | None]"

_held: ContextVar[_Frame | None] = ContextVar("agentdiff_held_locks", default=None)
_held_get = _held.get
_held_set = _held.set
_runtime = RUNTIME


def normalize_names(names: str | Iterable[str], what: str = "lock name") -> tuple[str, ...]:
    """One name or several, validated, deduplicated, in canonical order."""
    if isinstance(names, str):
        return (check_name(names, what),)
    if names is None or isinstance(names, (bytes, bytearray)) or not isinstance(names, Iterable):
        raise TypeError(f"{what} must be a string or a list of strings, not {names!r}")
    out = tuple(sorted({check_name(n, what) for n in names}))
    if not out:
        raise ValueError(f"{what} list is empty: give at least one name")
    return out


def _held_by_chain(frame: _Frame | None, name: str) -> LockGrant | None:
    """The live grant of ``name`` in this call chain's frames, if any."""
    while frame is not None:
        for grant in frame[1]:
            if grant.name == name and grant.count > 0:
                return grant
        frame = frame[2]
    return None


class _Acquisition:
    """One acquisition of several names, all or none, in canonical order: the plan both
    drivers follow. ``pending()`` re-enters what the call chain holds and yields each name
    the driver must wait for (with ``left()`` seconds); the driver appends the grant to
    ``grants``. On failure the driver gives them back and calls ``failed``; on success
    ``push`` records the frame. Observed, the wait and then the hold are spans."""

    __slots__ = ("names", "parent", "backend", "deadline", "grants", "wait", "outer")

    def __init__(
        self,
        names: tuple[str, ...],
        timeout: float | None,
        parent: _Frame | None,
        backend: Backend,
        holder: str | None = None,
        run_id: str | None = None,
        outer: LiveSpan | None = None,
    ) -> None:
        self.names = names
        self.parent = parent
        self.backend = backend
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.grants: list[LockGrant] = []
        self.outer = outer
        self.wait = None if not _observers.current else LiveSpan(
            "lock_wait", holder, run_id, ",".join(names), {"coordination.lock.names": list(names)}
        )

    def pending(self) -> Iterator[str]:
        for name in self.names:
            grant = _held_by_chain(self.parent, name)
            if grant is not None and self.backend.reenter(grant):
                self.grants.append(grant)
            else:
                yield name

    def left(self) -> float | None:
        deadline = self.deadline
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def failed(self, error: BaseException) -> None:
        if self.wait is not None:
            self.wait.finish(outcome_of(error), error)
        if self.outer is not None:
            self.outer.finish(outcome_of(error), error)

    # all or none: leaving with an error gives back what was taken (sync and async drivers)
    def __enter__(self) -> _Acquisition:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None:
            for grant in reversed(self.grants):
                self.backend.release_counted(grant)
            self.failed(e)

    async def __aenter__(self) -> _Acquisition:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None:
            for grant in reversed(self.grants):
                await _drop_async(grant, self.backend)
            self.failed(e)

    def push(self, owner: object) -> Waited | None:
        wait = self.wait
        if wait is None:
            _held_set((owner, tuple(self.grants), self.parent, self.backend, None))
            return None
        fencing = self.grants[0].fencing if len(self.grants) == 1 else None
        waited = Waited(wait.elapsed, fencing)
        wait.finish("granted", None, fencing)
        hold = LiveSpan("lock_hold", wait.step, wait.run_id, wait.resource)
        spans: tuple[LiveSpan, ...] = (hold,)
        if self.outer is not None:
            self.outer.attrs.update(waited.attributes())
            spans = (hold, self.outer)
        _held_set((owner, tuple(self.grants), self.parent, self.backend, spans))
        return waited


class Waited(NamedTuple):
    """What an observed acquisition waited: seconds, and the grant's fencing number (one lock)."""

    seconds: float
    fencing: int | None

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"coordination.lock.wait_duration": self.seconds}
        if self.fencing is not None:
            attrs["coordination.fencing"] = self.fencing
        return attrs


def acquire_sync(
    names: tuple[str, ...], timeout: float | None, holder: str | None, owner: object, lease: float | None = None,
    run_id: str | None = None, outer: LiveSpan | None = None,
) -> Waited | None:
    """Take every name for ``owner`` (re-entering those this chain holds); all or none.
    Observed, says what the acquisition waited."""
    parent = _held_get()
    backend = _runtime.current or _runtime.backend()
    if parent is None and len(names) == 1 and not _observers.current:  # the common case: nothing held, one name
        grant = (
            backend.acquire_lock(names[0], holder, timeout)
            if lease is None
            else backend.acquire_lock(names[0], holder, timeout, lease=lease)
        )
        _held_set((owner, (grant,), None, backend, None))
        return None
    with _Acquisition(names, timeout, parent, backend, holder, run_id, outer) as plan:
        for name in plan.pending():
            plan.grants.append(backend.acquire_lock(name, holder, plan.left(), lease=lease))
    return plan.push(owner)


async def acquire_async(
    names: tuple[str, ...], timeout: float | None, holder: str | None, owner: object, lease: float | None = None,
    run_id: str | None = None, outer: LiveSpan | None = None,
) -> Waited | None:
    """The async driver of the same plan: waits without blocking the loop."""
    backend = _runtime.current or _runtime.backend()
    parent = _held_get()
    if parent is None and len(names) == 1 and not _observers.current:  # the common case: one name
        grant = backend.try_acquire_lock(names[0], holder) or await backend.acquire_lock_async(
            names[0], holder, timeout, lease=lease
        )
        _held_set((owner, (grant,), None, backend, None))
        return None
    plan = _Acquisition(names, timeout, parent, backend, holder, run_id, outer)
    try:
        for name in plan.pending():
            plan.grants.append(await backend.acquire_lock_async(name, holder, plan.left(), lease=lease))
    except BaseException as exc:
        await plan.__aexit__(type(exc), exc, exc.__traceback__)  # all or none: give back what was taken
        raise
    return plan.push(owner)


async def _drop_async(grant: LockGrant, backend: Backend) -> None:
    if backend.nonblocking_release:
        backend.release_counted(grant)
    elif backend.leave(grant):
        await backend.release_lock_async(grant)


def _pop(owner: object) -> _Frame:
    """Remove ``owner``'s innermost frame from this context's stack and return it."""
    frame = _held_get()
    if frame is not None and frame[0] is owner:
        _held_set(frame[2])
        return frame
    # not the innermost frame (a generator or a hand-off exited out of order):
    # unlink this owner's frame and rebuild the frames above it
    above: list[_Frame] = []
    f = frame
    while f is not None and f[0] is not owner:
        above.append(f)
        f = f[2]
    if f is None:
        raise LockNotHeldError(
            f"{owner!r} holds no lock in the current context: it was already released, or this is not "
            "the call chain (thread or task) that took it; a lock is released by the code that acquired it"
        )
    rest = f[2]
    for g in reversed(above):
        rest = (g[0], g[1], rest, g[3], g[4])
    _held_set(rest)
    return f


def release_sync(owner: object) -> None:
    """Release what ``owner`` took last in this context (each grant when its count ends);
    every grant is released even if one fails, and the first error is raised."""
    _, grants, _, backend, spans = _pop(owner)
    _released(spans, grants, [_failure(backend.release_counted, grant) for grant in reversed(grants)])


async def release_async(owner: object) -> None:
    """The async twin of ``release_sync``."""
    frame = _held_get()
    if frame is not None and frame[0] is owner and len(frame[1]) == 1 and frame[4] is None and frame[3].nonblocking_release:
        _held_set(frame[2])  # the common case: one grant, a release that never blocks
        frame[3].release_counted(frame[1][0])
        return
    _, grants, _, backend, spans = _pop(owner)
    failures = []
    for grant in reversed(grants):
        try:
            await _drop_async(grant, backend)
        except BaseException as exc:  # release every name even if one fails
            failures.append(exc)
    _released(spans, grants, failures)


def _failure(release: Callable[[LockGrant], None], grant: LockGrant) -> BaseException | None:
    try:
        release(grant)
    except BaseException as exc:  # release every name even if one fails
        return exc
    return None


def _released(
    spans: tuple[LiveSpan, ...] | None, grants: tuple[LockGrant, ...], failures: Sequence[BaseException | None]
) -> None:
    """After giving back every grant: end the spans, raise the first failure."""
    error = next((f for f in failures if f is not None), None)
    if spans is not None:
        _finish(spans, grants, error)
    if error is not None:
        raise error


def _finish(spans: tuple[LiveSpan, ...], grants: tuple[LockGrant, ...], error: BaseException | None) -> None:
    """End the hold (and a ``with lock()``'s own span) after the release."""
    fencing = grants[0].fencing if len(grants) == 1 else None
    for span in spans:
        span.finish(None if span.kind == "lock_hold" else ("granted" if error is None else "failed"), error, fencing)


def forget_held() -> None:
    """Forget what this context holds (tests: a lock a test left held must not leak)."""
    _held_set(None)


def held_grants() -> dict[str, LockGrant]:
    """The grants the current call chain holds, by lock name."""
    held: dict[str, LockGrant] = {}
    frame = _held_get()
    while frame is not None:
        for grant in frame[1]:
            if grant.count > 0:
                held.setdefault(grant.name, grant)
        frame = frame[2]
    return held


class Lock:
    """A named lock (or several names, taken all or none).

    Use it as ``with``, ``async with`` or a decorator. The object keeps no per-use
    state (each entry is recorded in the caller's context), so one ``Lock`` may be
    shared by every thread and task.
    """

    __slots__ = ("names", "timeout", "holder", "lease")

    def __init__(
        self, names: tuple[str, ...], timeout: float | None, holder: str | None = None, lease: float | None = None
    ) -> None:
        self.names = names
        self.timeout = timeout
        self.holder = holder
        self.lease = lease

    def __enter__(self) -> Lock:
        names = self.names
        if len(names) == 1 and self.lease is None and _held_get() is None and not _observers.current:
            backend = _runtime.current or _runtime.backend()  # the common case, without a call layer
            _held_set((self, (backend.acquire_lock(names[0], self.holder, self.timeout),), None, backend, None))
            return self
        acquire_sync(names, self.timeout, self.holder, self, self.lease, None, self._span())
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        frame = _held_get()
        if frame is not None and frame[0] is self and len(frame[1]) == 1 and frame[4] is None:  # the common case
            _held_set(frame[2])
            frame[3].release_counted(frame[1][0])
            return
        release_sync(self)

    async def __aenter__(self) -> Lock:
        names = self.names
        if len(names) == 1 and _held_get() is None and not _observers.current:
            backend = _runtime.current or _runtime.backend()
            grant = backend.try_acquire_lock(names[0], self.holder)
            if grant is not None:  # free right now: no coroutine layer below this one
                _held_set((self, (grant,), None, backend, None))
                return self
        await acquire_async(names, self.timeout, self.holder, self, self.lease, None, self._span())
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        frame = _held_get()
        if (
            frame is not None and frame[0] is self and len(frame[1]) == 1 and frame[4] is None
            and frame[3].nonblocking_release
        ):
            _held_set(frame[2])
            frame[3].release_counted(frame[1][0])
            return
        await release_async(self)

    def _span(self) -> LiveSpan | None:
        """The span of this ``with`` when observed: ``lock NAMES``, around the wait and the hold."""
        if not _observers.current:
            return None
        return LiveSpan("lock", self.holder, None, ",".join(self.names), {"coordination.lock.names": list(self.names)})

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)
        if not callable(fn):
            raise TypeError(f"lock({self.names!r}) decorates a function, not {fn!r}")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    @property
    def grants(self) -> dict[str, LockGrant]:
        """The grants of this lock's names held by the current call chain (token, fencing)."""
        held = held_grants()
        return {n: held[n] for n in self.names if n in held}

    @property
    def fencing(self) -> int | None:
        """The fencing number of the held grant (the first name's, for several)."""
        grants = self.grants
        return grants[self.names[0]].fencing if self.names[0] in grants else None

    def locked(self) -> bool:
        """Whether anyone holds the (first) name now."""
        return _runtime.backend().lock_holder(self.names[0]) is not None

    def __repr__(self) -> str:
        names = self.names[0] if len(self.names) == 1 else list(self.names)
        return f"lock({names!r}, timeout={self.timeout!r})"


def lock(
    name_or_names: str | Iterable[str], *, timeout: float | None = None, lease: float | None = None
) -> Lock:
    """The named lock (or several names, all or none) as a context manager and decorator.

    ``timeout`` (seconds) bounds the wait; past it ``CoordinationTimeoutError`` names the
    lock and its holder. ``None`` waits as long as it takes. ``lease`` (seconds) sets this
    lock's lease on a distributed backend instead of the configured ``lease`` option (it is
    renewed while the holder runs); the in-memory backend needs no lease and ignores it.
    """
    if callable(name_or_names) and not isinstance(name_or_names, str):
        check_decorator_name(name_or_names, "lock", "resource_name")
    _runtime.settings()  # the environment's options (tracing, recording) apply from the first use
    seconds = None if lease is None else check_seconds(lease, "lease", positive=True)
    return Lock(normalize_names(name_or_names), check_timeout(timeout), lease=seconds)
