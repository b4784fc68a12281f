"""Helpers for contention tests: threads, loops in threads, probes of lock state.

Nothing here sleeps and hopes: waits are for a condition, bounded by a generous
deadline whose only purpose is to turn a hang (a deadlock, a lost wake-up) into a
failure that says what was being waited for.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from agentdiff_coordination import CoordinationTimeoutError, lock
from agentdiff_coordination.core.runtime import get_backend

T = TypeVar("T")

#: how long a test waits for something that must happen before calling it a hang
HANG = 30.0


class Occupancy:
    """Counts how many callers are inside a critical section at once."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.entries = 0
        self.violations = 0

    def enter(self) -> None:
        with self._mutex:
            self.inside += 1
            self.entries += 1
            if self.inside > 1:
                self.violations += 1
            self.max_inside = max(self.max_inside, self.inside)

    def leave(self) -> None:
        with self._mutex:
            self.inside -= 1


def work(n: int = 200) -> int:
    """A little real CPU work, long enough for the scheduler to switch threads inside."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def run_threads(targets: Iterable[Callable[[], Any]], timeout: float = HANG) -> list[Any]:
    """Run each target in its own thread (fresh context), join all, re-raise the first error.

    Returns as soon as any thread fails (the others may then be stuck behind it);
    a thread still running at ``timeout`` is reported as a hang.
    """
    targets = list(targets)
    results: list[Any] = []
    errors: list[BaseException] = []
    mutex = threading.Lock()
    finished = threading.Condition(mutex)
    done = 0

    def runner(fn: Callable[[], Any]) -> None:
        nonlocal done
        try:
            value = fn()
        except BaseException as exc:  # collected and re-raised in the test thread
            with mutex:
                errors.append(exc)
                done += 1
                finished.notify_all()
        else:
            with mutex:
                results.append(value)
                done += 1
                finished.notify_all()

    threads = [threading.Thread(target=runner, args=(fn,), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    with mutex:
        finished.wait_for(lambda: done == len(threads) or bool(errors), timeout)
        if errors:
            raise errors[0]
        alive = len(threads) - done
    assert alive == 0, f"{alive} thread(s) still running after {timeout}s: a deadlock or a lost wake-up"
    for t in threads:
        t.join(HANG)
    return results


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = HANG) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` if it never becomes true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.001)


def in_fresh_thread(fn: Callable[[], T], timeout: float = HANG) -> T:
    """``fn()`` on a new thread (an unrelated call chain, empty context); its result."""
    return run_threads([fn], timeout)[0]  # type: ignore[no-any-return]


def is_free(name: str) -> bool:
    """Whether an unrelated call chain can take ``name`` right now (tries once)."""

    def probe() -> bool:
        try:
            with lock(name, timeout=0):
                return True
        except CoordinationTimeoutError:
            return False

    return in_fresh_thread(probe)


def lock_waiters() -> int:
    """How many callers wait for any lock, from the backend's ``statistics()``."""
    return get_backend().statistics().lock_waiters


class LoopThread:
    """An event loop running in its own thread; submit coroutines to it."""

    def __init__(self, name: str = "test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop as an unrelated call chain.

        ``run_coroutine_threadsafe`` copies the caller's context into the task (so a
        submitter holding a lock would hand re-entry to it); an empty context keeps
        the task a caller of its own.
        """
        return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(HANG)
        self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
