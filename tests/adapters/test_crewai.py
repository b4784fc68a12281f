"""The CrewAI adapter against the real crewai, offline (a scripted LLM, no network).

Contention tests run real parallel tasks (``async_execution`` threads, asyncio tasks,
crew copies) and count how many task bodies were in flight at once: 2 without
coordination, 1 with it.
"""

from __future__ import annotations

import asyncio
import copy as copy_module
import pickle
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("crewai")

from tests.adapters.crewai_fakes import (  # noqa: E402  (sets CrewAI's offline switches first)
    EventLog,
    FakeLLM,
    Probe,
    lock_waiters,
    make_crew,
)

from crewai import Crew, Task  # noqa: E402
from crewai.events import crewai_event_bus  # noqa: E402
from crewai.tasks.conditional_task import ConditionalTask  # noqa: E402
from crewai.tools import tool  # noqa: E402

from agentdiff_coordination import CoordinationTimeoutError, coordinate, drain, lock, when  # noqa: E402
from agentdiff_coordination.adapters import crewai as adapter  # noqa: E402

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # crewai's own, on every kickoff
    pytest.mark.filterwarnings("ignore:method callbacks cannot be serialized:UserWarning"),
]


def kickoff(crew: Crew, how: str) -> Any:
    """Run ``crew`` the way CrewAI calls ``how``."""
    if how == "kickoff":
        return crew.kickoff()
    if how == "akickoff":
        return asyncio.run(asyncio.wait_for(crew.akickoff(), 30))
    if how == "kickoff_async":
        return asyncio.run(asyncio.wait_for(crew.kickoff_async(), 30))
    raise AssertionError(how)


def lock_is_free(name: str) -> bool:
    """Whether a caller outside every task's call chain can take ``name`` right now."""
    result: list[bool] = []

    def attempt() -> None:  # a fresh thread: a context that holds nothing
        try:
            with lock(name, timeout=0):
                result.append(True)
        except CoordinationTimeoutError:
            result.append(False)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return result == [True]


@pytest.fixture
def held_elsewhere() -> Iterator[Any]:
    """``hold(name)`` takes lock ``name`` on another thread; it returns a release function."""
    threads: list[tuple[threading.Thread, threading.Event]] = []

    def hold(name: str) -> Any:
        taken, stop = threading.Event(), threading.Event()

        def keep() -> None:
            with lock(name):
                taken.set()
                stop.wait(30)

        thread = threading.Thread(target=keep, daemon=True)
        thread.start()
        threads.append((thread, stop))
        assert taken.wait(5)

        def release() -> None:
            stop.set()
            thread.join(5)

        return release

    yield hold
    for thread, stop in threads:
        stop.set()
        thread.join(5)


# -- import and plugin --------------------------------------------------------------


def test_adapter_imports_without_crewai_and_never_imports_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        import agentdiff_coordination.adapters.crewai as adapter
        from agentdiff_coordination import coordinate
        assert coordinate("plain")(lambda: 7)() == 7  # the plugin is asked, and stays quiet
        assert "crewai" not in sys.modules
        sys.modules["crewai"] = None  # as if crewai were not installed
        try:
            adapter.coordinate_crew(object())
        except ImportError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'agentdiff-coordination[crewai]'" in done.stdout


def test_coordinate_on_a_crew_points_to_coordinate_crew() -> None:
    crew = make_crew(FakeLLM.make(), [0])
    with pytest.raises(TypeError, match="coordinate_crew"):
        coordinate("whole", lock_name="api")(crew)


# -- names and identity -------------------------------------------------------------


def test_coordinate_crew_keeps_tasks_their_identity_names_and_class() -> None:
    crew = make_crew(FakeLLM.make(), [0, 0], names=["research", None])
    conditional = ConditionalTask(
        name="maybe", description="only sometimes", expected_output="x", agent=crew.agents[0],
        condition=lambda output: True,
    )
    crew.tasks.append(conditional)
    before = list(crew.tasks)
    dumped = [task.model_dump(exclude={"id"}) for task in before]

    assert adapter.coordinate_crew(crew, locks={"research": "api", "maybe": ["api", "db"]}) is crew

    assert crew.tasks == before and all(a is b for a, b in zip(crew.tasks, before))
    assert [task.name for task in crew.tasks] == ["research", None, "maybe"]
    assert [task.model_dump(exclude={"id"}) for task in crew.tasks] == dumped
    assert isinstance(crew.tasks[0], Task) and type(crew.tasks[0]).__name__ == "Task"
    assert isinstance(conditional, ConditionalTask) and type(conditional).__name__ == "ConditionalTask"
    coordinators = [adapter.coordinator_of(task) for task in crew.tasks]
    assert [(c.name, c.locks) for c in coordinators if c is not None] == [
        ("research", ("api",)),
        ("task_2", ()),
        ("maybe", ("api", "db")),
    ]


