"""The recipes in docs/recipes run as written, with the real frameworks and offline models.

Each recipe's library code is the Markdown code block that starts with ``# recipe:``;
the test runs that exact text, then uses it the way the recipe says.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentdiff_coordination import CoordinationTimeoutError, limit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # CrewAI's own

DOCS = Path(__file__).resolve().parents[2] / "docs" / "recipes"


def recipe(name: str) -> dict[str, Any]:
    """Run the ``# recipe:`` block of ``docs/recipes/NAME`` and return what it defines."""
    text = (DOCS / name).read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if b.startswith("# recipe:")]
    assert len(blocks) == 1, f"{name} must hold exactly one '# recipe:' block"
    namespace: dict[str, Any] = {"__name__": f"recipe_{name.replace('-', '_')}"}
    exec(compile(blocks[0], str(DOCS / name), "exec"), namespace)
    return namespace


# -- AutoGen ---------------------------------------------------------------------------


def test_the_autogen_wrapper_charges_each_request_and_reports_its_tokens(backend: str) -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.replay import ReplayChatCompletionClient

    LimitedChatCompletionClient = recipe("autogen-limits.md")["LimitedChatCompletionClient"]
    api = limit("openai_api", requests="100/min", rate="5000/min")
    replies = ["first answer with five words", "second answer, four words", "third and last answer here"]
    inner = ReplayChatCompletionClient(replies)
    client = LimitedChatCompletionClient(inner, "openai_api", expected_output=100)
    agent = AssistantAgent("researcher", model_client=client)

    async def main() -> None:
        for question in ("one question", "another question", "a last question"):
            await agent.run(task=question)

    asyncio.run(main())
    used = {weighted: n for _, weighted, n in api.usage().used}
    spent = inner.total_usage()
    assert used[False] == 3  # three requests
    assert used[True] == spent.prompt_tokens + spent.completion_tokens  # the estimates were replaced


def test_the_autogen_wrapper_streams_and_waits_for_the_token_budget(backend: str) -> None:
    from autogen_core.models import CreateResult, UserMessage
    from autogen_ext.models.replay import ReplayChatCompletionClient

    LimitedChatCompletionClient = recipe("autogen-limits.md")["LimitedChatCompletionClient"]
    api = limit("openai_api", rate="300/min")
    inner = ReplayChatCompletionClient(["a streamed answer"] * 3)
    client = LimitedChatCompletionClient(inner, "openai_api", expected_output=200, timeout=0.2)
    message = [UserMessage(content="tell me", source="user")]

    async def main() -> None:
        items = [item async for item in client.create_stream(message)]
        assert isinstance(items[-1], CreateResult)
        assert api.usage().used[0][2] == 2 + 3  # reported: 2 prompt + 3 completion tokens
        held = await api.acquire_async(290)  # the budget is nearly spent for a minute
        with pytest.raises(CoordinationTimeoutError, match="openai_api"):
            await client.create(message)
        await held.release_async()

    asyncio.run(main())


# -- CrewAI ----------------------------------------------------------------------------


@pytest.fixture
def crewai_offline() -> Iterator[None]:
    storage = tempfile.mkdtemp(prefix="agentdiff-limits-crewai-")
    saved = dict(os.environ)
    os.environ.update(
        CREWAI_DISABLE_TELEMETRY="true",
        OTEL_SDK_DISABLED="true",
        CREWAI_TRACING_ENABLED="false",
        CREWAI_DISABLE_VERSION_CHECK="true",
        CREWAI_STORAGE_DIR=storage,
    )
    yield
    os.environ.clear()
    os.environ.update(saved)
    shutil.rmtree(storage, ignore_errors=True)


def offline_llm() -> Any:
    from crewai.llms.base_llm import BaseLLM

    class Answering(BaseLLM):
        """Answers every call at once in CrewAI's format, and counts the calls."""

        model: str = "offline"
        calls: int = 0

        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            with _calls_mutex:
                self.calls += 1
            return "Thought: done\nFinal Answer: an answer"

        async def acall(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            return self.call(messages)

        def supports_function_calling(self) -> bool:
            return False

        def get_context_window_size(self) -> int:
            return 100_000

    return Answering(model="offline")


_calls_mutex = threading.Lock()


def test_the_crewai_wrapper_counts_every_call_of_every_crew_copy(backend: str, crewai_offline: None) -> None:
    from crewai import Agent, Crew, Task

    LimitedLLM = recipe("crewai-limits.md")["LimitedLLM"]
    api = limit("openai_api", requests="100/min")
    inner = offline_llm()
    llm = LimitedLLM.wrap(inner, "openai_api")
    agents = [Agent(role=f"agent{i}", goal="answer", backstory="offline", llm=llm, verbose=False) for i in range(2)]
    tasks = [Task(description=f"step {i} about {{topic}}", expected_output="an answer", agent=agents[i]) for i in range(2)]
    crew = Crew(agents=agents, tasks=tasks, memory=False, verbose=False)
    outputs = crew.kickoff_for_each(inputs=[{"topic": t} for t in ("a", "b", "c")])
    assert len(outputs) == 3
    assert inner.calls >= 6
    assert api.usage().used[0][2] == inner.calls  # one budget for all three copies of the crew


def test_the_crewai_wrapper_stops_a_crew_over_the_budget(backend: str, crewai_offline: None) -> None:
    from crewai import Agent, Crew, Task

    LimitedLLM = recipe("crewai-limits.md")["LimitedLLM"]
    limit("openai_api", requests="1/min")
    llm = LimitedLLM.wrap(offline_llm(), "openai_api", timeout=0.1)
    agent = Agent(role="writer", goal="answer", backstory="offline", llm=llm, verbose=False, max_retry_limit=0)
    tasks = [Task(description=f"step {i}", expected_output="an answer", agent=agent) for i in range(2)]
    crew = Crew(agents=[agent], tasks=tasks, memory=False, verbose=False)
    with pytest.raises(CoordinationTimeoutError, match="openai_api"):
        crew.kickoff()
