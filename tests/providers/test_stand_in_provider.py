"""The stand-in provider speaks to the real SDKs and enforces its own limits."""

from __future__ import annotations

from datetime import datetime

import anthropic
import openai
import pytest

from agentdiff_coordination.stand_in_provider import StandInProvider, openai_duration

HI = [{"role": "user", "content": "hello there, stand-in"}]


def test_openai_answers_carry_the_rate_limit_headers() -> None:
    with StandInProvider(rpm=5, tpm=1000, minute=60) as provider:
        client = openai.OpenAI(api_key="test", base_url=provider.openai_url, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="m", messages=HI, max_tokens=4)
        assert raw.parse().usage is not None and raw.parse().usage.completion_tokens == 4
        assert raw.headers["x-ratelimit-limit-requests"] == "5"
        assert raw.headers["x-ratelimit-remaining-requests"] == "4"
        assert raw.headers["x-ratelimit-remaining-tokens"] == str(1000 - raw.parse().usage.total_tokens)
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")


def test_anthropic_answers_carry_its_rate_limit_headers_with_rfc3339_resets() -> None:
    with StandInProvider(rpm=5, input_tpm=1000, output_tpm=500) as provider:
        client = anthropic.Anthropic(api_key="test", base_url=provider.url, max_retries=0)
        raw = client.messages.with_raw_response.create(model="c", max_tokens=3, messages=HI)
        assert raw.parse().usage.output_tokens == 3
        assert raw.headers["anthropic-ratelimit-output-tokens-remaining"] == "497"
        assert raw.headers["anthropic-ratelimit-input-tokens-limit"] == "1000"
        datetime.fromisoformat(raw.headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))


def test_past_its_limit_it_answers_429_with_retry_after_and_counts_it() -> None:
    with StandInProvider(rpm=2, minute=60) as provider:
        client = openai.OpenAI(api_key="test", base_url=provider.openai_url, max_retries=0)
        for _ in range(2):
            client.embeddings.create(model="e", input="some text")
        with pytest.raises(openai.RateLimitError) as caught:
            client.embeddings.create(model="e", input="some text")
        assert 0 < float(caught.value.response.headers["retry-after"]) <= 60
        assert int(caught.value.response.headers["retry-after-ms"]) <= 60_000
        stats = provider.stats()
        assert (stats.requests, stats.rejected, stats.peak_requests) == (2, 1, 2)


def test_its_window_slides_on_its_own_time_scale() -> None:
    with StandInProvider(rpm=1, minute=0.3) as provider:
        client = anthropic.Anthropic(api_key="test", base_url=provider.url, max_retries=3)
        for _ in range(3):  # each waits for retry-after, then fits in a fresh window
            client.messages.create(model="c", max_tokens=2, messages=HI)
        stats = provider.stats()
        assert stats.requests == 3 and stats.peak_requests == 1


def test_streams_end_with_the_usage() -> None:
    with StandInProvider() as provider:
        client = openai.OpenAI(api_key="test", base_url=provider.openai_url)
        chunks = list(client.chat.completions.create(model="m", messages=HI, max_tokens=5, stream=True, stream_options={"include_usage": True}))
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
        with client.responses.stream(model="m", input="hello", max_output_tokens=6) as stream:
            final = stream.get_final_response()
        assert final.usage is not None and final.usage.output_tokens == 6
        messages = anthropic.Anthropic(api_key="test", base_url=provider.url)
        with messages.messages.stream(model="c", max_tokens=7, messages=HI) as mstream:
            assert mstream.get_final_message().usage.output_tokens == 7


def test_durations_are_written_the_way_openai_writes_them() -> None:
    assert [openai_duration(s) for s in (0.02, 1, 1.5, 360)] == ["20ms", "1s", "1.5s", "6m0s"]


def test_bad_limits_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="rpm"):
        StandInProvider(rpm=0)
    with pytest.raises(ValueError, match="minute"):
        StandInProvider(minute=0)
