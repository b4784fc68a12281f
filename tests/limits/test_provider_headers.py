"""Reading what a provider says about its rate limits: OpenAI's and Anthropic's headers."""

from __future__ import annotations

import logging

import pytest

from agentdiff_coordination.core.provider_headers import DimensionReport, ProviderReport, parse_duration, parse_headers

NOW = 1_750_000_000.0  # a fixed wall-clock time: 2025-06-15T15:06:40Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0), ("2.5", 2.5), ("150us", 0.00015)],
)
def test_durations_in_go_form_are_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "-1s", "s", "1s2", "nan", "inf"])
def test_a_malformed_duration_is_a_value_error_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_openai_headers_give_requests_and_tokens() -> None:
    report = parse_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-remaining-tokens": "29100",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-reset-tokens": "1m48s",
            "content-type": "application/json",
        },
        now=NOW,
    )
    assert report == ProviderReport(
        (DimensionReport("requests", 500, 499, 0.12), DimensionReport("tokens", 30000, 29100, 108.0)), None, "openai"
    )


def test_header_names_are_matched_whatever_their_case() -> None:
    report = parse_headers({"X-RateLimit-Remaining-Tokens": "7", "X-RateLimit-Reset-Tokens": "2s", "Retry-After": "3"})
    assert report.get("tokens") == DimensionReport("tokens", None, 7, 2.0)
    assert report.retry_after == 3.0


def test_anthropic_headers_give_four_dimensions_with_rfc3339_resets() -> None:
    report = parse_headers(
        [
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2025-06-15T15:06:41Z"),
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "39000"),
            ("anthropic-ratelimit-input-tokens-reset", "2025-06-15T15:06:50.5+00:00"),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("anthropic-ratelimit-output-tokens-remaining", "7900"),
            ("anthropic-ratelimit-output-tokens-reset", "2025-06-15T17:06:43+02:00"),
            ("anthropic-ratelimit-tokens-limit", "48000"),
            ("anthropic-ratelimit-tokens-remaining", "46900"),
            ("anthropic-ratelimit-tokens-reset", "2025-06-15T15:06:39Z"),  # already passed: 0
        ],
        now=NOW,
    )
    assert report.vendor == "anthropic"
    assert report.get("requests") == DimensionReport("requests", 50, 49, 1.0)
    assert report.get("input_tokens") == DimensionReport("input_tokens", 40000, 39000, pytest.approx(10.5))
    assert report.get("output_tokens") == DimensionReport("output_tokens", 8000, 7900, 3.0)
    assert report.get("tokens") == DimensionReport("tokens", 48000, 46900, 0.0)


def test_retry_after_is_seconds_or_an_http_date_and_retry_after_ms_wins() -> None:
    assert parse_headers({"retry-after": "20"}).retry_after == 20.0
    assert parse_headers({"retry-after": "Sun, 15 Jun 2025 15:06:45 GMT"}, now=NOW).retry_after == 5.0
    assert parse_headers({"retry-after": "Sun, 15 Jun 2025 15:06:00 GMT"}, now=NOW).retry_after == 0.0
    assert parse_headers({"retry-after": "2", "retry-after-ms": "1500"}).retry_after == 1.5
    assert parse_headers({"retry-after-ms": "250", "retry-after": "2"}).retry_after == 0.25


def test_bytes_headers_are_read_too() -> None:
    report = parse_headers([(b"x-ratelimit-remaining-requests", b"3"), (b"x-ratelimit-reset-requests", b"1s")])
    assert report.get("requests") == DimensionReport("requests", None, 3, 1.0)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-remaining-tokens": "many"},
        {"x-ratelimit-remaining-tokens": "-4"},
        {"x-ratelimit-reset-tokens": "later"},
        {"anthropic-ratelimit-tokens-reset": "tomorrow"},
        {"anthropic-ratelimit-tokens-reset": "2025-06-15T15:06:41"},  # no offset
        {"anthropic-ratelimit-requests-limit": "1e9"},
        {"retry-after": "whenever"},
        {"retry-after": "-3"},
        {"retry-after-ms": ""},
    ],
)
def test_a_bad_value_is_ignored_with_a_debug_log(headers: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="agentdiff_coordination"):
        report = parse_headers(headers)
    assert not report
    assert any("ignoring" in r.getMessage() for r in caplog.records)


def test_what_is_not_headers_never_raises() -> None:
    assert parse_headers(42) == ProviderReport()  # type: ignore[arg-type]
    assert parse_headers({}) == ProviderReport()
    assert parse_headers({"content-type": "text/plain"}) == ProviderReport()


def test_good_values_survive_next_to_bad_ones() -> None:
    report = parse_headers({"x-ratelimit-remaining-tokens": "oops", "x-ratelimit-reset-tokens": "3s", "x-ratelimit-limit-tokens": "100"})
    assert report.get("tokens") == DimensionReport("tokens", 100, None, 3.0)