def test_coordinate_crew_rejects_unknown_task_names_and_changes_nothing() -> None:
    crew = make_crew(FakeLLM.make(), [0, 0])
    with pytest.raises(ValueError, match=r"\['tx'\].*\['t0', 't1'\]"):
        adapter.coordinate_crew(crew, locks={"t0": "api", "tx": "api"})
    assert [adapter.coordinator_of(task) for task in crew.tasks] == [None, None]


def test_coordinating_a_task_returns_the_same_task() -> None:
    crew = make_crew(FakeLLM.make(), [0])
    task = crew.tasks[0]
    assert coordinate("writer", lock_name="files")(task) is task
    coordinator = adapter.coordinator_of(task)
    assert coordinator is not None and (coordinator.name, coordinator.locks) == ("writer", ("files",))


def test_coordinate_crew_adds_its_locks_to_a_task_already_coordinated() -> None:
    crew = make_crew(FakeLLM.make(), [0, 0])
    coordinate("writer", lock_name="files")(crew.tasks[0])

    adapter.coordinate_crew(crew, locks={"t0": "api", "t1": "api"})

    coordinators = [adapter.coordinator_of(task) for task in crew.tasks]
    assert [(c.name, c.locks) for c in coordinators if c is not None] == [
        ("writer", ("api", "files")),
        ("t1", ("api",)),
    ]


def test_wrong_arguments_get_errors_that_say_what_to_do() -> None:
    crew = make_crew(FakeLLM.make(), [0], names=[None])
    with pytest.raises(ValueError, match="has no name: pass name="):
        adapter.coordinate_task(crew.tasks[0])
    with pytest.raises(TypeError, match="expects a crewai Crew"):
        adapter.coordinate_crew(crew.tasks)
    with pytest.raises(TypeError, match="expects a crewai Task"):
        adapter.coordinate_task(crew, "x")


def test_task_copies_keep_their_coordination() -> None:
    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(), [0, 0], async_tasks=1), locks={"t0": "api"})
    copy = crew.copy()
    assert [task.name for task in copy.tasks] == ["t0", "t1"]
    assert all(a is not b for a, b in zip(copy.tasks, crew.tasks))
    assert [adapter.coordinator_of(t) for t in copy.tasks] == [adapter.coordinator_of(t) for t in crew.tasks]
    original = crew.tasks[0]
    assert adapter.coordinator_of(original.model_copy()) is adapter.coordinator_of(original)
    assert adapter.coordinator_of(copy_module.deepcopy(original)) is adapter.coordinator_of(original)
    restored = pickle.loads(pickle.dumps(original))
    assert type(restored) is type(original) and restored.name == "t0"
    coordinator = adapter.coordinator_of(restored)
    assert coordinator is not None and (coordinator.name, coordinator.locks) == ("t0", ("api",))


# -- overlap without coordination, none with it ---------------------------------------


@pytest.mark.parametrize("how", ["kickoff", "akickoff", "kickoff_async"])
@pytest.mark.parametrize("coordinated", [False, True], ids=["bare", "coordinated"])
def test_async_execution_tasks_overlap_only_without_their_lock(how: str, coordinated: bool) -> None:
    probe = Probe(parallel=2)
    crew = make_crew(FakeLLM.make(probe), [0, 1, 0], async_tasks=2, probe=probe)
    if coordinated:
        adapter.coordinate_crew(crew, locks={"t0": "api", "t1": "api"})

    output = kickoff(crew, how)

    assert [task.raw for task in output.tasks_output] == ["answer of t0", "answer of t1", "answer of t2"]
    assert probe.worst["all"] == (1 if coordinated else 2)
    assert lock_is_free("api")


