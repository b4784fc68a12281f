"""What ``coordinate(...)(agent)`` adds to a trivial AutoGen agent turn, as a ratio to the bare turn.

    python benchmarks/bench_autogen.py [--turns N] [--json]

The agent does nothing but answer, so the figures are the adapter's own cost: the
worst case. Two framework steps are measured, each bare and coordinated:

- a direct turn: ``on_messages_stream([message], token)`` read to its end, the call
  every team makes (``on_messages`` and ``run`` go through it on a coordinated agent);
- a turn inside a ``RoundRobinGroupChat`` (two agents, one run of N turns), the way
  agents usually run, through AutoGen's runtime and message routing.

Coordinated means "with a lock" (uncontended) and "events only" (no lock). Times are
CPU time of this process (everything runs on one thread, and no event has a listener),
so other load on a shared machine does not inflate them. The variants take turns in
each of several repeats, with the garbage collector paused (as ``timeit`` does); a time
is the best repeat, a ratio the median of the ratios within one repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

REPEATS = 15


def _agents() -> Any:
    from autogen_agentchat.agents import BaseChatAgent
    from autogen_agentchat.base import Response
    from autogen_agentchat.messages import BaseChatMessage, TextMessage
    from autogen_core import CancellationToken

    class Trivial(BaseChatAgent):
        """Answers at once, without a model."""

        @property
        def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
            return (TextMessage,)

        async def on_messages(self, messages: Sequence[BaseChatMessage], token: CancellationToken) -> Response:
            return Response(chat_message=TextMessage(content="ok", source=self.name))

        async def on_reset(self, token: CancellationToken) -> None:
            pass

    return Trivial


async def _samples_us(steps: dict[str, Callable[[], Awaitable[Any]]], number: int) -> dict[str, list[float]]:
    """Time per call of each step in each repeat; in every repeat the steps take turns,
    so a slow spell of a busy machine hits neighbours alike."""
    samples: dict[str, list[float]] = {label: [] for label in steps}
    gc.collect()
    gc.disable()  # as timeit does: a collection landing in one variant's batch is noise
    try:
        for _ in range(REPEATS):
            for label, step in steps.items():
                t0 = time.process_time()
                for _ in range(number):
                    await step()
                samples[label].append((time.process_time() - t0) / number * 1e6)
    finally:
        gc.enable()
    return samples


def _figures(step: str, samples: dict[str, list[float]], scale: float = 1.0) -> dict[str, float]:
    """Best time per variant, and each variant's ratio to bare: the median of the ratios
    taken within one repeat (neighbours in time), which drifting load cancels out of."""
    out = {f"{step}_{label}_us": min(times) / scale for label, times in samples.items()}
    for label in ("locked", "events_only"):
        out[f"{step}_{label}_ratio"] = statistics.median(
            v / b for v, b in zip(samples[label], samples["bare"], strict=True)
        )
    return out


async def direct_turns(number: int) -> dict[str, float]:
    from autogen_agentchat.messages import TextMessage
    from autogen_core import CancellationToken

    from agentdiff_coordination import coordinate

    trivial = _agents()
    message = [TextMessage(content="hi", source="user")]
    token = CancellationToken()
    bare = trivial("bare", "a trivial agent")
    locked = coordinate("locked", lock_name="bench_api")(trivial("locked", "a trivial agent"))
    events_only = coordinate("events_only")(trivial("events_only", "a trivial agent"))
    def turn(agent: Any) -> Callable[[], Awaitable[None]]:
        async def read_to_the_end() -> None:
            async for _ in agent.on_messages_stream(message, token):
                pass

        return read_to_the_end

    samples = await _samples_us({"bare": turn(bare), "locked": turn(locked), "events_only": turn(events_only)}, number)
    return _figures("direct", samples)


async def team_turns(turns: int, number: int) -> dict[str, float]:
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat

    from agentdiff_coordination import coordinate

    trivial = _agents()

    def team(wrap: Callable[[Any], Any]) -> Any:
        agents = [wrap(trivial(name, "a trivial agent")) for name in ("a", "b")]
        return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(turns + 1))

    def one_run(chat: Any) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await chat.reset()
            await chat.run(task="go")

        return run

    steps = {
        "bare": one_run(team(lambda agent: agent)),
        "locked": one_run(team(lambda agent: coordinate(agent.name, lock_name="bench_api")(agent))),
        "events_only": one_run(team(lambda agent: coordinate(agent.name)(agent))),
    }
    return _figures("team", await _samples_us(steps, number), scale=turns)


def measure(turns: int) -> dict[str, float]:
    figures = asyncio.run(direct_turns(5_000))
    figures.update(asyncio.run(team_turns(turns, 10)))
    return figures


def table(f: dict[str, float]) -> str:
    rows = [
        "| AutoGen step (trivial agent) | bare | coordinated, with a lock | ratio | events only | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for step, label in (("direct", "direct turn, `on_messages_stream`"), ("team", "turn in a `RoundRobinGroupChat`")):
        rows.append(
            f"| {label} | {f[f'{step}_bare_us']:.1f} µs | {f[f'{step}_locked_us']:.1f} µs | "
            f"{f[f'{step}_locked_ratio']:.2f}× | {f[f'{step}_events_only_us']:.1f} µs | "
            f"{f[f'{step}_events_only_ratio']:.2f}× |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40, help="turns per team run (default 40)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    figures = measure(args.turns)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
