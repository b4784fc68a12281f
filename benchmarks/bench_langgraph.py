"""What the LangGraph adapter adds to a trivial node, as a ratio to the bare LangGraph step.

    python benchmarks/bench_langgraph.py [--runs N] [--json]

The nodes do nothing but add one to a counter, so the figures are the adapter's own
cost against the cheapest possible node: the worst case. Measured:

- a node step inside a graph: a chain of ``NODES`` trivial nodes run with ``invoke``
  (sync) and ``ainvoke`` (async), per node, in four variants: bare; every node decorated
  with ``@coordinate`` (no lock); ``coordinate_graph(builder)`` (events, no lock); and
  ``coordinate_graph(builder, locks=...)`` (each node takes an uncontended lock);
- the coordinated node layer alone: ``invoke`` of a node's Runnable after
  ``coordinate_graph`` against the same Runnable bare, with a node's real config. This is
  the adapter's cost without the noise of a whole graph run around it;
- ``serialize_threads``: a whole run (``invoke``, ``ainvoke``) of a one-node graph with a
  checkpointer on one ``thread_id``, bare and serialised (the thread's lock taken and
  released around each run, its fencing number put in the config).

No event has a listener (payloads are built only for listeners). Times are CPU time of
this process, so other load on a shared machine does not inflate them; each figure is
the best of several repeats, the variants taking turns; ratios compare figures of one run.
Whole-graph times on a shared machine spread by more than the adapter's cost, so the
overhead ratio is the node layer's added time over the bare node step, and a count of
the Python calls each variant adds per node step confirms nothing else changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

REPEATS = 10
NODES = 10


def _graph(variant: str) -> Any:
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    from agentdiff_coordination import coordinate
    from agentdiff_coordination.adapters.langgraph import coordinate_graph

    class Count(TypedDict):
        n: int

    def step(state: Count) -> Count:
        return {"n": state["n"] + 1}

    builder = StateGraph(Count)
    previous = START
    for i in range(NODES):
        name = f"node{i}"
        builder.add_node(name, coordinate(name)(step) if variant == "decorated" else step)
        builder.add_edge(previous, name)
        previous = name
    if variant == "graph events":
        coordinate_graph(builder)
    elif variant == "graph + lock":
        coordinate_graph(builder, locks={f"node{i}": "bench_lock" for i in range(NODES)})
    return builder.compile()


VARIANTS = ("bare", "decorated", "graph events", "graph + lock")


def _best_us(steps: dict[str, Callable[[], Any]], number: int, per: int = 1) -> dict[str, float]:
    """Best CPU time per call (divided by ``per``) of each step; the steps take turns."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(REPEATS):
        for label, step in steps.items():
            t0 = time.process_time()
            for _ in range(number):
                step()
            best[label] = min(best[label], time.process_time() - t0)
    return {label: seconds / number / per * 1e6 for label, seconds in best.items()}


def graph_steps(runs: int) -> dict[str, dict[str, float]]:
    """Microseconds per node step, sync and async, for each variant."""
    graphs = {variant: _graph(variant) for variant in VARIANTS}
    sync_steps = {v: (lambda g=g: g.invoke({"n": 0})) for v, g in graphs.items()}
    loop = asyncio.new_event_loop()
    async_steps = {v: (lambda g=g: loop.run_until_complete(g.ainvoke({"n": 0}))) for v, g in graphs.items()}
    for step in (*sync_steps.values(), *async_steps.values()):
        step()  # warm up
    try:
        return {
            "sync": _best_us(sync_steps, runs, NODES),
            "async": _best_us(async_steps, runs, NODES),
        }
    finally:
        loop.close()


def node_layer(calls: int) -> dict[str, float]:
    """Microseconds per ``invoke`` of one node's Runnable, bare and coordinated."""
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    from agentdiff_coordination.adapters.langgraph import coordinate_graph

    class Count(TypedDict):
        n: int

    captured: dict[str, Any] = {}

    def step(state: Count, config: RunnableConfig) -> Count:
        captured.setdefault("config", config)  # a real node config, as LangGraph builds it
        return {"n": state["n"] + 1}

    def node(locks: dict[str, str] | None) -> Any:
        builder = StateGraph(Count)
        builder.add_node("step", step)
        builder.add_edge(START, "step")
        if locks is not None:
            coordinate_graph(builder, locks=locks)
        return builder

    node(None).compile().invoke({"n": 0}, {"configurable": {"thread_id": "bench"}})
    config = captured["config"]
    bare = node(None).nodes["step"].runnable
    events = node({}).nodes["step"].runnable
    locked = node({"step": "bench_lock"}).nodes["step"].runnable
    state = {"n": 0}
    return _best_us({
        "bare": lambda: bare.invoke(state, config),
        "graph events": lambda: events.invoke(state, config),
        "graph + lock": lambda: locked.invoke(state, config),
    }, calls)


