"""The AutoGen adapter against the real autogen-agentchat, offline (model-free agents, replayed models)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("autogen_agentchat")

from autogen_agentchat.agents import AssistantAgent, BaseChatAgent, SocietyOfMindAgent
from autogen_agentchat.base import Response, TaskResult
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import HandoffMessage, TextMessage, ThoughtEvent
from autogen_agentchat.teams import (
    DiGraphBuilder,
    GraphFlow,
    RoundRobinGroupChat,
    SelectorGroupChat,
    Swarm,
)
from autogen_core import CancellationToken
from autogen_ext.models.replay import ReplayChatCompletionClient

from agentdiff_coordination import (
    CoordinationTimeoutError,
    coordinate,
    drain,
    limit,
    lock,
)
from agentdiff_coordination.adapters import autogen as adapter
from agentdiff_coordination.core.locks import held_grants
from tests.adapters.autogen_agents import (
    EventLog,
    HandoffAgent,
    Overlap,
    RecorderAgent,
    ScriptedAgent,
    holder_of,
    lock_waiters,
)

pytestmark = pytest.mark.timeout(60)

LIMIT = 30.0  # seconds a team run may take before the test calls it a hang


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


@contextlib.asynccontextmanager
async def held_elsewhere(name: str) -> AsyncIterator[None]:
    """Lock ``name`` held by another task (not by the caller's own call chain) for the block."""
    taken, done = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with lock(name):
            taken.set()
            await done.wait()

    holder = asyncio.create_task(hold())
    await taken.wait()
    try:
        yield
    finally:
        done.set()
        await holder


def fan_out(agents: list[BaseChatAgent], start: BaseChatAgent, end: BaseChatAgent) -> GraphFlow:
    """start -> every agent in parallel -> end."""
    builder = DiGraphBuilder()
    builder.add_node(start).add_node(end)
    for agent in agents:
        builder.add_node(agent).add_edge(start, agent).add_edge(agent, end)
    return GraphFlow(builder.get_participants(), graph=builder.build())


# -- import and identity ---------------------------------------------------------------


def test_adapter_module_imports_and_answers_without_autogen() -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("autogen_agentchat", "autogen_core", "autogen_ext"):
            sys.modules[name] = None  # makes any import of them fail
        import agentdiff_coordination
        from agentdiff_coordination.adapters import autogen
        from agentdiff_coordination.core.plugins import get_plugin_manager
        get_plugin_manager()
        assert autogen.coordination_owns(object()) is None
        assert agentdiff_coordination.coordinate("f")(lambda: 1)() == 1
        try:
            autogen.CoordinatedAgent
        except ImportError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "pip install 'agentdiff-coordination[autogen]'" in out.stdout


def test_importing_the_package_does_not_import_autogen() -> None:
    code = "import sys, agentdiff_coordination.core.plugins as r; r.get_plugin_manager(); " \
           "print(any(m.startswith('autogen') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_proxy_keeps_name_description_and_message_types() -> None:
    inner = HandoffAgent("router", target="b", description="routes work")
    proxy = coordinate("routing", lock_name="x")(inner)
    assert isinstance(proxy, BaseChatAgent) and isinstance(proxy, adapter.CoordinatedAgent)
    assert proxy.name == "router"
    assert proxy.description == "routes work"
    assert list(proxy.produced_message_types) == [HandoffMessage, TextMessage]
    assert proxy.inner is inner and proxy.coordinator.locks == ("x",)
    assert proxy.target == "b"  # anything else is read from the inner agent


def test_only_autogen_agents_are_claimed() -> None:
    assert adapter.coordination_owns(ScriptedAgent("a")) is True
    assert adapter.coordination_owns(lambda: None) is None
    assert callable(coordinate("plain")(lambda: 1))


# -- one turn --------------------------------------------------------------------------


def test_every_streamed_item_passes_through_in_order() -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        bare = [item async for item in ScriptedAgent("a", thoughts=3).on_messages_stream([], CancellationToken())]
        proxy = coordinate("a", lock_name="x")(ScriptedAgent("a", thoughts=3))
        wrapped = [item async for item in proxy.on_messages_stream([], CancellationToken())]
        return bare, wrapped

    bare, wrapped = run(main())
    assert [type(i) for i in wrapped] == [ThoughtEvent, ThoughtEvent, ThoughtEvent, Response]
    assert [getattr(i, "content", None) for i in wrapped[:3]] == [i.content for i in bare[:3]]
    assert wrapped[-1].chat_message.content == bare[-1].chat_message.content


def test_lock_is_held_for_the_whole_turn_and_released_after() -> None:
    async def main() -> tuple[list[str | None], str | None]:
        proxy = coordinate("writer", lock_name="x")(ScriptedAgent("a", thoughts=2))
        holders = []
        async for _ in proxy.on_messages_stream([], CancellationToken()):
            holders.append(holder_of("x"))
        return holders, holder_of("x")

    holders, after = run(main())
    assert len(holders) == 3 and all(h is not None and "writer" in h for h in holders)
    assert after is None


def test_inner_stream_advances_only_when_the_caller_asks() -> None:
    async def main() -> list[int]:
        inner = ScriptedAgent("a", thoughts=4)
        proxy = coordinate("a", lock_name="x")(inner)
        pulled = []
        async for _ in proxy.on_messages_stream([], CancellationToken()):
            for _ in range(5):
                await asyncio.sleep(0)  # give a runaway producer every chance
            pulled.append(inner.pulled)
        return pulled

    assert run(main()) == [1, 2, 3, 4, 5]


def test_on_messages_and_run_go_through_the_locked_stream() -> None:
    async def main() -> tuple[Response, TaskResult, list[str | None]]:
        seen: list[str | None] = []
        inner = ScriptedAgent("a", on_turn=lambda agent: seen.append(holder_of("x")))
        proxy = coordinate("a", lock_name="x")(inner)
        response = await proxy.on_messages([TextMessage(content="hi", source="user")], CancellationToken())
        result = await proxy.run(task="again")
        return response, result, seen

    response, result, seen = run(main())
    assert response.chat_message.content == "done"
    assert [m.to_text() for m in result.messages] == ["again", "done"]
    assert len(seen) == 2 and all(s is not None for s in seen)


def test_reset_pause_resume_state_and_close_reach_the_inner_agent() -> None:
    async def main() -> tuple[list[str], Any]:
        inner = RecorderAgent("rec")
        proxy = coordinate("rec", lock_name="x")(inner)
        token = CancellationToken()
        await proxy.on_reset(token)
        await proxy.on_pause(token)
        await proxy.on_resume(token)
        state = await proxy.save_state()
        await proxy.load_state({**state, "n": 7})
        await proxy.close()
        return inner.calls, inner.state

    calls, state = run(main())
    assert calls == ["reset", "pause", "resume", "save_state", "load_state", "close"]
    assert state["n"] == 7


def test_turn_emits_started_and_complete_with_agent_and_one_run_id() -> None:
    async def main() -> None:
        proxy = coordinate("writing", lock_name="x")(ScriptedAgent("writer", reply="a draft"))
        await proxy.run(task="write")
        await drain()

    log = EventLog()
    run(main())
    assert log.names() == ["writing_started", "writing_complete"]
    (started,), (complete,) = log.of("writing_started"), log.of("writing_complete")
    assert started["agent"] == complete["agent"] == "writer"
    assert started["run_id"] == complete["run_id"]
    assert [m["content"] for m in started["kwargs"]["messages"]] == ["write"]
    assert complete["result"]["content"] == "a draft" and complete["result"]["source"] == "writer"


def test_a_failing_turn_reraises_emits_failed_and_frees_the_lock() -> None:
    def boom(agent: ScriptedAgent) -> None:
        raise ValueError("model said no")

    async def main() -> None:
        proxy = coordinate("writing", lock_name="x")(ScriptedAgent("writer", on_turn=boom))
        with pytest.raises(ValueError, match="model said no"):
            await proxy.run(task="write")
        await drain()

    log = EventLog()
    run(main())
    assert holder_of("x") is None
    (failed,) = log.of("writing_failed")
    assert failed["error_type"] == "ValueError" and failed["agent"] == "writer"


def test_lock_timeout_raises_coordination_timeout_error_naming_the_lock() -> None:
    async def main() -> None:
        proxy = coordinate("writer", lock_name="x", timeout=0.05)(ScriptedAgent("a"))
        async with held_elsewhere("x"):
            with pytest.raises(CoordinationTimeoutError, match="'x'"):
                await proxy.run(task="go")
        await drain()

    log = EventLog()
    run(main())
    assert holder_of("x") is None
    assert log.names() == ["writer_started", "writer_failed"]
    assert log.of("writer_failed")[0]["error_type"] == "CoordinationTimeoutError"


def test_a_caller_already_holding_the_lock_re_enters_it() -> None:
    async def main() -> TaskResult:
        proxy = coordinate("writer", lock_name="x", timeout=5)(ScriptedAgent("a"))
        async with lock("x"):  # the same call chain: the turn inherits the ownership
            return await proxy.run(task="go")

    assert run(main()).messages[-1].to_text() == "done"
    assert holder_of("x") is None


def test_an_agent_coordinated_twice_on_one_lock_re_enters_it() -> None:
    async def main() -> TaskResult:
        inner = coordinate("inner_step", lock_name="x", timeout=5)(ScriptedAgent("a"))
        return await coordinate("outer_step", lock_name="x", timeout=5)(inner).run(task="go")

    assert run(main()).messages[-1].to_text() == "done"
    assert holder_of("x") is None


# -- cancellation ----------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_cancelling_the_token_while_waiting_for_the_lock_aborts_the_wait_and_holds_nothing(
    backend: str, timeout: float | None,
) -> None:
    async def main() -> tuple[int, int | None, str | None]:
        inner = ScriptedAgent("a")
        proxy = coordinate("a", lock_name="x", timeout=timeout)(inner)
        token = CancellationToken()
        async with held_elsewhere("x"):
            task = asyncio.create_task(proxy.run(task="go", cancellation_token=token))
            while lock_waiters() != 1:
                await asyncio.sleep(0.001)
            token.cancel()
            await asyncio.wait({task}, timeout=LIMIT / 2)
            assert task.cancelled()
            waiters = lock_waiters()
        await drain()
        return inner.turns, waiters, holder_of("x")

    log = EventLog()
    turns, waiters, holder = run(main())
    assert turns == 0 and waiters == 0 and holder is None
    assert log.names() == ["a_started", "a_cancelled"]


