"""limit_client with the real OpenAI and Anthropic SDKs against the stand-in provider."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import anthropic
import openai
import pytest

from agentdiff_coordination import limit
from agentdiff_coordination.core.limits import Rate
from agentdiff_coordination.integrations.anthropic import limit_client as limit_anthropic
from agentdiff_coordination.integrations.openai import limit_client
from agentdiff_coordination.stand_in_provider import StandInProvider

HI = [{"role": "user", "content": "hello there, stand-in"}]


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    with StandInProvider(reply_tokens=8) as p:
        yield p


def used(name: str) -> tuple[int, int]:
    """(tokens, requests) the limit counts now (declared as rate=, requests=)."""
    tokens, requests = (u for _, _, u in limit(name).usage().used)
    return tokens, requests


def test_the_wrapped_client_is_of_the_same_type(provider: StandInProvider) -> None:
    limit("api", requests="100/min")
    for client in (openai.OpenAI(api_key="t", base_url=provider.openai_url), openai.AsyncOpenAI(api_key="t", base_url=provider.openai_url)):
        assert type(limit_client(client, "api")) is type(client)
    for other in (anthropic.Anthropic(api_key="t", base_url=provider.url), anthropic.AsyncAnthropic(api_key="t", base_url=provider.url)):
        assert type(limit_anthropic(other, "api")) is type(other)


def test_each_call_is_admitted_and_charged_the_usage_the_answer_states(backend: str, provider: StandInProvider) -> None:
    limit("api", rate="10000/min", requests="100/min")
    client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url), "api")
    client.chat.completions.create(model="m", messages=HI, max_tokens=500)  # estimated 6 + 500, used 6 + 8
    client.responses.create(model="m", input="hello there", max_output_tokens=3)
    client.embeddings.create(model="e", input=["one text", "another text"])
    assert used("api") == (provider.stats().tokens, 3)


def test_streams_report_their_usage_when_they_end(provider: StandInProvider) -> None:
    limit("api", rate="10000/min", requests="100/min")
    client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url), "api")
    for _ in client.chat.completions.create(model="m", messages=HI, max_tokens=900, stream=True, stream_options={"include_usage": True}):
        pass
    with client.responses.stream(model="m", input="hello", max_output_tokens=900) as stream:
        stream.until_done()
    assert used("api") == (provider.stats().tokens, 2)


def test_a_stream_without_usage_keeps_its_estimate(provider: StandInProvider) -> None:
    limit("api", rate="10000/min")
    client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url), "api")
    for _ in client.chat.completions.create(model="m", messages=HI, max_tokens=900, stream=True):
        pass
    assert limit("api").usage().used[0][2] == 6 + 900


def test_async_clients_and_streams_report_too(backend: str, provider: StandInProvider) -> None:
    limit("api", rate="10000/min", requests="100/min")
    oa = limit_client(openai.AsyncOpenAI(api_key="t", base_url=provider.openai_url), "api")
    an = limit_anthropic(anthropic.AsyncAnthropic(api_key="t", base_url=provider.url), "api")

    async def main() -> None:
        await asyncio.gather(
            oa.chat.completions.create(model="m", messages=HI, max_tokens=100),
            an.messages.create(model="c", max_tokens=100, messages=HI),
            oa.embeddings.create(model="e", input="a text"),
        )
        async with an.messages.stream(model="c", max_tokens=100, messages=HI) as stream:
            async for _ in stream.text_stream:
                pass
        async for _ in await oa.responses.create(model="m", input="hi", max_output_tokens=100, stream=True):
            pass

    asyncio.run(main())
    assert used("api") == (provider.stats().tokens, 5)


def test_anthropic_sync_messages_and_streams_are_charged_their_usage(provider: StandInProvider) -> None:
    limit("api", rate="10000/min", requests="100/min")
    client = limit_anthropic(anthropic.Anthropic(api_key="t", base_url=provider.url), "api")
    client.messages.create(model="c", max_tokens=300, system="be brief", messages=HI)
    with client.messages.stream(model="c", max_tokens=300, messages=HI) as stream:
        for _ in stream.text_stream:
            pass
    assert used("api") == (provider.stats().tokens, 2)


def test_threads_sharing_a_limit_never_exceed_the_providers() -> None:
    # the period a little longer than the provider's: a request reaches it a little after its admission
    limit("api", requests=Rate(12, 1.1))
    strict = StandInProvider(rpm=12, minute=1.0, latency=0.005)
    with strict:
        client = limit_client(openai.OpenAI(api_key="t", base_url=strict.openai_url, max_retries=0), "api")
        threads = [threading.Thread(target=lambda: [client.embeddings.create(model="e", input="x") for _ in range(6)]) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = strict.stats()
    assert stats.requests == 36 and stats.rejected == 0  # every request fitted: none refused


def test_a_429_backs_the_limit_off_before_the_next_request() -> None:
    limit("api", requests="100/min")  # declared too high: only the provider's answer can hold it
    with StandInProvider(rpm=1, minute=1.0) as provider:
        outsider = openai.OpenAI(api_key="t", base_url=provider.openai_url, max_retries=0)
        outsider.embeddings.create(model="e", input="x")  # someone outside the fleet took the minute's request
        client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url, max_retries=0), "api")
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="e", input="x")
        assert limit("api").usage().backoff > 0  # every process sharing the limit waits now
        client.embeddings.create(model="e", input="x")  # waits out the backoff, so it fits
        stats = provider.stats()
    assert (stats.requests, stats.rejected) == (2, 1)


def test_the_providers_headers_keep_the_limit_under_its_word_without_a_429() -> None:
    limit("api", requests="100/min")  # declared too high: the remaining-requests header corrects it
    with StandInProvider(rpm=1, minute=1.0) as provider:
        client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url, max_retries=0), "api")
        for _ in range(3):
            client.embeddings.create(model="e", input="x")  # each waits for the reset the last answer named
        stats = provider.stats()
    assert (stats.requests, stats.rejected) == (3, 0)


def test_the_sdks_own_retry_waits_for_the_limit_too() -> None:
    limit("api", requests="100/min")
    with StandInProvider(rpm=1, minute=0.5) as provider:
        client = limit_anthropic(anthropic.Anthropic(api_key="t", base_url=provider.url, max_retries=2), "api")
        for _ in range(3):
            client.messages.create(model="c", max_tokens=2, messages=HI)
        stats = provider.stats()
    assert stats.requests == 3 and stats.rejected <= 2  # one per episode at most


def test_a_callable_or_a_number_replaces_the_estimate(provider: StandInProvider) -> None:
    limit("api", rate="10000/min")
    seen = []

    def estimate(body: dict[str, object]) -> dict[str, int]:
        seen.append(body["model"])
        return {"input_tokens": 40, "output_tokens": 2}

    client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url), "api", estimate=estimate)
    for _ in client.chat.completions.create(model="m", messages=HI, stream=True):  # no usage: the estimate stays
        pass
    fixed = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url), "api", estimate=7)
    for _ in fixed.chat.completions.create(model="m", messages=HI, stream=True):
        pass
    assert seen == ["m"] and limit("api").usage().used[0][2] == 42 + 7


def test_requests_that_are_not_model_calls_pass_through(provider: StandInProvider) -> None:
    limit("api", requests="100/min")
    client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url, max_retries=0), "api")
    with pytest.raises(openai.NotFoundError):
        client.models.list()
    assert limit("api").usage().used[0][2] == 0


def test_bad_arguments_are_refused_by_name(provider: StandInProvider) -> None:
    client = openai.OpenAI(api_key="t", base_url=provider.openai_url)
    with pytest.raises(TypeError, match="OpenAI"):
        limit_client(anthropic.Anthropic(api_key="t"), "api")
    with pytest.raises(ValueError, match="limit name"):
        limit_client(client, "")
    with pytest.raises(LookupError, match="'api' is not declared"):
        limit_client(client, "api")
    limit("api", requests="10/min")
    with pytest.raises(TypeError, match="estimate"):
        limit_client(client, "api", estimate=-1)


def test_an_estimate_larger_than_the_limit_waits_for_a_whole_window(provider: StandInProvider) -> None:
    limit("api", rate="100/min")
    client = limit_client(openai.OpenAI(api_key="t", base_url=provider.openai_url), "api")
    client.chat.completions.create(model="m", messages=HI, max_tokens=5000)  # the provider judges it
    assert provider.stats().requests == 1
    assert limit("api").usage().used[0][2] == provider.stats().tokens
