"""The OpenAI Agents SDK with a tool cap and a shared token budget, offline.

    python examples/openai_agents_tools.py

1. The model asks for four weather look-ups at once (parallel tool calls). Bare, the
   four calls hit the weather API together; with ``coordinate(..., lock_name=...)`` on the
   tool they take turns, and each call emits ``lookup_started`` / ``lookup_complete``.
2. Three agents share one budget of 100 tokens per minute: ``coordinate(NAME,
   limit="tpm")`` on each agent makes every model call take the limit and report the
   tokens its response states; the third agent's run waits, here at most 0.2 s, and
   then gets a ``CoordinationTimeoutError``.

The SDK is real; the model is a scripted stand-in (the SDK's ``Model`` interface).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from typing import Any

import agents
from agents import Agent, Runner, function_tool
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from agentdiff_coordination import CoordinationTimeoutError, coordinate, drain, limit, when

agents.set_tracing_disabled(True)
ids = itertools.count(1)


class ScriptedModel(Model):
    """Answers with the scripted turns in order: a list of tool calls, or a final text."""

    def __init__(self, *turns: Any, tokens: int = 40) -> None:
        self.turns, self.tokens = list(turns), tokens

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        turn = self.turns.pop(0)
        if isinstance(turn, str):
            output: list[Any] = [ResponseOutputMessage(
                id=f"m{next(ids)}", type="message", role="assistant", status="completed",
                content=[ResponseOutputText(type="output_text", text=turn, annotations=[])])]
        else:
            output = [ResponseFunctionToolCall(type="function_call", name=name, arguments=json.dumps(arguments),
                                               call_id=f"c{next(ids)}", id=f"f{next(ids)}", status="completed")
                      for name, arguments in turn]
        usage = Usage(requests=1, input_tokens=self.tokens - 10, output_tokens=10, total_tokens=self.tokens)
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("this example does not stream")


class WeatherAPI:
    """Counts how many look-ups are in flight at once."""

    def __init__(self) -> None:
        self.mutex, self.inside, self.peak = threading.Lock(), 0, 0

    async def get(self, city: str) -> str:
        with self.mutex:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        await asyncio.sleep(0.05)
        with self.mutex:
            self.inside -= 1
        return f"sunny in {city}"


def weather_tool(api: WeatherAPI) -> Any:
    @function_tool
    async def lookup(city: str) -> str:
        """Look up today's weather in a city."""
        return await api.get(city)

    return lookup


def run_with(tool: Any) -> str:
    cities = ["Oslo", "Rome", "Lima", "Pune"]
    model = ScriptedModel([("lookup", {"city": c}) for c in cities], "All four are sunny.")
    return str(Runner.run_sync(Agent(name="forecaster", model=model, tools=[tool]), "weather?").final_output)


def main() -> None:
    bare_api, capped_api = WeatherAPI(), WeatherAPI()
    done: list[str] = []
    when("lookup_complete")(lambda data: done.append(data["result"]))

    run_with(weather_tool(bare_api))
    answer = run_with(coordinate("lookup", lock_name="weather_api")(weather_tool(capped_api)))
    drain()
    print(f"bare tool: {bare_api.peak} look-ups at once")
    print(f"coordinated tool: {capped_api.peak} look-up at once; {len(done)} lookup_complete events; {answer!r}")

    limit("tpm", rate="100/min")
    fleet = [coordinate(f"agent{i}", limit="tpm", timeout=0.2)(
        Agent(name=f"agent{i}", model=ScriptedModel("done", tokens=40))) for i in range(3)]
    spent = []
    for agent in fleet:
        try:
            Runner.run_sync(agent, "go")
            spent.append(40)
        except CoordinationTimeoutError as exc:
            print(f"{agent.name}: waits for the shared budget ({exc})")
    print(f"tokens spent this minute by the fleet: {sum(spent)} of 100")
    ok = bare_api.peak > 1 and capped_api.peak == 1 and len(done) == 4 and sum(spent) == 80
    print("all checks passed" if ok else "CHECKS FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
