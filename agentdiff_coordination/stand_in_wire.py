"""What the stand-in provider says on the wire: its answers in OpenAI's and Anthropic's
formats (plain and streamed, with usage) and its rate-limit headers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

__all__ = ["answer", "limit_headers", "openai_duration", "reply_text", "rfc3339", "stream_events"]


def openai_duration(seconds: float) -> str:
    """A duration as OpenAI writes it: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


def rfc3339(epoch: float) -> str:
    """An RFC 3339 time in UTC with milliseconds, as Anthropic's reset headers give it."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reply_text(tokens: int) -> str:
    return ("word " * tokens)[: tokens * 4]


def limit_headers(kind: str, state: dict[str, tuple[int, int, float]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if kind == "messages":
        now = time.time()
        for name, (limit, remaining, reset) in state.items():
            stem = "anthropic-ratelimit-" + name.replace("_", "-")
            headers[f"{stem}-limit"] = str(limit)
            headers[f"{stem}-remaining"] = str(remaining)
            headers[f"{stem}-reset"] = rfc3339(now + reset)
        return headers
    for name in ("requests", "tokens"):
        if name in state:
            limit, remaining, reset = state[name]
            headers[f"x-ratelimit-limit-{name}"] = str(limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = openai_duration(reset)
    return headers


def answer(kind: str, model: str, body: dict[str, Any], input_tokens: int, output_tokens: int) -> dict[str, Any]:
    text = reply_text(output_tokens)
    created = int(time.time())
    if kind == "chat":
        return {
            "id": "chatcmpl-standin", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens},
        }
    if kind == "responses":
        return response_object(model, text, input_tokens, output_tokens, created)
    if kind == "embeddings":
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        return {
            "object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": [0.0, 0.5, 1.0]} for i in range(count)],
            "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
        }
    return {
        "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def response_object(model: str, text: str, input_tokens: int, output_tokens: int, created: int, status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": "resp_standin", "object": "response", "created_at": created, "model": model, "status": status,
        "output": [{"type": "message", "id": "msg_standin", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}] if done else [],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}} if done else None,
    }


def stream_events(kind: str, model: str, body: dict[str, Any], input_tokens: int, output_tokens: int, pause: float) -> Iterator[tuple[str | None, str, float]]:
    """(event name or None, data, pause before it) of a streamed answer."""
    words = [w + " " for w in reply_text(output_tokens).split()] or [""]
    created = int(time.time())
    if kind == "chat":
        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return json.dumps({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        yield None, chunk({"role": "assistant", "content": ""}), 0.0
        for word in words:
            yield None, chunk({"content": word}), pause
        yield None, chunk({}, "stop"), 0.0
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}
            yield None, json.dumps({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": created,
                                    "model": model, "choices": [], "usage": usage}), 0.0
        yield None, "[DONE]", 0.0
    elif kind == "responses":
        text = "".join(words)
        seq = iter(range(1_000_000))
        start = response_object(model, "", input_tokens, output_tokens, created, "in_progress")
        yield "response.created", json.dumps({"type": "response.created", "sequence_number": next(seq), "response": start}), 0.0
        item = {"type": "message", "id": "msg_standin", "role": "assistant", "status": "in_progress", "content": []}
        part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
        at = {"item_id": "msg_standin", "output_index": 0}
        for name, data in (("output_item.added", {"output_index": 0, "item": item}),
                           ("content_part.added", {**at, "content_index": 0, "part": part})):
            yield f"response.{name}", json.dumps({"type": f"response.{name}", "sequence_number": next(seq), **data}), 0.0
        for word in words:
            yield "response.output_text.delta", json.dumps({"type": "response.output_text.delta", "sequence_number": next(seq),
                                                            **at, "content_index": 0, "delta": word, "logprobs": []}), pause
        done = response_object(model, text, input_tokens, output_tokens, created)
        part = {**part, "text": text}
        for name, data in (("output_text.done", {**at, "content_index": 0, "text": text, "logprobs": []}),
                           ("content_part.done", {**at, "content_index": 0, "part": part}),
                           ("output_item.done", {"output_index": 0, "item": done["output"][0]})):
            yield f"response.{name}", json.dumps({"type": f"response.{name}", "sequence_number": next(seq), **data}), 0.0
        yield "response.completed", json.dumps({"type": "response.completed", "sequence_number": next(seq), "response": done}), 0.0
    else:
        message: dict[str, Any] = {"id": "msg_standin", "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}
        yield "message_start", json.dumps({"type": "message_start", "message": message}), 0.0
        yield "content_block_start", json.dumps({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}), 0.0
        for word in words:
            yield "content_block_delta", json.dumps({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}), pause
        yield "content_block_stop", json.dumps({"type": "content_block_stop", "index": 0}), 0.0
        yield "message_delta", json.dumps({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                           "usage": {"output_tokens": output_tokens}}), 0.0
        yield "message_stop", json.dumps({"type": "message_stop"}), 0.0
