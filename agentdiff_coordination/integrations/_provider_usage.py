"""What a provider request costs and what its answer says: pure logic, no I/O.

Shared by the OpenAI and Anthropic client wrappers and the LangChain middleware:
which paths are model calls, the default estimate of a request (its text length / 4
for input, its ``max_tokens`` or twin for output), the usage an answer states (a JSON
body, or server-sent events read as they pass), and the wait a 429 asks for.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Union

__all__ = [
    "Estimate",
    "Tokens",
    "UsageReader",
    "check_estimate",
    "default_estimate",
    "estimate_of",
    "is_model_call",
    "retry_after",
    "text_length",
]

#: (input tokens, output tokens)
Tokens = tuple[int, int]
#: what ``estimate=`` accepts: a whole number of tokens, or a callable of the request
Estimate = Union[int, Callable[[Any], Union[int, Mapping[str, int]]], None]

_MODEL_PATHS = ("/chat/completions", "/responses", "/embeddings", "/messages")
_TEXT_KEYS = ("messages", "input", "system", "instructions", "prompt", "tools")
_MAX_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def is_model_call(method: str, path: str) -> bool:
    """Whether ``method path`` is a request the wrappers admit (a model call that spends tokens)."""
    return method == "POST" and path.rstrip("/").endswith(_MODEL_PATHS)


def text_length(value: object) -> int:
    """Characters of text in a request's messages (strings inside dicts and lists)."""
    if isinstance(value, str):
        return len(value)
    total = 0
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "role" and key != "type":
                total += len(item) if isinstance(item, str) else text_length(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            total += len(item) if isinstance(item, str) else text_length(item)
    return total


def default_estimate(body: Mapping[str, Any]) -> Tokens:
    """Input: the request's text length / 4 (rounded up); output: its ``max_tokens``,
    ``max_completion_tokens`` or ``max_output_tokens`` (0 when it gives none)."""
    chars = 0
    for key in _TEXT_KEYS:
        value = body.get(key)
        if value is not None:
            chars += text_length(value)
    output = 0
    for key in _MAX_KEYS:
        value = body.get(key)
        if type(value) is int:
            output = max(0, value)
            break
    return -(-chars // 4), output


def check_estimate(estimate: object, owner: str) -> Estimate:
    """``estimate=`` as given, or a clear error naming ``owner``."""
    if estimate is None or callable(estimate):
        return estimate
    if isinstance(estimate, bool) or not isinstance(estimate, int) or estimate < 0:
        raise TypeError(
            f"estimate of {owner} must be None, a whole number of tokens >= 0, or a callable "
            f"request -> {{'input_tokens': .., 'output_tokens': ..}}, not {estimate!r}"
        )
    return estimate


def estimate_of(estimate: Estimate, request: Any, default: Callable[[Any], Tokens]) -> Tokens:
    """The (input, output) tokens ``estimate`` gives for ``request`` (``default`` when None).

    A whole number counts as input tokens; a callable may return a whole number or a
    mapping with ``input_tokens`` and ``output_tokens`` (or ``tokens``).
    """
    if estimate is None:
        return default(request)
    given = estimate(request) if callable(estimate) else estimate
    if isinstance(given, int) and not isinstance(given, bool) and given >= 0:
        return given, 0
    if isinstance(given, Mapping):
        i, o = given.get("input_tokens", given.get("tokens", 0)), given.get("output_tokens", 0)
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (i, o)):
            return int(i), int(o)
    raise ValueError(
        f"estimate {estimate!r} gave {given!r} for a request: expected a whole number of tokens >= 0 "
        "or a mapping {'input_tokens': N, 'output_tokens': M}"
    )


def usage_tokens(usage: Mapping[str, Any]) -> Tokens | None:
    """(input, output) from a usage object of OpenAI (``prompt_tokens``/``completion_tokens``,
    ``input_tokens``/``output_tokens``) or Anthropic (cache writes count as input)."""
    def whole(key: str) -> int:
        v = usage.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    if not any(k in usage for k in ("input_tokens", "output_tokens", "prompt_tokens", "completion_tokens", "total_tokens")):
        return None
    i = whole("input_tokens") + whole("prompt_tokens") + whole("cache_creation_input_tokens")
    o = whole("output_tokens") + whole("completion_tokens")
    if not i and not o:
        i = whole("total_tokens")
    return i, o


class UsageReader:
    """Reads the usage an answer states from its bytes as they pass, without holding a stream.

    A JSON answer is kept whole (the SDK reads it whole too) and parsed at the end; a
    stream of server-sent events is read line by line, and only the lines that mention
    ``usage`` are parsed. Usage met several times (Anthropic's ``message_start`` then
    ``message_delta``) is merged, later values winning. Compressed answers (gzip,
    deflate) are decompressed here; another encoding is not read (``tokens()`` is None).
    """

    __slots__ = ("_sse", "_buffer", "_usage", "_decoder", "_readable")

    def __init__(self, content_type: str, content_encoding: str = "") -> None:
        self._sse = "text/event-stream" in content_type
        self._buffer = b""
        self._usage: dict[str, Any] = {}
        encoding = content_encoding.strip().lower()
        self._readable = encoding in ("", "identity", "gzip", "deflate")
        self._decoder: Any = zlib.decompressobj(47) if encoding in ("gzip", "deflate") else None

    def feed(self, chunk: bytes) -> None:
        if not self._readable or not chunk:
            return
        if self._decoder is not None:
            chunk = self._decoder.decompress(chunk)
        if not self._sse:
            self._buffer += chunk
            return
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                self._merge(json.loads(line[5:]))
            except ValueError:
                pass

    def _merge(self, payload: object) -> None:
        if not isinstance(payload, dict):
            return
        for holder in (payload, payload.get("response"), payload.get("message")):
            usage = holder.get("usage") if isinstance(holder, dict) else None
            if isinstance(usage, dict):
                self._usage.update({k: v for k, v in usage.items() if v is not None})

    def tokens(self) -> Tokens | None:
        """(input, output) tokens the answer stated so far, None when it stated none."""
        if self._buffer and self._readable:
            if self._sse:
                self._line(self._buffer)
            elif b'"usage"' in self._buffer:
                try:
                    self._merge(json.loads(self._buffer))
                except ValueError:
                    pass
            self._buffer = b""
        return usage_tokens(self._usage) if self._usage else None


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def retry_after(headers: Mapping[str, str], default: float = 1.0) -> float:
    """Seconds a 429 asks to wait: ``retry-after-ms``, else ``retry-after`` (seconds), else ``default``."""
    ms = _seconds(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    seconds = _seconds(headers.get("retry-after"))
    return seconds if seconds is not None else default
