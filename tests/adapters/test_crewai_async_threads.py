"""CrewAI's native async path (``akickoff``) and work it hands to threads (issue 10, item 9).

A coordinated task run by ``akickoff`` holds its lock in ``Task._aexecute_core``, a
coroutine. CrewAI awaits some of the task's work in worker threads (sync tools through
``run_in_executor``; LLM clients whose ``acall`` uses ``asyncio.to_thread``). When the
run is cancelled, the coroutine ends at once but the thread runs on: the lock is given
away while the task's code still runs. The sync paths (``kickoff``, ``async_execution``,
``kickoff_async``) and Flows hold the lock inside the thread and are not affected
(test_crewai.py, test_crewai_flows.py).

The adapter records the work a coordinated task's coroutine hands to the loop's
default executor, and when the coroutine ends by an exception (a cancellation), waits
for that work before the lock is released: the cancelled run ends once it has returned.
This test failed before that (the lock was free at once).
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("crewai")

from tests.adapters.crewai_fakes import FakeLLM, make_crew  # noqa: E402

from agentdiff_coordination.adapters.crewai import coordinate_crew  # noqa: E402
from tests.adapters.stragglers import Straggler, cancel_while_it_runs  # noqa: E402

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_a_cancelled_akickoff_keeps_the_task_lock_until_its_thread_returns() -> None:
    straggler = Straggler()  # FakeLLM.acall runs call(), and so this, through asyncio.to_thread
    crew = coordinate_crew(make_crew(FakeLLM.make(before=straggler.work), [0]), locks={"t0": "ledger"})

    async def main() -> None:
        await cancel_while_it_runs(asyncio.create_task(crew.akickoff()), straggler, "ledger")

    asyncio.run(main())
