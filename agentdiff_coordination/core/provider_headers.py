"""What an LLM provider says about its rate limits, read from its response headers.

``parse_headers(headers)`` reads OpenAI's and Anthropic's rate-limit headers into a
``ProviderReport``: per dimension (``requests``, ``tokens``, ``input_tokens``,
``output_tokens``) the provider's limit, what remains and when it resets (seconds
from now), and a ``retry_after`` in seconds.

- OpenAI: ``x-ratelimit-limit-{requests,tokens}``, ``x-ratelimit-remaining-{requests,tokens}``,
  ``x-ratelimit-reset-{requests,tokens}`` (durations such as ``1s``, ``6m0s``, ``20ms``,
  ``1h2m3.5s``), ``retry-after-ms`` and ``retry-after``.
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
  (the reset an RFC 3339 time) and ``retry-after``.

``retry-after`` is seconds or an HTTP date; ``retry-after-ms`` wins when both are given.
Header names are matched whatever their case. A value that cannot be read is left
out with a debug log: reading headers never raises into the caller. Pure: no I/O, the
wall clock is a parameter.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["DimensionReport", "ProviderReport", "parse_duration", "parse_headers"]

logger = logging.getLogger("agentdiff_coordination")

_DIMENSIONS = {"requests": "requests", "tokens": "tokens", "input-tokens": "input_tokens", "output-tokens": "output_tokens"}
_OPENAI = re.compile(r"^x-ratelimit-(limit|remaining|reset)-(requests|tokens)$")
_ANTHROPIC = re.compile(r"^anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-(limit|remaining|reset)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class DimensionReport:
    """What the provider said about one dimension; None where it said nothing (readable)."""

    dimension: str
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # seconds from when the headers were read until the provider's reset


@dataclass(frozen=True)
class ProviderReport:
    """Everything the provider's headers said about its rate limits."""

    dimensions: tuple[DimensionReport, ...] = ()
    retry_after: float | None = None  # seconds
    vendor: str | None = None  # "openai" or "anthropic", as the headers' names tell

    def get(self, dimension: str) -> DimensionReport | None:
        """The report of ``dimension`` (``"tokens"``, ...), None when the headers had none."""
        return next((d for d in self.dimensions if d.dimension == dimension), None)

    def __bool__(self) -> bool:
        return bool(self.dimensions) or self.retry_after is not None


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``) or a
    plain number of seconds; ``ValueError`` naming the text otherwise."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(value) or not value:
            raise ValueError(f"not a duration: {text!r}") from None
    if not seconds >= 0 or seconds == float("inf"):  # negative, NaN or infinite
        raise ValueError(f"not a duration: {text!r}")
    return seconds


def _count(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError(f"negative count {text!r}")
    return value


def _rfc3339(text: str, now: float) -> float:
    """Seconds from ``now`` until an RFC 3339 time (0 when it has passed)."""
    value = text.strip()
    if value[-1:] in ("z", "Z"):
        value = value[:-1] + "+00:00"
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"an RFC 3339 time needs its offset: {text!r}")
    return max(at.timestamp() - now, 0.0)


def _retry_after(text: str, now: float) -> float:
    """``retry-after``: seconds, or an HTTP date (seconds from ``now``, 0 when passed)."""
    try:
        seconds = float(text.strip())
    except ValueError:
        return max(parsedate_to_datetime(text.strip()).timestamp() - now, 0.0)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"not a number of seconds: {text!r}")
    return seconds


def _items(headers: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(headers, Mapping) or hasattr(headers, "items"):
        items: Iterable[tuple[Any, Any]] = headers.items()
        return items
    return list(headers)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def parse_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]], now: float | None = None) -> ProviderReport:
    """Read the rate-limit headers of one response (a mapping, or name/value pairs).

    ``now`` is the wall-clock time the response was received (``time.time()`` by
    default), from which the absolute times of Anthropic and HTTP dates are counted.
    Unknown headers are ignored; unreadable values are left out with a debug log.
    """
    now = time.time() if now is None else now
    fields: dict[str, dict[str, Any]] = {}
    retry_s: float | None = None
    retry_ms: float | None = None
    vendor: str | None = None
    try:
        items = list(_items(headers))
    except Exception:
        logger.debug("provider headers: cannot read %r as headers", headers)
        return ProviderReport()
    for raw_name, raw_value in items:
        try:
            name, value = _text(raw_name).strip().lower(), _text(raw_value)
        except Exception:
            continue
        try:
            if name == "retry-after":
                retry_s = _retry_after(value, now)
            elif name == "retry-after-ms":
                retry_ms = parse_duration(value) / 1000.0
            elif (m := _OPENAI.match(name)) is not None:
                vendor = vendor or "openai"
                kind, dim = m.group(1), m.group(2)
                reading = parse_duration(value) if kind == "reset" else _count(value)
                fields.setdefault(dim, {})[kind] = reading
            elif (m := _ANTHROPIC.match(name)) is not None:
                vendor = vendor or "anthropic"
                dim, kind = _DIMENSIONS[m.group(1)], m.group(2)
                reading = _rfc3339(value, now) if kind == "reset" else _count(value)
                fields.setdefault(dim, {})[kind] = reading
        except (ValueError, TypeError, OverflowError, IndexError) as exc:
            logger.debug("provider headers: ignoring %s: %r (%s)", name, value, exc)
    dimensions = tuple(
        DimensionReport(dim, said.get("limit"), said.get("remaining"), said.get("reset"))
        for dim in ("requests", "tokens", "input_tokens", "output_tokens")
        if (said := fields.get(dim))
    )
    return ProviderReport(dimensions, retry_ms if retry_ms is not None else retry_s, vendor)
