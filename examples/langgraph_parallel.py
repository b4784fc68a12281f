"""LangGraph: parallel research branches that share one model API, offline.

A planner fans out one ``research`` branch per topic with ``Send``; the branches run in
parallel and each calls the same (fake) chat model. The model's account allows one call
at a time, so the graph is coordinated with a lock on the ``research`` node. The findings
are collected with a reducer, which is what lets parallel branches write one key at all.
A ``review`` node then pauses for a human with ``interrupt()`` and is resumed.

Run: python examples/langgraph_parallel.py   (needs: pip install 'agentdiff-coordination[langgraph]')
"""

from __future__ import annotations

import operator
import threading
import time
from typing import Annotated, Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import InvalidUpdateError
from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send, interrupt
from typing_extensions import TypedDict

from agentdiff_coordination import drain, when
from agentdiff_coordination.adapters.langgraph import coordinate_graph

TOPICS = ["batteries", "solar", "wind", "hydrogen"]


class ModelAccount:
    """A stand-in for a model API account: counts the calls in flight at once."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.in_flight = 0
        self.most_at_once = 0
        self.model = GenericFakeChatModel(messages=iter([AIMessage(f"notes on {t}") for t in TOPICS * 4]))

    def ask(self, prompt: str) -> str:
        with self._mutex:
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            time.sleep(0.05)  # the network round trip of a real API
            return str(self.model.invoke([HumanMessage(prompt)]).content)
        finally:
            with self._mutex:
                self.in_flight -= 1


class Report(TypedDict):
    topics: list[str]
    # a reducer: parallel branches each add their finding in the same step
    findings: Annotated[list[str], operator.add]
    verdict: str


def build(account: ModelAccount, *, coordinated: bool) -> Any:
    def plan(state: Report) -> list[Send]:
        return [Send("research", {"topic": topic}) for topic in state["topics"]]

    def research(task: dict[str, str]) -> dict[str, list[str]]:
        return {"findings": [account.ask(f"Research {task['topic']}")]}

    def review(state: Report) -> dict[str, str]:
        return {"verdict": interrupt(f"approve {len(state['findings'])} findings?")}

    builder = StateGraph(Report)
    builder.add_node("research", research)
    builder.add_node("review", review)
    builder.add_conditional_edges(START, plan, ["research"])
    builder.add_edge("research", "review")
    if coordinated:
        coordinate_graph(builder, locks={"research": "model_api"})
    return builder.compile(checkpointer=InMemorySaver())


def plain_key_in_parallel() -> str:
    """Two parallel nodes writing one plain key: LangGraph refuses it, lock or no lock."""

    class Plain(TypedDict):
        summary: str

    builder = StateGraph(Plain)
    for name in ("left", "right"):
        builder.add_node(name, lambda state, name=name: {"summary": name})
        builder.add_edge(START, name)
    coordinate_graph(builder, locks={"left": "summary", "right": "summary"})
    try:
        builder.compile().invoke({"summary": ""})
    except InvalidUpdateError as exc:
        code = str(exc).rsplit("/", 1)[-1]  # the message ends with a link named after the error code
        return f"{code}: {str(exc).splitlines()[0]}"
    return "no error"


def main() -> None:
    timeline: list[str] = []

    @when("research_complete")
    def finished(data: dict[str, Any]) -> None:
        timeline.append(f"research done  step={data['step']} attempt={data['attempt']} -> {data['result']['findings'][0]!r}")

    @when("review_interrupted")
    def paused(data: dict[str, Any]) -> None:
        timeline.append(f"review paused  thread={data['thread_id']} (an interrupt, not a failure)")

    @when("*_failed")
    def failed(data: dict[str, Any]) -> None:
        timeline.append(f"FAILED: {data['error_type']}: {data['error']}")

    free = ModelAccount()
    build(free, coordinated=False).invoke({"topics": TOPICS, "findings": []}, {"configurable": {"thread_id": "free"}})
    print(f"without coordination: {free.most_at_once} model calls at once (the account allows 1)")

    account = ModelAccount()
    graph = build(account, coordinated=True)
    config: dict[str, Any] = {"configurable": {"thread_id": "report-1"}}
    paused_run = graph.invoke({"topics": TOPICS, "findings": []}, config)
    print(f"with coordinate_graph(locks={{'research': 'model_api'}}): {account.most_at_once} call at a time")
    print(f"the graph now waits for a human: {paused_run['__interrupt__'][0].value}")
    final = graph.invoke(Command(resume="approved"), config)
    print(f"resumed: verdict={final['verdict']!r}, {len(final['findings'])} findings kept by the reducer")

    drain()
    print("events seen:")
    for line in timeline:
        print(f"  {line}")
    print("two parallel nodes writing one plain key, each under the same lock:")
    print(f"  {plain_key_in_parallel()}")
    print("  (a lock orders the writes but both land in one step; a reducer, as on 'findings', merges them)")


if __name__ == "__main__":
    main()
