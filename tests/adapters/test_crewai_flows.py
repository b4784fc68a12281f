"""``@coordinate`` on CrewAI Flow methods (``@start``, ``@listen``, ``@router``), offline.

CrewAI runs a Flow's listeners of one trigger in parallel (sync ones in worker threads,
async ones as tasks) and no longer guards ``flow.state``: read-modify-write updates race.
Contention is real: each listener, between its read and its write, waits until another
listener has read too (a lost update is then certain) or is queued for the lock.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

pytest.importorskip("crewai")

from tests.adapters.crewai_fakes import lock_waiters  # noqa: E402  (sets CrewAI's offline switches first)

from crewai.flow.flow import Flow, listen, router, start  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from agentdiff_coordination import coordinate, drain  # noqa: E402
from tests.adapters.langgraph_nodes import EventLog, wait_until  # noqa: E402
from tests.adapters.stragglers import Straggler, cancel_while_it_runs  # noqa: E402

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

LISTENERS = 4


class Tally(BaseModel):
    count: int = 0
    route: str = ""
    seen: list[str] = []


class ReadWrite:
    """The gap between a listener's read of the state and its write, made wide enough to race in."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.reading = 0
        self.entered = 0

    def gap(self) -> None:
        with self.mutex:
            self.reading += 1
            self.entered += 1
        wait_until(lambda: self.reading > 1 or lock_waiters() > 0 or self.entered >= LISTENERS)
        with self.mutex:
            self.reading -= 1

    async def agap(self) -> None:
        with self.mutex:
            self.reading += 1
            self.entered += 1
        for _ in range(5000):
            if self.reading > 1 or lock_waiters() > 0 or self.entered >= LISTENERS:
                break
            await asyncio.sleep(0.002)
        with self.mutex:
            self.reading -= 1


def tally_flow(locked: bool, probe: ReadWrite) -> type[Flow[Tally]]:
    """A start, a router, and four parallel listeners (three sync, one async) adding one each."""
    step = (lambda name: coordinate(name, lock_name="tally")) if locked else (lambda name: (lambda f: f))

    class TallyFlow(Flow[Tally]):
        @start()
        @coordinate("begin")
        def begin(self) -> str:
            return "counting"

        @coordinate("choose")  # outside the flow decorator: both orders work
        @router(begin)
        def choose(self) -> str:
            self.state.route = "add"
            return "add"

        def _add(self, who: str) -> None:
            value = self.state.count
            probe.gap()
            self.state.count = value + 1
            self.state.seen = [*self.state.seen, who]

        @listen("add")
        @step("one")
        def one(self) -> None:
            self._add("one")

        @listen("add")
        @step("two")
        def two(self) -> None:
            self._add("two")

        @step("three")
        @listen("add")
        def three(self) -> None:
            self._add("three")

        @listen("add")
        @step("four")
        async def four(self) -> None:
            value = self.state.count
            await probe.agap()
            self.state.count = value + 1
            self.state.seen = [*self.state.seen, "four"]

    return TallyFlow


def test_parallel_listeners_lose_updates_of_the_flow_state_without_a_lock() -> None:
    flow = tally_flow(False, ReadWrite())()
    flow.kickoff()
    assert sorted(flow.state.seen) == ["four", "one", "three", "two"]
    assert flow.state.count < LISTENERS


def test_parallel_listeners_under_one_lock_lose_no_update_and_the_flow_still_routes() -> None:
    log = EventLog("*")
    flow = tally_flow(True, ReadWrite())()
    flow.kickoff()
    assert flow.state.count == LISTENERS and flow.state.route == "add"
    assert sorted(flow.state.seen) == ["four", "one", "three", "two"]
    drain()
    names = log.names()
    for step in ("begin", "choose", "one", "two", "three", "four"):
        assert names.count(f"{step}_started") == 1 and names.count(f"{step}_complete") == 1, step
    assert log.named("choose_complete")[0]["result"] == "add"


def test_the_same_holds_under_kickoff_async() -> None:
    flow = tally_flow(True, ReadWrite())()
    asyncio.run(flow.kickoff_async())
    assert flow.state.count == LISTENERS


def test_a_sync_listener_keeps_its_lock_until_it_returns_when_the_flow_is_cancelled() -> None:
    straggler = Straggler()

    class SlowFlow(Flow[Tally]):
        @start()
        @coordinate("slow", lock_name="tally")
        def slow(self) -> None:
            straggler.work()

    async def main() -> None:
        await cancel_while_it_runs(asyncio.create_task(SlowFlow().kickoff_async()), straggler, "tally")

    asyncio.run(main())