@pytest.mark.parametrize("method", ["kickoff_for_each_async", "akickoff_for_each", "kickoff_for_each"])
@pytest.mark.parametrize("coordinated", [False, True], ids=["bare", "coordinated"])
def test_crew_copies_of_kickoff_for_each_share_the_lock(method: str, coordinated: bool) -> None:
    probe = Probe(parallel=1 if method == "kickoff_for_each" else 3)
    crew = make_crew(FakeLLM.make(probe), [0], probe=probe)
    if coordinated:
        adapter.coordinate_crew(crew, locks={"t0": "api"})

    if method == "kickoff_for_each":
        outputs = crew.kickoff_for_each([{}, {}, {}])  # sequential by design: never overlaps
    else:
        outputs = asyncio.run(asyncio.wait_for(getattr(crew, method)([{}, {}, {}]), 30))

    assert [output.raw for output in outputs] == ["answer of t0"] * 3
    if method == "kickoff_for_each" or coordinated:
        assert probe.worst["all"] == 1
    else:
        assert probe.worst["all"] >= 2


def test_coordinate_decorator_on_tasks_keeps_them_apart() -> None:
    probe = Probe(parallel=2)
    crew = make_crew(FakeLLM.make(probe), [0, 1, 0], async_tasks=2, probe=probe)
    writer = coordinate("writer", lock_name="api")
    crew.tasks[0] = writer(crew.tasks[0])
    crew.tasks[1] = writer(crew.tasks[1])
    log = EventLog()

    crew.kickoff()

    assert probe.worst["all"] == 1
    assert drain(10)
    assert [name for name, _ in log.named("writer_")].count("writer_complete") == 2


def test_waiting_for_the_lock_in_akickoff_leaves_the_event_loop_free() -> None:
    probe = Probe(parallel=2)
    crew = adapter.coordinate_crew(
        make_crew(FakeLLM.make(probe), [0, 1, 0], async_tasks=2, probe=probe), locks={"t0": "api", "t1": "api"}
    )

    async def main() -> Any:
        probe.loop = asyncio.get_running_loop()
        return await asyncio.wait_for(crew.akickoff(), 30)

    asyncio.run(main())

    assert probe.worst["all"] == 1
    assert probe.loop_probes and all(probe.loop_probes)


def test_two_async_tasks_on_one_agent_break_crewai_without_agent_locks() -> None:
    probe = Probe(parallel=4, watch="agent")
    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(probe), [0, 0, 1, 1, 0], async_tasks=4, probe=probe))
    when("*_failed")(lambda data: probe.abort())  # the second task of agent0 cannot even start

    with pytest.raises(RuntimeError, match="Cannot invoke the same executor instance concurrently"):
        crew.kickoff()


def test_agent_locks_give_each_agent_one_task_at_a_time() -> None:
    probe = Probe(parallel=4, watch="agent")
    crew = make_crew(FakeLLM.make(probe), [0, 0, 1, 1, 0], async_tasks=4, probe=probe)
    adapter.coordinate_crew(crew, agent_locks=True)

    output = crew.kickoff()

    assert [task.raw for task in output.tasks_output] == [f"answer of t{i}" for i in range(5)]
    assert probe.worst["agent:agent0"] == probe.worst["agent:agent1"] == 1
    assert probe.worst["all"] >= 2  # different agents still work in parallel
    assert all(lock_is_free(adapter.agent_lock_name(agent)) for agent in crew.agents)


@pytest.mark.parametrize("how", ["kickoff", "akickoff"])
def test_task_holds_its_lock_for_its_whole_run_on_every_backend(backend: str, how: str) -> None:
    seen: list[bool] = []

    def before(task: Any) -> None:
        seen.append(lock_is_free("api"))

    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(before=before), [0]), locks={"t0": "api"})
    crew.tasks[0].callback = lambda output: seen.append(lock_is_free("api"))

    kickoff(crew, how)

    assert seen == [False, False]  # held in the agent's LLM call and in the task callback
    assert lock_is_free("api")


# -- call chains own their locks ------------------------------------------------------


def test_tools_and_llm_calls_on_other_threads_reenter_the_task_lock() -> None:
    entered: list[tuple[str, int]] = []

    @tool("lookup")
    def lookup(query: str) -> str:
        """Look something up."""
        with lock("api", timeout=2):
            entered.append(("tool", threading.get_ident()))
        return f"found {query}"

    def before(task: Any) -> None:
        with lock("api", timeout=2):
            entered.append(("llm", threading.get_ident()))

    crew = make_crew(FakeLLM.make(before=before), [0], tools=[lookup])
    adapter.coordinate_crew(crew, locks={"t0": "api"}, timeout=2)
    crew.tasks[0].callback = lambda output: entered.append(("task", threading.get_ident()))

    output = crew.kickoff()

    assert output.raw == "answer of t0"
    kinds = [kind for kind, _ in entered]
    assert kinds.count("tool") == 1 and kinds.count("llm") == 2 and kinds[-1] == "task"
    task_thread = entered[-1][1]
    assert any(ident != task_thread for kind, ident in entered if kind != "task")  # CrewAI moved work
    assert lock_is_free("api")


