"""LimitMiddleware in a real LangChain v1 agent, its model (ChatOpenAI) on the stand-in provider."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from langchain.agents import create_agent
from langchain_openai import ChatOpenAI

from agentdiff_coordination import limit
from agentdiff_coordination.integrations.langchain import LimitMiddleware, LimitRateLimiter
from agentdiff_coordination.stand_in_provider import StandInProvider

ASK = {"messages": [{"role": "user", "content": "What is the capital of France? Answer briefly."}]}


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    with StandInProvider(reply_tokens=6) as p:
        yield p


def model(provider: StandInProvider, **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(model="m", api_key="t", base_url=provider.openai_url, max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_each_model_call_is_admitted_and_charged_its_usage(backend: str, provider: StandInProvider) -> None:
    llm = limit("llm", rate="10000/min", requests="100/min")
    agent = create_agent(model(provider, max_tokens=400), tools=[], middleware=[LimitMiddleware("llm")])
    for _ in range(2):
        agent.invoke(ASK)
    tokens, requests = (u for _, _, u in llm.usage().used)
    assert (tokens, requests) == (provider.stats().tokens, 2)


def test_async_agents_are_admitted_without_blocking_the_loop(provider: StandInProvider) -> None:
    llm = limit("llm", rate="10000/min", requests="100/min")
    agent = create_agent(model(provider, max_tokens=400), tools=[], middleware=[LimitMiddleware("llm")])

    async def main() -> None:
        await asyncio.gather(*(agent.ainvoke(ASK) for _ in range(3)))

    asyncio.run(main())
    tokens, requests = (u for _, _, u in llm.usage().used)
    assert (tokens, requests) == (provider.stats().tokens, 3)


def test_a_provider_429_backs_the_limit_off() -> None:
    limit("llm", requests="100/min")  # declared too high: only the provider's 429 holds it
    with StandInProvider(rpm=1, minute=1.0) as provider:
        agent = create_agent(model(provider), tools=[], middleware=[LimitMiddleware("llm")])
        agent.invoke(ASK)
        with pytest.raises(openai.RateLimitError):
            agent.invoke(ASK)
        agent.invoke(ASK)  # waits out the backoff, so the provider accepts it
        stats = provider.stats()
    assert (stats.requests, stats.rejected) == (2, 1)


def test_an_estimate_callable_sees_the_model_request(provider: StandInProvider) -> None:
    llm = limit("llm", rate="10000/min")
    seen: list[int] = []

    def estimate(request: object) -> int:
        seen.append(len(request.messages))  # type: ignore[attr-defined]
        return 50

    agent = create_agent(model(provider), tools=[], middleware=[LimitMiddleware("llm", estimate=estimate)])
    agent.invoke(ASK)
    assert seen == [1] and llm.usage().used[0][2] == provider.stats().tokens


def test_the_rate_limiter_and_the_middleware_live_side_by_side() -> None:
    assert LimitRateLimiter.__name__ == "LimitRateLimiter"
    assert repr(LimitMiddleware("llm")) == "LimitMiddleware('llm')"
    with pytest.raises(ValueError, match="limit name"):
        LimitMiddleware("")
    with pytest.raises(TypeError, match="estimate"):
        LimitMiddleware("llm", estimate="lots")  # type: ignore[arg-type]
