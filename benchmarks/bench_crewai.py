"""What the CrewAI adapter adds to a trivial task, as a ratio to the bare CrewAI step.

    python benchmarks/bench_crewai.py [--number N] [--json]

The task's agent answers at once from a scripted LLM (no network), so the figures are
the adapter's own cost: the worst case. Two framework steps are measured:

- a task run, ``task.execute_sync(agent=agent)``;
- a whole ``crew.kickoff()`` of a one-task crew, the way tasks usually run.

Each step runs bare and coordinated three ways: with a lock (uncontended), with a lock
and a ``@when("*")`` listener (payloads built and delivered), and events only (no lock,
nobody listening). Each figure is the best of several repeats, the least disturbed by
other load on the machine; the variants take turns in every repeat, and ratios compare
figures from this one run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

REPEATS = 9


def _offline() -> str:
    """CrewAI's offline switches; returns the private storage directory."""
    storage = tempfile.mkdtemp(prefix="bench-crewai-")
    os.environ.update(
        CREWAI_DISABLE_TELEMETRY="true",
        OTEL_SDK_DISABLED="true",
        CREWAI_TRACING_ENABLED="false",
        CREWAI_DISABLE_VERSION_CHECK="true",
        CREWAI_STORAGE_DIR=storage,
    )
    return storage


def _crew(label: str) -> tuple[Any, Any, Any]:
    """(crew, its task, its agent), with a scripted LLM."""
    from crewai import Agent, Crew, Task
    from crewai.llms.base_llm import BaseLLM

    class Scripted(BaseLLM):
        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            return "Thought: done\nFinal Answer: ok"

        def get_input_tokens_count(self, messages: Any, *args: Any, **kwargs: Any) -> int:
            return 1

    agent = Agent(role=f"{label} agent", goal="answer", backstory="scripted", llm=Scripted(model="scripted"), verbose=False)
    task = Task(name=label, description="answer", expected_output="ok", agent=agent)
    return Crew(agents=[agent], tasks=[task], memory=False, verbose=False), task, agent


def _best_us(steps: dict[str, Callable[[], Any]], number: int) -> dict[str, float]:
    best = dict.fromkeys(steps, float("inf"))
    order = list(steps.items())
    for repeat in range(REPEATS):
        for label, step in order[repeat % len(order):] + order[: repeat % len(order)]:  # each goes first in turn
            t0 = time.perf_counter()
            for _ in range(number):
                step()
            best[label] = min(best[label], time.perf_counter() - t0)
    return {label: seconds / number * 1e6 for label, seconds in best.items()}


def measure(number: int) -> dict[str, float]:
    from agentdiff_coordination import coordinate, drain, unsubscribe, when
    from agentdiff_coordination.adapters.crewai import coordinate_crew

    crews = {label: _crew(label) for label in ("bare", "locked", "watched", "events_only")}
    coordinate_crew(crews["locked"][0], locks={"locked": "bench_api"})
    coordinate_crew(crews["watched"][0], locks={"watched": "bench_api_2"})
    coordinate("events_only")(crews["events_only"][1])

    seen: list[str] = []

    @when("watched_*")
    def listener(data: Any) -> None:
        seen.append("x")

    def task_run(crew: Any, task: Any, agent: Any) -> Any:
        return task.execute_sync(agent=agent)

    def kickoff(crew: Any, task: Any, agent: Any) -> Any:
        return crew.kickoff()

    figures: dict[str, float] = {}
    for step, run in (("task", task_run), ("kickoff", kickoff)):
        steps: dict[str, Callable[[], Any]] = {
            f"{step}_{label}_us": functools.partial(run, *c) for label, c in crews.items()
        }
        for fn in steps.values():
            fn()  # warm up
        figures.update(_best_us(steps, number))
        bare = figures[f"{step}_bare_us"]
        for label in ("locked", "watched", "events_only"):
            figures[f"{step}_{label}_ratio"] = figures[f"{step}_{label}_us"] / bare
    figures.update(_adapter_only(max(number * 250, 5_000)))
    for kind in ("locked", "watched", "events_only"):
        figures[f"task_{kind}_estimated_ratio"] = 1 + figures[f"adapter_{kind}_us"] / figures["task_bare_us"]
    drain(30)
    unsubscribe(listener)
    return figures


def _adapter_only(number: int) -> dict[str, float]:
    """The adapter's own cost per task run, in µs: the coordinated ``_execute_core`` around
    a stand-in that returns at once, minus the stand-in alone. Far below the noise of a
    whole CrewAI step, so measured apart; the estimated ratio adds it to the bare step."""
    from crewai import Task
    from crewai.tasks.task_output import TaskOutput

    from agentdiff_coordination import coordinate
    from agentdiff_coordination.adapters.crewai import coordinate_crew  # noqa: F401  (registers the plugin)

    output = TaskOutput(description="answer", raw="ok", agent="stand-in")

    class Instant(Task):
        def _execute_core(self, agent: Any, context: Any, tools: Any) -> TaskOutput:
            return output

    def make(label: str) -> Any:
        return Instant(name=label, description="answer", expected_output="ok")

    bare, locked, watched, events_only = (make(label) for label in ("bare", "locked", "watched", "events_only"))
    coordinate("locked", lock_name="bench_api")(locked)
    coordinate("watched", lock_name="bench_api_2")(watched)
    coordinate("events_only")(events_only)
    steps: dict[str, Callable[[], Any]] = {
        f"adapter_{label}_raw_us": functools.partial(t._execute_core, None, None, None)
        for label, t in (("bare", bare), ("locked", locked), ("watched", watched), ("events_only", events_only))
    }
    raw = _best_us(steps, number)
    base = raw["adapter_bare_raw_us"]
    return {f"adapter_{label}_us": raw[f"adapter_{label}_raw_us"] - base for label in ("locked", "watched", "events_only")}


def table(f: dict[str, float]) -> str:
    rows = [
        "| CrewAI step (trivial task) | bare | with a lock | ratio | lock + listener | ratio | events only | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step, label in (("task", "task run, `execute_sync`"), ("kickoff", "one-task `crew.kickoff()`")):
        cells = [f"| {label} | {f[f'{step}_bare_us'] / 1000:.2f} ms"]
        for kind in ("locked", "watched", "events_only"):
            cells.append(f"{f[f'{step}_{kind}_us'] / 1000:.2f} ms | {f[f'{step}_{kind}_ratio']:.3f}×")
        rows.append(" | ".join(cells) + " |")
    cells = ["| adapter alone, per task run (estimated ratio) | –"]
    for kind in ("locked", "watched", "events_only"):
        cells.append(f"+{f[f'adapter_{kind}_us']:.1f} µs | {f[f'task_{kind}_estimated_ratio']:.4f}×")
    rows.append(" | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--number", type=int, default=40, help="runs per repeat of each variant (default 40)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    storage = _offline()
    try:
        figures = measure(args.number)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
