"""What the OpenAI Agents SDK adapter adds to a trivial turn and a trivial tool call.

    python benchmarks/bench_openai_agents.py [--runs N] [--json]

The model is a scripted stand-in that answers at once, and the tools return at once,
so the figures compare the adapter's own cost with the cheapest possible SDK work: the
worst case. Measured, per ``Runner.run`` (one event loop, runs one after another):

- a trivial turn: one model call that returns the final text; bare, and with the agent
  coordinated (``coordinate("writer")(agent)``: events, no lock), with a lock, and with a
  lock and a rate limit (tokens reported);
- a trivial tool call: a run whose model asks for one tool call, then answers (two
  turns and one tool call); bare, and with the tool coordinated under a lock, for an
  async tool and for a sync one (which the SDK runs in a worker thread, and the adapter
  too, holding the lock there).

Whole runs on a shared machine spread by more than the adapter's cost, so the overhead
is measured on the coordinated layer alone: one model call (``get_response``) of the
coordinated model against the bare model, one invocation (``on_invoke_tool``) of the
coordinated tool against the bare tool; what the layer adds is divided by the bare
whole run (a trivial turn, a trivial tool-call run). No event has a listener. Times are
CPU time of this process (threads included), best of several repeats, the variants
taking turns; ratios compare figures of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

REPEATS = 7


Steps = dict[str, Callable[[], Coroutine[Any, Any, Any]]]


def _setup() -> tuple[Steps, Steps]:
    import agents
    from agents import Agent, Runner, function_tool
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from agentdiff_coordination import coordinate, limit
    from agentdiff_coordination.adapters.openai_agents import coordinated_agent, coordinated_tool

    agents.set_tracing_disabled(True)
    text = [ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                                  content=[ResponseOutputText(type="output_text", text="ok", annotations=[])])]

    class Answer(Model):
        """Answers with the final text, or first asks for one call of ``tool`` when given."""

        def __init__(self, tool: str | None = None) -> None:
            self.tool = tool
            self.asked = False

        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            usage = Usage(requests=1, input_tokens=10, output_tokens=5, total_tokens=15)
            if self.tool is not None and not self.asked:
                self.asked = True
                call = ResponseFunctionToolCall(type="function_call", name=self.tool, arguments="{}", call_id="c",
                                                id="f", status="completed")
                return ModelResponse(output=[call], usage=usage, response_id=None)
            self.asked = False
            return ModelResponse(output=list(text), usage=usage, response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    @function_tool
    async def ping_async() -> str:
        """Ping."""
        return "pong"

    @function_tool
    def ping_sync() -> str:
        """Ping."""
        return "pong"

    limit("bench_tpm", rate="1000000000/min")
    agent = Agent(name="writer", model=Answer())
    turn_agents = {
        "bare": agent,
        "coordinated": coordinated_agent(agent, coordinate("writer")),
        "+ lock": coordinated_agent(agent, coordinate("writer", lock_name="bench_llm")),
        "+ lock + limit": coordinated_agent(agent, coordinate("writer", lock_name="bench_llm", limit="bench_tpm")),
    }
    tool_agents = {}
    for kind, tool in (("async", ping_async), ("sync", ping_sync)):
        tool_agents[f"{kind} tool bare"] = Agent(name="caller", model=Answer(tool.name), tools=[tool])
        locked = coordinated_tool(tool, coordinate("ping", lock_name="bench_tool"))
        tool_agents[f"{kind} tool + lock"] = Agent(name="caller", model=Answer(tool.name), tools=[locked])
    from agents.tool_context import ToolContext

    layers: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
        f"model call {k}": (lambda a=a: a.model.get_response()) for k, a in turn_agents.items()
    }
    ctx = ToolContext(context=None, tool_name="ping", tool_call_id="c", tool_arguments="{}")
    for kind in ("async", "sync"):
        for variant in ("bare", "+ lock"):
            tool = tool_agents[f"{kind} tool {variant}"].tools[0]
            layers[f"{kind} tool call {variant}"] = lambda t=tool: t.on_invoke_tool(ctx, "{}")
    runs = {
        **{f"turn {k}": (lambda a=a: Runner.run(a, "go")) for k, a in turn_agents.items()},
        **{k: (lambda a=a: Runner.run(a, "go")) for k, a in tool_agents.items()},
    }
    return runs, layers


def _best_us(loop: asyncio.AbstractEventLoop, steps: Steps, number: int) -> dict[str, float]:
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(REPEATS):
        for label, step in steps.items():
            t0 = time.process_time()
            for _ in range(number):
                loop.run_until_complete(step())
            best[label] = min(best[label], time.process_time() - t0)
    return {label: seconds / number * 1e6 for label, seconds in best.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per repeat (default 100)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    loop = asyncio.new_event_loop()
    try:
        runs, layers = _setup()
        for step in (*runs.values(), *layers.values()):
            loop.run_until_complete(step())  # warm up
        run_us = _best_us(loop, runs, args.runs)
        layer_us = _best_us(loop, layers, args.runs * 10)
    finally:
        loop.close()
    added = {
        "turn coordinated": ("model call coordinated", "model call bare", "turn bare"),
        "turn + lock": ("model call + lock", "model call bare", "turn bare"),
        "turn + lock + limit": ("model call + lock + limit", "model call bare", "turn bare"),
        "async tool + lock": ("async tool call + lock", "async tool call bare", "async tool bare"),
        "sync tool + lock": ("sync tool call + lock", "sync tool call bare", "sync tool bare"),
    }
    overhead = {label: (layer_us[c] - layer_us[b]) / run_us[whole] for label, (c, b, whole) in added.items()}
    figures = {"run_us": run_us, "layer_us": layer_us, "overhead_ratio": overhead}
    if args.json:
        print(json.dumps(figures, indent=2))
        return figures
    print("CPU microseconds per Runner.run (a scripted model that answers at once, tools that return at once):")
    for label, value in run_us.items():
        print(f"  {label:<24}{value:>9.1f}")
    print("CPU microseconds of the coordinated layer alone (one model call, one tool invocation):")
    for label, value in layer_us.items():
        print(f"  {label:<30}{value:>9.1f}")
    print("What the adapter adds, as a share of the bare trivial run:")
    for label, (c, b, whole) in added.items():
        print(f"  {label:<22}{layer_us[c] - layer_us[b]:>8.1f} us = {overhead[label] * 100:.1f}% of {whole!r}")
    return figures


if __name__ == "__main__":
    main()
