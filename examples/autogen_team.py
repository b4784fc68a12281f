"""AutoGen agents that share one rate-limited API, offline: a fan-out GraphFlow, run twice.

    python examples/autogen_team.py

A planner hands the task to three writers that run in parallel (GraphFlow fans out),
then an editor joins their drafts. The writers call the same (pretend) LLM API, which
allows one call at a time. First run: bare agents, the calls overlap. Second run: each
writer wrapped in ``coordinate(..., lock_name="llm_api")``, the calls take turns, and
``@when`` handlers report each writer's turn. No model, no network: the agents are
model-free ``BaseChatAgent`` subclasses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import Response
from autogen_agentchat.messages import BaseChatMessage, TextMessage
from autogen_agentchat.teams import DiGraphBuilder, GraphFlow
from autogen_core import CancellationToken

from agentdiff_coordination import coordinate, drain, when


class PretendAPI:
    """Stands in for an LLM endpoint that serves one call at a time; counts overlaps."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_at_once = 0

    async def complete(self, prompt: str) -> str:
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            await asyncio.sleep(0.05)  # the network round trip
            return f"a paragraph about {prompt}"
        finally:
            self.in_flight -= 1


class Writer(BaseChatAgent):
    """Writes one paragraph on ``topic`` through the API."""

    def __init__(self, name: str, topic: str, api: PretendAPI) -> None:
        super().__init__(name, f"writes about {topic}")
        self.topic = topic
        self.api = api

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (TextMessage,)

    async def on_messages(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken) -> Response:
        text = await self.api.complete(self.topic)
        return Response(chat_message=TextMessage(content=text, source=self.name))

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        pass


class Say(Writer):
    """Answers with a fixed line, without the API (the planner and the editor)."""

    def __init__(self, name: str, line: str) -> None:
        super().__init__(name, "-", PretendAPI())
        self.line = line

    async def on_messages(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken) -> Response:
        return Response(chat_message=TextMessage(content=self.line, source=self.name))


def build_flow(writers: Sequence[BaseChatAgent]) -> GraphFlow:
    """planner -> every writer at once -> editor."""
    planner, editor = Say("planner", "three sections, in parallel"), Say("editor", "merged the drafts")
    builder = DiGraphBuilder().add_node(planner).add_node(editor)
    for writer in writers:
        builder.add_node(writer).add_edge(planner, writer).add_edge(writer, editor)
    return GraphFlow(builder.get_participants(), graph=builder.build())


TOPICS = {"history": "the history", "methods": "the methods", "results": "the results"}


async def main() -> None:
    api = PretendAPI()
    bare = [Writer(name, topic, api) for name, topic in TOPICS.items()]
    await build_flow(bare).run(task="write the report")
    print(f"bare agents:        at most {api.most_at_once} API calls at once")

    @when("*_complete")
    def turn_done(data: dict[str, Any]) -> None:
        print(f"  {data['agent']} finished its turn: {data['result']['content']!r}")

    api = PretendAPI()
    coordinated = [coordinate(name, lock_name="llm_api")(Writer(name, topic, api)) for name, topic in TOPICS.items()]
    result = await build_flow(coordinated).run(task="write the report")
    await drain()
    print(f"coordinated agents: at most {api.most_at_once} API call at once")
    print("speakers, names kept:", ", ".join(m.source for m in result.messages if isinstance(m, TextMessage)))
    assert api.most_at_once == 1


if __name__ == "__main__":
    asyncio.run(main())