def test_a_token_cancelled_before_the_turn_never_takes_the_lock() -> None:
    async def main() -> int:
        inner = ScriptedAgent("a")
        token = CancellationToken()
        token.cancel()
        task = asyncio.create_task(coordinate("a", lock_name="x")(inner).run(task="go", cancellation_token=token))
        await asyncio.wait({task}, timeout=LIMIT / 2)
        assert task.cancelled()
        return inner.turns

    assert run(main()) == 0
    assert holder_of("x") is None


def test_once_the_lock_is_held_the_token_belongs_to_the_inner_agent() -> None:
    token = CancellationToken()

    async def main() -> TaskResult:
        inner = ScriptedAgent("a", on_turn=lambda agent: token.cancel())  # this agent ignores its token
        return await coordinate("a", lock_name="x")(inner).run(task="go", cancellation_token=token)

    result = run(main())
    assert result.messages[-1].to_text() == "done"


def test_closing_the_stream_early_releases_the_lock_and_reports_cancelled() -> None:
    async def main() -> str | None:
        proxy = coordinate("a", lock_name="x")(ScriptedAgent("a", thoughts=3))
        stream = proxy.on_messages_stream([], CancellationToken())
        await stream.__anext__()
        assert holder_of("x") is not None
        await stream.aclose()
        await drain()
        return holder_of("x")

    log = EventLog()
    assert run(main()) is None
    assert log.names() == ["a_started", "a_cancelled"]


