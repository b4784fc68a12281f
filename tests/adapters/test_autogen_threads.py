"""A coordinated AutoGen agent whose turn runs a sync tool in a worker thread (issue 10, item 9).

AutoGen runs a sync ``FunctionTool`` with ``run_in_executor``. When the task running
the turn is cancelled, the turn's coroutine ends but the tool's thread runs on: the
agent's lock must stay held until the tool has returned. This test failed before the
adapter waited for that work (the lock was free at once).
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("autogen_agentchat")

from autogen_agentchat.agents import AssistantAgent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from autogen_core.tools import FunctionTool
from autogen_ext.models.replay import ReplayChatCompletionClient

from agentdiff_coordination import coordinate
from tests.adapters.stragglers import Straggler, cancel_while_it_runs

pytestmark = pytest.mark.timeout(60)

MODEL_INFO = {"vision": False, "function_calling": True, "json_output": False, "family": "unknown",
              "structured_output": False}


def test_a_cancelled_turn_keeps_the_agents_lock_until_its_sync_tool_returns() -> None:
    straggler = Straggler()

    def write_ledger() -> str:
        return straggler.work()

    client = ReplayChatCompletionClient([
        CreateResult(content=[FunctionCall(id="1", arguments="{}", name="write_ledger")],
                     finish_reason="function_calls", usage=RequestUsage(prompt_tokens=1, completion_tokens=1),
                     cached=False),
        "done",
    ], model_info=MODEL_INFO)
    inner = AssistantAgent("writer", model_client=client, tools=[FunctionTool(write_ledger, description="write")])
    agent = coordinate("writer", lock_name="ledger")(inner)

    async def main() -> None:
        await cancel_while_it_runs(asyncio.create_task(agent.run(task="go")), straggler, "ledger")

    asyncio.run(main())
