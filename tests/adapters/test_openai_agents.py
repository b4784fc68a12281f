"""The OpenAI Agents SDK adapter against the real SDK, offline (a scripted ``Model``).

The adapter is a plugin registered through the entry-point group, as a third party's
would be; each test finds it that way (a ``*.dist-info`` on ``sys.path`` when the
package's own entry point is not installed yet).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents")

from tests.adapters.openai_agents_fakes import (  # noqa: E402  (switches tracing off first)
    ScriptedModel,
    call,
    entry_point_installed,
    handoff_to,
    install_entry_point,
)

from agents import (  # noqa: E402
    Agent,
    FunctionTool,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    Runner,
    function_tool,
    input_guardrail,
)

from agentdiff_coordination import CoordinationTimeoutError, coordinate, drain, limit  # noqa: E402
from agentdiff_coordination.adapters import openai_agents  # noqa: E402
from agentdiff_coordination.core import plugins as registry  # noqa: E402
from tests.adapters.langgraph_nodes import EventLog, Overlap  # noqa: E402
from tests.adapters.stragglers import Straggler, cancel_while_it_runs, lock_is_free  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def plugin_from_its_entry_point(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not entry_point_installed():
        monkeypatch.syspath_prepend(str(install_entry_point(tmp_path_factory.mktemp("site"))))
    monkeypatch.delenv(registry.ENV_DISABLE, raising=False)
    registry.reset_plugins()
    openai_agents._estimates.clear()
    yield
    registry.reset_plugins()


# -- the plugin ---------------------------------------------------------------------------------


def test_the_adapter_registers_through_the_entry_point_group_not_as_a_builtin() -> None:
    names = [name for name, _ in registry.get_plugin_manager().list_name_plugin()]
    assert "openai_agents" in names
    assert "agentdiff_coordination.adapters.openai_agents" not in registry.BUILTIN_ADAPTERS


# -- tools --------------------------------------------------------------------------------------


@function_tool
def lookup(city: str, days: int = 1) -> str:
    """Look up the weather.

    Args:
        city: The city.
        days: How many days ahead.
    """
    return f"sunny in {city} for {days}"


def test_a_coordinated_tool_keeps_what_the_sdk_reads() -> None:
    tool = coordinate("lookup", lock_name="weather_api")(lookup)
    assert isinstance(tool, FunctionTool) and tool is not lookup
    for field in ("name", "description", "params_json_schema", "strict_json_schema", "is_enabled", "needs_approval",
                  "timeout_seconds"):
        assert getattr(tool, field) == getattr(lookup, field), field
    assert lookup.on_invoke_tool is not tool.on_invoke_tool  # the original is left as it was


def _parallel_tool_run(tool: Any, calls: int) -> Any:
    model = ScriptedModel([[call(tool.name, {"n": i}) for i in range(calls)], "done"])
    agent = Agent(name="caller", instructions="call", model=model, tools=[tool])
    return Runner.run_sync(agent, "go")


def _probe_tools(overlap: Overlap) -> tuple[Any, Any]:
    @function_tool
    async def probe_async(n: int) -> str:
        """Probe."""
        overlap.enter()
        try:
            await asyncio.sleep(0.02)
        finally:
            overlap.leave()
        return f"a{n}"

    @function_tool
    def probe_sync(n: int) -> str:
        """Probe."""
        overlap.enter()
        try:
            time.sleep(0.02)
        finally:
            overlap.leave()
        return f"s{n}"

    return probe_async, probe_sync


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_parallel_tool_calls_overlap_without_coordination_and_never_with_a_lock(kind: str) -> None:
    bare, locked = Overlap(), Overlap()
    tool_bare = _probe_tools(bare)[kind == "sync"]
    tool = _probe_tools(locked)[kind == "sync"]
    log = EventLog("probe_*")

    assert _parallel_tool_run(tool_bare, 4).final_output == "done"
    result = _parallel_tool_run(coordinate("probe", lock_name="probe_api")(tool), 4)

    assert result.final_output == "done"
    assert bare.peak > 1 and locked.peak == 1
    drain()
    assert log.names().count("probe_started") == 4 and log.names().count("probe_complete") == 4
    assert sorted(d["result"] for d in log.named("probe_complete")) == sorted(
        f"{kind[0]}{i}" for i in range(4))
    assert lock_is_free("probe_api")


def test_a_sync_tool_keeps_its_lock_until_it_returns_when_its_run_is_cancelled() -> None:
    straggler = Straggler()

    def slow() -> str:
        return straggler.work()

    tool = coordinate("slow", lock_name="slow_api")(function_tool(slow))
    log = EventLog("slow_*")
    agent = Agent(name="a", model=ScriptedModel([[call("slow")], "x"]), tools=[tool])

    async def main() -> None:
        await cancel_while_it_runs(asyncio.create_task(Runner.run(agent, "go")), straggler, "slow_api")

    asyncio.run(main())
    drain()
    assert log.names() == ["slow_started", "slow_complete"]


def test_the_sdk_still_refuses_a_timeout_on_a_coordinated_sync_tool() -> None:
    def slow() -> str:
        return "x"

    for tool in (function_tool(slow), coordinate("slow", lock_name="slow_api")(function_tool(slow))):
        tool.timeout_seconds = 1.0
        with pytest.raises(ValueError, match="only supported for async"):
            copy.copy(tool)  # the SDK validates its tools on copy, as on construction


def test_a_failing_tool_reports_failed_when_the_sdk_lets_it_raise() -> None:
    def broken() -> str:
        raise ValueError("no such city")

    tool = coordinate("broken", lock_name="weather_api")(function_tool(broken, failure_error_function=None))
    log = EventLog("broken_*")
    with pytest.raises(Exception, match="no such city"):  # the SDK wraps it in its UserError
        Runner.run_sync(Agent(name="a", model=ScriptedModel([[call("broken")]]), tools=[tool]), "go")
    drain()
    assert log.names() == ["broken_started", "broken_failed"]
    assert lock_is_free("weather_api")


# -- agents -------------------------------------------------------------------------------------


def _agent(model: Any, **extra: Any) -> Agent[Any]:
    return Agent(name="Writer", instructions="write", model=model, tools=[lookup], **extra)


def test_a_coordinated_agent_keeps_its_definition_and_reports_each_turn() -> None:
    helper = Agent(name="Helper", instructions="help", model=ScriptedModel(["helped"]))
    agent = _agent(ScriptedModel([[call("lookup", {"city": "Oslo"})], "final words"]), handoffs=[helper])
    coordinated = coordinate("writer", lock_name="llm")(agent)
    for field in ("name", "instructions", "tools", "handoffs", "input_guardrails", "output_guardrails",
                  "output_type", "model_settings", "hooks"):
        assert getattr(coordinated, field) == getattr(agent, field), field
    log = EventLog("writer_*")

    result = Runner.run_sync(coordinated, "go")

    assert result.final_output == "final words"
    drain()
    assert log.names() == ["writer_started", "writer_complete"] * 2
    first, second = log.named("writer_complete")
    assert first["result"] == {"output": None, "tool_calls": ["lookup"], "handoff": None, "tokens": 30}
    assert second["result"]["output"] == "final words"
    assert lock_is_free("llm")


def test_a_turn_that_hands_off_reports_the_agent_handed_to() -> None:
    helper = Agent(name="Helper", instructions="help", model=ScriptedModel(["helped"]))
    agent = coordinate("writer", lock_name="llm")(_agent(ScriptedModel([[handoff_to("Helper")]]), handoffs=[helper]))
    log = EventLog("writer_*")
    result = Runner.run_sync(agent, "go")
    assert result.final_output == "helped" and result.last_agent.name == "Helper"
    drain()
    assert log.named("writer_complete")[0]["result"]["handoff"] == "Helper"


def test_runs_of_one_coordinated_agent_never_call_the_model_at_once() -> None:
    overlaps = {False: Overlap(), True: Overlap()}

    def agent_for(coordinated: bool) -> Any:
        model = ScriptedModel(["ok"], repeat=True)
        overlap = overlaps[coordinated]

        async def probe() -> None:
            overlap.enter()
            await asyncio.sleep(0.01)
            overlap.leave()

        model.before_answer = probe
        agent = _agent(model)
        return coordinate("writer", lock_name="llm")(agent) if coordinated else agent

    async def main(coordinated: bool) -> None:
        agent = agent_for(coordinated)
        results = await asyncio.gather(*(Runner.run(agent, f"q{i}") for i in range(4)))
        assert [r.final_output for r in results] == ["ok"] * 4

    asyncio.run(main(False))
    asyncio.run(main(True))
    assert overlaps[False].peak > 1 and overlaps[True].peak == 1


def test_a_fleet_of_agents_shares_one_token_budget() -> None:
    limit("tpm", rate="60/min")
    agents_ = [coordinate(f"a{i}", limit="tpm", timeout=0.2)(_agent(ScriptedModel(["ok"], tokens=30))) for i in range(3)]
    assert Runner.run_sync(agents_[0], "go").final_output == "ok"
    assert Runner.run_sync(agents_[1], "go").final_output == "ok"
    with pytest.raises(CoordinationTimeoutError):  # 60 tokens spent this minute
        Runner.run_sync(agents_[2], "go")


def test_streamed_runs_pass_every_event_through_in_order_and_report_tokens() -> None:
    async def events(agent: Any) -> list[str]:
        result = Runner.run_streamed(agent, "go")
        seen = [getattr(e, "type", "") + ":" + getattr(getattr(e, "data", None), "type", "")
                async for e in result.stream_events()]
        assert result.final_output == "three little words"
        return seen

    log = EventLog("writer_*")
    bare = asyncio.run(events(_agent(ScriptedModel(["three little words"]))))
    coordinated = asyncio.run(events(coordinate("writer", lock_name="llm")(_agent(ScriptedModel(["three little words"])))))
    assert coordinated == bare
    drain()
    assert log.names() == ["writer_started", "writer_complete"]
    assert log.named("writer_complete")[0]["result"]["tokens"] == 30
    assert lock_is_free("llm")


def test_a_tripwire_propagates_unchanged_and_is_not_reported_as_a_failure() -> None:
    @input_guardrail
    async def no_secrets(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info="secret", tripwire_triggered=True)

    agent = coordinate("writer", lock_name="llm")(_agent(ScriptedModel(["ok"], repeat=True),
                                                       input_guardrails=[no_secrets]))
    log = EventLog("writer_*")
    with pytest.raises(InputGuardrailTripwireTriggered):
        Runner.run_sync(agent, "the password is 42")
    drain()
    assert "writer_failed" not in log.names()
    assert lock_is_free("llm")


def test_max_turns_exceeded_propagates_and_leaves_no_lock_held() -> None:
    agent = coordinate("writer", lock_name="llm")(_agent(ScriptedModel([[call("lookup", {"city": "Rome"})]], repeat=True)))
    with pytest.raises(MaxTurnsExceeded):
        Runner.run_sync(agent, "go", max_turns=2)
    assert lock_is_free("llm")


def test_coordinating_an_agent_twice_replaces_instead_of_stacking() -> None:
    model = ScriptedModel(["ok"])
    once = coordinate("writer", lock_name="llm")(_agent(model))
    twice = coordinate("editor", lock_name="desk")(once)
    assert twice.model.inner is model


def test_a_tripwire_that_cancels_a_model_call_in_flight_ends_the_turn_as_cancelled() -> None:
    called = asyncio.Event()

    @input_guardrail
    async def slow_check(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        await called.wait()  # trips while the model call is in flight
        return GuardrailFunctionOutput(output_info="secret", tripwire_triggered=True)

    async def thinking() -> None:
        called.set()
        await asyncio.sleep(30)

    model = ScriptedModel(["ok"], repeat=True)
    model.before_answer = thinking
    agent = coordinate("writer", lock_name="llm")(_agent(model, input_guardrails=[slow_check]))
    log = EventLog("writer_*")
    with pytest.raises(InputGuardrailTripwireTriggered):
        asyncio.run(Runner.run(agent, "the password is 42"))
    drain()
    assert log.names() == ["writer_started", "writer_cancelled"]
    assert lock_is_free("llm")


def test_without_the_sdk_the_adapter_imports_and_names_the_extra_to_install() -> None:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        sys.modules["agents"] = None  # as if openai-agents were not installed
        from agentdiff_coordination.adapters import openai_agents
        assert openai_agents.coordination_owns(object()) is None
        try:
            openai_agents.coordinated_tool(object(), None)
        except ImportError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'agentdiff-coordination[openai-agents]'" in done.stdout, done.stderr
