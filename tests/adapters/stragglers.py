"""Work that outlives the task awaiting it, to test that a lock is held until its body returns.

A framework runs sync work in a worker thread and awaits it; when the awaiting task is
cancelled (or a sibling fails), the thread runs on. ``Straggler.work`` is such a body:
it waits inside until the test lets it go, so the test can look at the lock meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from agentdiff_coordination import CoordinationTimeoutError, lock
from tests.adapters.langgraph_nodes import wait_until

__all__ = ["Straggler", "cancel_while_it_runs", "lock_is_free"]


def lock_is_free(name: str) -> bool:
    """Whether a caller outside every coordinated call chain can take ``name`` right now."""
    try:
        with lock(name, timeout=0):
            return True
    except CoordinationTimeoutError:
        return False


class Straggler:
    """A sync body that stays inside until ``go`` is set (at most 20 s)."""

    def __init__(self) -> None:
        self.entered, self.go, self.finished = threading.Event(), threading.Event(), threading.Event()

    def work(self, *args: Any, **kwargs: Any) -> str:
        self.entered.set()
        self.go.wait(20)
        self.finished.set()
        return "late"

    async def inside(self) -> None:
        while not self.entered.is_set():
            await asyncio.sleep(0.001)


async def cancel_while_it_runs(run: asyncio.Task[Any], straggler: Straggler, lock_name: str) -> None:
    """Cancel ``run`` once the straggler is inside; while it still runs, its lock must stay
    held; then let it finish: the run ends cancelled and the lock is free."""
    await straggler.inside()
    run.cancel()
    try:
        for _ in range(20):
            await asyncio.sleep(0.005)
            assert not straggler.finished.is_set()
            assert not lock_is_free(lock_name), "the lock was given away while the body still runs"
    finally:
        straggler.go.set()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert straggler.finished.wait(10) and wait_until(lambda: lock_is_free(lock_name))