def test_a_lock_held_by_another_chain_times_out_and_names_the_lock(held_elsewhere: Any) -> None:
    held_elsewhere("api")
    calls: list[Any] = []
    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(before=calls.append), [0]), locks={"t0": "api"}, timeout=0.05)
    log = EventLog()

    with pytest.raises(CoordinationTimeoutError, match="'api'"):
        crew.kickoff()

    assert calls == []  # the task never ran
    assert drain(10)
    ended = log.named("t0_")
    assert [name for name, _ in ended] == ["t0_started", "t0_failed"]
    assert ended[1][1]["error_type"] == "CoordinationTimeoutError"


def test_cancelling_akickoff_while_waiting_leaves_nothing_held(held_elsewhere: Any) -> None:
    release = held_elsewhere("api")
    calls: list[Any] = []
    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(before=calls.append), [0]), locks={"t0": "api"})
    log = EventLog()

    async def main() -> None:
        run = asyncio.create_task(crew.akickoff())
        while lock_waiters() == 0:  # the task queued for the lock
            assert not run.done()
            await asyncio.sleep(0.005)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())

    assert lock_waiters() == 0 and calls == []
    release()
    assert lock_is_free("api")  # the cancelled waiter was not handed the lock
    assert drain(10)
    assert [name for name, _ in log.named("t0_")] == ["t0_started", "t0_cancelled"]


# -- events ----------------------------------------------------------------------------


def test_every_task_reports_its_run_in_events_named_after_it() -> None:
    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(), [0, 1, 0], async_tasks=2), locks={"t1": "api"})
    log = EventLog()

    crew.kickoff()

    assert drain(10)
    for i in range(3):
        events = log.named(f"t{i}_")
        assert [name for name, _ in events] == [f"t{i}_started", f"t{i}_complete"]
        started, complete = events[0][1], events[1][1]
        assert started["run_id"] == complete["run_id"]
        assert complete["result"] == f"answer of t{i}"
        assert complete["task"] == f"t{i}" and complete["agent"] == f"agent{i % 2}"
        assert started["kwargs"]["agent"] == f"agent{i % 2}"


def test_a_failing_task_reports_failed_and_releases_its_lock() -> None:
    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(fail="t0"), [0]), locks={"t0": "api"})
    crew.agents[0].max_retry_limit = 0
    log = EventLog()

    with pytest.raises(RuntimeError, match="model down for t0"):
        crew.kickoff()

    assert lock_is_free("api")
    assert drain(10)
    failed = log.named("t0_")
    assert [name for name, _ in failed] == ["t0_started", "t0_failed"]
    assert failed[1][1]["error_type"] == "RuntimeError" and "model down" in failed[1][1]["error"]


def test_a_task_aborted_by_a_crewai_hook_is_interrupted_not_failed() -> None:
    from crewai.hooks.dispatch import HookAborted, InterceptionPoint, register_scoped, scoped_hooks

    def refuse(context: Any) -> None:
        raise HookAborted("not now")

    crew = adapter.coordinate_crew(make_crew(FakeLLM.make(), [0]), locks={"t0": "api"})
    log = EventLog()

    with scoped_hooks(), pytest.raises(HookAborted):
        register_scoped(InterceptionPoint.PRE_STEP, refuse)
        crew.kickoff()

    assert lock_is_free("api")
    assert drain(10)
    assert [name for name, _ in log.named("t0_")] == ["t0_started", "t0_interrupted"]


def test_bridged_crewai_events_are_named_after_the_task() -> None:
    @tool("lookup")
    def lookup(query: str) -> str:
        """Look something up."""
        return f"found {query}"

    crew = make_crew(FakeLLM.make(), [0, 0], tools=[lookup], names=["research", "quiet"])
    adapter.coordinate_crew(crew, bridge_events=True)
    adapter.coordinate_task(crew.tasks[1], bridge_events=False)
    log = EventLog()

    crew.kickoff()

    assert crewai_event_bus.flush(10)
    assert drain(10)
    bridged = dict(log.named("research_tool_usage_"))
    assert set(bridged) == {"research_tool_usage_started", "research_tool_usage_finished"}
    assert bridged["research_tool_usage_finished"]["tool_name"] == "lookup"
    assert bridged["research_tool_usage_finished"]["task"] == "research"
    assert not log.named("quiet_tool_usage_")
