"""The LangChain integration with real langchain-core chat models (fake LLMs, offline)."""

from __future__ import annotations

import asyncio
import itertools
import operator
import threading
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.messages.ai import UsageMetadata

from agentdiff_coordination import CoordinationTimeoutError, limit
from agentdiff_coordination.integrations.langchain import LimitRateLimiter, LimitUsageCallback

from .support import run_threads


def answers(tokens: int = 0) -> Iterator[AIMessage]:
    """The same answer forever; ``itertools.repeat`` may be read from several threads at once
    (LangChain runs a fake model's async calls on executor threads)."""
    if not tokens:
        return itertools.repeat(AIMessage(content="an answer"))
    usage = UsageMetadata(input_tokens=tokens - tokens // 2, output_tokens=tokens // 2, total_tokens=tokens)
    return itertools.repeat(AIMessage(content="an answer", usage_metadata=usage))


def model(limiter: LimitRateLimiter, **kwargs: Any) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=answers(kwargs.pop("tokens", 0)), rate_limiter=limiter, **kwargs)


def test_every_model_call_is_admitted_by_the_named_limit(backend: str) -> None:
    llm = limit("llm", requests="3/min")
    chat = model(LimitRateLimiter("llm", timeout=0.1))
    for _ in range(3):
        assert chat.invoke("hi").content == "an answer"
    assert llm.usage().used[0][2] == 3
    with pytest.raises(CoordinationTimeoutError, match="llm"):
        chat.invoke("one too many")


def test_async_model_calls_share_the_limit_with_sync_ones(backend: str) -> None:
    llm = limit("llm", requests="4/min")
    limiter = LimitRateLimiter("llm", timeout=0.1)
    chat = model(limiter)
    chat.invoke("sync")

    async def main() -> None:
        await asyncio.gather(*(chat.ainvoke(f"async {i}") for i in range(3)))
        with pytest.raises(CoordinationTimeoutError, match="llm"):
            await chat.ainvoke("one too many")

    asyncio.run(main())
    assert llm.usage().used[0][2] == 4


def test_models_on_many_threads_never_get_more_than_the_limit(backend: str) -> None:
    llm = limit("llm", requests="10/min")
    limiter = LimitRateLimiter("llm")  # shared, as one would pass it to several models
    admitted = []
    mutex = threading.Lock()

    def try_once() -> None:
        if limiter.acquire(blocking=False):
            with mutex:
                admitted.append(1)

    run_threads([try_once] * 30)
    assert len(admitted) == 10
    assert asyncio.run(limiter.aacquire(blocking=False)) is False
    assert llm.usage().used[0][2] == 10


def test_the_usage_callback_charges_the_tokens_each_call_used(backend: str) -> None:
    llm = limit("llm", requests="100/min", rate="1000/min")
    chat = model(LimitRateLimiter("llm", timeout=0.1), tokens=300, callbacks=[LimitUsageCallback("llm")])
    for _ in range(3):
        chat.invoke("hi")
    used = {weighted: n for _, weighted, n in llm.usage().used}
    assert used == {True: 3 * (1 + 300), False: 3}
    chat.invoke("903 tokens spent: a fourth request still fits")
    with pytest.raises(CoordinationTimeoutError, match="llm"):
        chat.invoke("1204 tokens spent: over the budget, the fifth waits")


def test_a_concurrency_limit_is_refused_with_the_reason() -> None:
    slots = limit("slots", concurrency=2)
    with pytest.raises(ValueError, match="concurrency=2.*never says when a call ends"):
        LimitRateLimiter(slots)
    lazy = LimitRateLimiter("slots")  # looked up at first use
    with pytest.raises(ValueError, match="concurrency=2"):
        lazy.acquire()


def test_a_limiter_may_be_made_before_its_limit_is_declared(backend: str) -> None:
    limiter = LimitRateLimiter("later")
    with pytest.raises(LookupError, match="limit 'later' is not declared"):
        limiter.acquire()
    limit("later", requests="1/s")
    assert limiter.acquire(blocking=False) is True


def test_parallel_langgraph_nodes_share_one_limit(backend: str) -> None:
    from langgraph.graph import END, START, StateGraph

    llm = limit("llm", requests="100/min")
    chat = model(LimitRateLimiter("llm"))

    class State(TypedDict):
        answers: Annotated[list[str], operator.add]

    def researcher(state: State) -> dict[str, list[str]]:
        return {"answers": [str(chat.invoke("research").content)]}

    def critic(state: State) -> dict[str, list[str]]:
        return {"answers": [str(chat.invoke("criticise").content)]}

    builder = StateGraph(State)
    builder.add_node("researcher", researcher)
    builder.add_node("critic", critic)
    builder.add_edge(START, "researcher")
    builder.add_edge(START, "critic")
    builder.add_edge("researcher", END)
    builder.add_edge("critic", END)
    result = builder.compile().invoke({"answers": []})
    assert result["answers"] == ["an answer", "an answer"]
    assert llm.usage().used[0][2] == 2