def test_cancelling_the_caller_mid_turn_releases_the_lock() -> None:
    async def main() -> str | None:
        inside = asyncio.Event()
        forever = asyncio.Event()

        async def stuck(agent: ScriptedAgent) -> None:
            inside.set()
            await forever.wait()

        proxy = coordinate("a", lock_name="x")(ScriptedAgent("a", on_turn=stuck))
        task = asyncio.create_task(proxy.run(task="go"))
        await inside.wait()
        task.cancel()
        await asyncio.wait({task}, timeout=LIMIT / 2)
        assert task.cancelled()
        return holder_of("x")

    assert run(main()) is None


def test_an_abandoned_stream_never_marks_the_caller_as_holder_and_frees_the_lock() -> None:
    async def main() -> tuple[dict[str, Any], bool]:
        proxy = coordinate("a", lock_name="x")(ScriptedAgent("a", thoughts=3))
        async for _ in proxy.on_messages_stream([], CancellationToken()):
            break  # abandoned: no aclose; the loop's finalizer closes it later
        held_by_caller = dict(held_grants())
        gc.collect()
        async with lock("x", timeout=10):  # the finalizer released it
            pass
        return held_by_caller, True

    held, reacquired = run(main())
    assert held == {} and reacquired


# -- teams -----------------------------------------------------------------------------