def thread_runs(runs: int) -> dict[str, dict[str, float]]:
    """Microseconds per run of a one-node graph on one thread, bare and under ``serialize_threads``."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    from agentdiff_coordination.adapters.langgraph import serialize_threads

    class Count(TypedDict):
        n: int

    def step(state: Count) -> Count:
        return {"n": state["n"] + 1}

    builder = StateGraph(Count)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    bare = builder.compile(checkpointer=InMemorySaver())
    serialized = serialize_threads(builder.compile(checkpointer=InMemorySaver()))
    config = {"configurable": {"thread_id": "bench"}}
    loop = asyncio.new_event_loop()
    graphs = {"bare": bare, "serialize_threads": serialized}
    sync_steps = {k: (lambda g=g: g.invoke({"n": 0}, config)) for k, g in graphs.items()}
    async_steps = {k: (lambda g=g: loop.run_until_complete(g.ainvoke({"n": 0}, config))) for k, g in graphs.items()}


    class Stub:
        """A graph that returns at once: what is left of a run is the serialize_threads layer."""

        def invoke(self, input: Any, config: Any = None) -> Any:
            return input

        async def ainvoke(self, input: Any, config: Any = None) -> Any:
            return input

        def astream(self, input: Any, config: Any = None) -> Any:
            raise NotImplementedError

    stub, layer = Stub(), serialize_threads(Stub())
    layer_steps = {
        "sync bare": lambda: stub.invoke({"n": 0}, config),
        "sync serialize_threads": lambda: layer.invoke({"n": 0}, config),
        "async bare": lambda: loop.run_until_complete(stub.ainvoke({"n": 0}, config)),
        "async serialize_threads": lambda: loop.run_until_complete(layer.ainvoke({"n": 0}, config)),
    }
    try:
        for step_ in (*sync_steps.values(), *async_steps.values()):
            step_()
        return {"sync": _best_us(sync_steps, runs), "async": _best_us(async_steps, runs),
                "layer": _best_us(layer_steps, runs * 20)}
    finally:
        loop.close()


def extra_calls_per_node() -> dict[str, float]:
    """Python function calls each variant adds to one node step: a count, free of timing noise."""
    import cProfile
    import pstats

    counts: dict[str, float] = {}
    for variant in VARIANTS:
        graph = _graph(variant)
        graph.invoke({"n": 0})
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(10):
            graph.invoke({"n": 0})
        profile.disable()
        counts[variant] = pstats.Stats(profile).total_calls / (10 * NODES)  # type: ignore[attr-defined]
    return {v: counts[v] - counts["bare"] for v in VARIANTS if v != "bare"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="graph runs per repeat (default 20)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    steps = graph_steps(args.runs)
    layer = node_layer(args.runs * 100)
    calls = extra_calls_per_node()
    threads = thread_runs(args.runs * 5)
    added = {v: layer[v] - layer["bare"] for v in layer if v != "bare"}
    figures: dict[str, Any] = {
        "node_step_us": steps,
        "node_layer_us": layer,
        "extra_calls_per_node": calls,
        "overhead_ratio": {mode: {v: us / steps[mode]["bare"] for v, us in added.items()} for mode in steps},
        "thread_run_us": threads,
        "serialize_threads_ratio": {
            mode: (threads["layer"][f"{mode} serialize_threads"] - threads["layer"][f"{mode} bare"]) / threads[mode]["bare"]
            for mode in ("sync", "async")
        },
        "measured_in_graph_ratio": {
            mode: {v: (t[v] - t["bare"]) / t["bare"] for v in t if v != "bare"} for mode, t in steps.items()
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return figures

    print(f"A trivial LangGraph node step, CPU microseconds per node (a chain of {NODES} nodes):")
    print(f"  {'':<14}{'sync':>9}{'async':>9}   extra Python calls per node")
    for v in VARIANTS:
        extra = "" if v == "bare" else f"{calls[v]:>+.0f}"
        print(f"  {v:<14}{steps['sync'][v]:>9.1f}{steps['async'][v]:>9.1f}   {extra}")
    print("What the coordinated node layer adds to each node step (invoke of one node's Runnable):")
    for v, us in added.items():
        ratios = figures["overhead_ratio"]
        print(f"  {v:<14}{us:>6.2f} us = {ratios['sync'][v] * 100:.2f}% of a sync node step, "
              f"{ratios['async'][v] * 100:.2f}% of an async one")
    print("(the whole-graph columns differ by more than that on a busy machine: their spread is the noise;")
    print(" the call counts show the node layer is the only work the adapter adds)")
    print("serialize_threads: a whole run of a one-node graph with a checkpointer on one thread_id, CPU microseconds:")
    for mode in ("sync", "async"):
        t, lay = threads[mode], threads["layer"]
        layer_added = lay[f"{mode} serialize_threads"] - lay[f"{mode} bare"]
        ratio = figures["serialize_threads_ratio"][mode]
        print(f"  {mode:<6} bare run {t['bare']:.1f}, serialised run {t['serialize_threads']:.1f}; "
              f"the layer adds {layer_added:.1f} us = {ratio * 100:.2f}% of the bare run")
    return figures


if __name__ == "__main__":
    main()
