"""An offline ``Model`` for the OpenAI Agents SDK: scripted responses, tool calls, usage, streaming.

``ScriptedModel(turns)`` answers each model call with the next scripted turn: a text
(the final output), ``call("tool", {...})`` items (tool calls, several at once for
parallel calls) or ``handoff_to("agent")``. Every response states its usage, so limits
can count tokens. Streaming yields the SDK's Responses events, ending with
``response.completed``. No network, no API key; tracing is switched off.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import agents
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails, ResponseUsage

agents.set_tracing_disabled(True)

ENTRY_POINT = "openai_agents = agentdiff_coordination.adapters.openai_agents"
_ids = itertools.count(1)


def install_entry_point(root: Path) -> Path:
    """A ``*.dist-info`` under ``root`` registering the adapter as a third party does (as pip would)."""
    dist = root / "agentdiff_openai_agents_plugin-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: agentdiff-openai-agents-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[agentdiff_coordination]\n{ENTRY_POINT}\n")
    return root


def call(name: str, arguments: dict[str, Any] | None = None) -> ResponseFunctionToolCall:
    n = next(_ids)
    return ResponseFunctionToolCall(
        type="function_call", name=name, arguments=json.dumps(arguments or {}), call_id=f"call_{n}", id=f"fc_{n}",
        status="completed",
    )


def handoff_to(agent_name: str) -> ResponseFunctionToolCall:
    return call(f"transfer_to_{agent_name.lower().replace(' ', '_')}")


def message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{next(_ids)}", type="message", role="assistant", status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


Turn = str | list[Any]


def _output(turn: Turn) -> list[Any]:
    return [message(turn)] if isinstance(turn, str) else list(turn)


class ScriptedModel(Model):
    """Answers each call with the next scripted turn; ``tokens`` per response; counts calls."""

    def __init__(self, turns: list[Turn], tokens: int = 30, repeat: bool = False) -> None:
        self.turns = list(turns)
        self.tokens = tokens
        self.repeat = repeat
        self.calls = 0
        self._mutex = threading.Lock()
        self.before_answer: Any = None  # an async callable awaited inside each call

    def _next(self) -> Turn:
        with self._mutex:
            self.calls += 1
            if self.repeat:
                return self.turns[(self.calls - 1) % len(self.turns)]
            if not self.turns:
                raise AssertionError("the scripted model ran out of turns")
            return self.turns.pop(0)

    def _usage(self) -> Usage:
        return Usage(requests=1, input_tokens=self.tokens - 10, output_tokens=10, total_tokens=self.tokens)

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        turn = self._next()
        if self.before_answer is not None:
            await self.before_answer()
        return ModelResponse(output=_output(turn), usage=self._usage(), response_id=None)

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        turn = self._next()
        if self.before_answer is not None:
            await self.before_answer()
        output = _output(turn)
        response = Response(
            id=f"resp_{next(_ids)}", created_at=0, model="scripted", object="response", output=[],
            tool_choice="auto", tools=[], parallel_tool_calls=True,
        )
        yield ResponseCreatedEvent(type="response.created", response=response, sequence_number=0)
        seq = 1
        for item in output:
            if isinstance(item, ResponseOutputMessage):
                for word in item.content[0].text.split(" "):
                    yield ResponseTextDeltaEvent(
                        type="response.output_text.delta", delta=word, item_id=item.id, output_index=0,
                        content_index=0, sequence_number=seq, logprobs=[],
                    )
                    seq += 1
        done = response.model_copy(update={
            "output": output,
            "usage": ResponseUsage(
                input_tokens=self.tokens - 10, output_tokens=10, total_tokens=self.tokens,
                input_tokens_details=InputTokensDetails.model_construct(cached_tokens=0, cache_write_tokens=0),
                output_tokens_details=OutputTokensDetails.model_construct(reasoning_tokens=0),
            ),
        })
        yield ResponseCompletedEvent(type="response.completed", response=done, sequence_number=seq)


def entry_point_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "openai_agents" for ep in entry_points(group="agentdiff_coordination"))


__all__ = ["ScriptedModel", "call", "handoff_to", "install_entry_point", "message", "entry_point_installed", "sys"]