def test_round_robin_keeps_names_and_emits_per_turn() -> None:
    async def main() -> TaskResult:
        a = coordinate("a_turn", lock_name="api")(ScriptedAgent("alice", reply="A"))
        b = coordinate("b_turn", lock_name="api")(ScriptedAgent("bob", reply="B"))
        team = RoundRobinGroupChat([a, b], termination_condition=MaxMessageTermination(5))
        result = await team.run(task="start")
        await drain()
        return result

    log = EventLog()
    result = run(main())
    assert [(m.source, m.to_text()) for m in result.messages] == [
        ("user", "start"), ("alice", "A"), ("bob", "B"), ("alice", "A"), ("bob", "B")]
    assert log.names().count("a_turn_complete") == 2 and log.names().count("b_turn_complete") == 2
    assert holder_of("api") is None


def test_selector_group_chat_picks_proxies_by_name() -> None:
    async def main() -> TaskResult:
        agents = [
            coordinate(f"{name}_turn", lock_name="api")(ScriptedAgent(name, reply=name.upper()))
            for name in ("planner", "coder", "critic")
        ]
        selector = ReplayChatCompletionClient(["coder", "critic", "planner"])
        team = SelectorGroupChat(agents, model_client=selector, termination_condition=MaxMessageTermination(4))
        result = await team.run(task="build it")
        await drain()
        return result

    log = EventLog()
    result = run(main())
    assert [m.source for m in result.messages] == ["user", "coder", "critic", "planner"]
    assert [n for n in log.names() if n.endswith("_complete")] == [
        "coder_turn_complete", "critic_turn_complete", "planner_turn_complete"]


def test_swarm_hands_off_between_proxies() -> None:
    async def main() -> TaskResult:
        first = coordinate("triage", lock_name="api")(HandoffAgent("triage", target="billing"))
        second = coordinate("billing", lock_name="api")(HandoffAgent("billing", target=None))
        team = Swarm([first, second], termination_condition=MaxMessageTermination(3))
        result = await team.run(task="refund please")
        await drain()
        return result

    log = EventLog()
    result = run(main())
    assert [type(m).__name__ for m in result.messages] == ["TextMessage", "HandoffMessage", "TextMessage"]
    assert [m.source for m in result.messages] == ["user", "triage", "billing"]
    assert log.names().count("triage_complete") == log.names().count("billing_complete") == 1


def test_graphflow_parallel_branches_overlap_without_coordination() -> None:
    probe = Overlap(expected=2)
    branches: list[BaseChatAgent] = [ScriptedAgent(n, probe=probe) for n in ("left", "right")]
    flow = fan_out(branches, ScriptedAgent("start"), ScriptedAgent("join"))
    run(flow.run(task="go"))
    assert probe.entered == 2 and probe.max_active == 2  # the branches really run at once


@pytest.mark.parametrize("width", [2, 6])
def test_graphflow_parallel_branches_take_turns_on_one_lock(backend: str, width: int) -> None:
    probe = Overlap(expected=width, lock_name="db")
    branches = [
        coordinate(f"branch{i}", lock_name="db")(ScriptedAgent(f"branch{i}", probe=probe)) for i in range(width)
    ]
    flow = fan_out(branches, ScriptedAgent("start"), ScriptedAgent("join"))

    async def main() -> TaskResult:
        result = await flow.run(task="go")
        await drain()
        return result

    log = EventLog()
    result = run(main())
    assert probe.entered == width and probe.violations == 0 and probe.max_active == 1
    if lock_waiters() is not None:
        assert probe.saw_waiter >= 1  # a branch was really queued on the lock while another held it
    assert sorted(m.source for m in result.messages[1:-1] if m.source.startswith("branch")) == [
        f"branch{i}" for i in range(width)]
    assert sorted(n for n in log.names() if n.endswith("_complete")) == sorted(
        f"branch{i}_complete" for i in range(width))
    assert holder_of("db") is None


def test_graphflow_branches_on_different_locks_still_overlap() -> None:
    probe = Overlap(expected=2)
    branches = [coordinate("l", lock_name="x")(ScriptedAgent("left", probe=probe)),
                coordinate("r", lock_name="y")(ScriptedAgent("right", probe=probe))]
    run(fan_out(branches, ScriptedAgent("start"), ScriptedAgent("join")).run(task="go"))
    assert probe.max_active == 2


def test_graphflow_branches_hold_a_concurrency_limit_for_their_whole_turn() -> None:
    limit("autogen_tests_two_at_once", concurrency=2)
    probe = Overlap(expected=5)
    branches = [
        coordinate(f"b{i}", limit="autogen_tests_two_at_once")(ScriptedAgent(f"b{i}", probe=probe)) for i in range(5)
    ]
    run(fan_out(branches, ScriptedAgent("start"), ScriptedAgent("join")).run(task="go"))
    assert probe.entered == 5 and probe.max_active == 2


def test_nested_society_of_mind_on_the_same_lock_does_not_deadlock(backend: str) -> None:
    inner_holders: list[str | None] = []

    def note(agent: ScriptedAgent) -> None:
        inner_holders.append(holder_of("api"))

    async def main() -> TaskResult:
        workers = [coordinate(f"w{i}", lock_name="api")(ScriptedAgent(f"w{i}", on_turn=note)) for i in range(2)]
        inner_team = RoundRobinGroupChat(workers, termination_condition=MaxMessageTermination(3))
        som = SocietyOfMindAgent("society", team=inner_team, model_client=ReplayChatCompletionClient(["summary"]))
        outer = coordinate("society_turn", lock_name="api")(som)
        other = coordinate("reviewer", lock_name="api")(ScriptedAgent("reviewer", reply="ok"))
        team = RoundRobinGroupChat([outer, other], termination_condition=MaxMessageTermination(3))
        result = await team.run(task="plan")
        await drain()
        return result

    log = EventLog()
    result = run(main())
    # the society's inner messages stream through the proxy into the outer team's output
    assert [m.source for m in result.messages] == ["user", "w0", "w1", "society", "reviewer"]
    assert len(inner_holders) == 2 and all(h is not None and "society_turn" in h for h in inner_holders)
    assert {"w0_complete", "w1_complete", "society_turn_complete", "reviewer_complete"} <= set(log.names())
    assert holder_of("api") is None


# -- helpers and config ----------------------------------------------------------------


def test_coordinate_agents_names_events_after_agents_and_locks_only_those_named() -> None:
    seen: dict[str, str | None] = {}

    def note(agent: ScriptedAgent) -> None:
        seen[agent.name] = holder_of("db")

    agents = adapter.coordinate_agents(
        [ScriptedAgent("reader", on_turn=note), ScriptedAgent("writer", on_turn=note)], locks={"writer": "db"}
    )

    async def main() -> None:
        await RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(3)).run(task="go")
        await drain()

    log = EventLog()
    run(main())
    assert seen["reader"] is None and seen["writer"] is not None
    assert [n for n in log.names() if n.endswith("_complete")] == ["reader_complete", "writer_complete"]
    with pytest.raises(ValueError, match="nobody"):
        adapter.coordinate_agents([ScriptedAgent("a")], locks={"nobody": "db"})


def test_component_config_round_trips_with_the_spec() -> None:
    inner = AssistantAgent("helper", model_client=ReplayChatCompletionClient(["hi"]), description="helps")
    proxy = coordinate("helping", lock_name=["b", "a"], timeout=3.0)(inner)
    model = proxy.dump_component()
    assert model.provider == "agentdiff_coordination.adapters.autogen.CoordinatedAgent"
    loaded = BaseChatAgent.load_component(model)
    assert isinstance(loaded, adapter.CoordinatedAgent)
    assert (loaded.name, loaded.description) == ("helper", "helps")
    assert (loaded.coordinator.name, loaded.coordinator.locks, loaded.coordinator.timeout) == ("helping", ("a", "b"), 3.0)
    assert loaded.model_context is loaded.inner.model_context  # other attributes come from the inner agent
    result = run(loaded.run(task="hello"))
    assert result.messages[-1].to_text() == "hi"


def test_a_token_cancelled_wait_may_await_its_own_cleanup() -> None:
    from agentdiff_coordination.adapters.autogen import _in_context, _Wait

    cleaned: list[str] = []

    async def wait_with_async_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # e.g. telling a server to drop the queued request
            cleaned.append("done")
            raise

    async def main() -> None:
        wait = _Wait()
        task = asyncio.create_task(_in_context(contextvars.copy_context(), wait_with_async_cleanup(), wait))
        await asyncio.sleep(0)
        wait()  # the token fires
        await asyncio.wait({task}, timeout=LIMIT / 2)
        assert task.cancelled()

    run(main())
    assert cleaned == ["done"]
