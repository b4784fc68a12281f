"""What the core costs on the hot path, against the raw primitives, in one run.

    python benchmarks/bench_core.py [--baseline-python /path/to/venv/bin/python]

``--baseline-python`` names an interpreter where the published package
``agentdiff-coordination==0.1.1`` is installed (a throwaway venv: the import names
clash), to measure it on the same machine in the same run.

Each figure is the best of several repeats (the least disturbed by other load);
ratios compare figures taken in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import timeit
from collections.abc import Callable
from typing import Any

REPEATS = 7


def per_call_us(fn: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number * 1e6


def async_per_call_us(make: Callable[[], Any], number: int) -> float:
    """Best per-iteration time of ``await make()`` in one loop."""

    async def run() -> float:
        best = float("inf")
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            for _ in range(number):
                await make()
            best = min(best, time.perf_counter() - t0)
        return best / number * 1e6

    return asyncio.run(run())


def latency_us(emit_one: Callable[[float], None], done: threading.Event, samples: list[float], count: int) -> tuple[float, float]:
    """p50 and p99 of emit-to-handler-start, one event in flight at a time."""
    for _ in range(count):
        done.clear()
        emit_one(time.perf_counter())
        done.wait(5)
    ordered = sorted(samples[-count:])
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99) - 1] * 1e6


def contended_async(named: Any, tasks: int = 200, rounds: int = 50) -> tuple[float, float]:
    """Acquisitions per second of ``tasks`` asyncio tasks contending for one lock (each
    holds it across one ``sleep(0)``): ours, then one ``asyncio.Lock``; best of the repeats."""

    async def run(lk: Any) -> float:
        async def worker() -> None:
            for _ in range(rounds):
                async with lk:
                    await asyncio.sleep(0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        return tasks * rounds / (time.perf_counter() - t0)

    async def both() -> tuple[float, float]:
        ours, theirs = 0.0, 0.0
        for _ in range(REPEATS):
            ours = max(ours, await run(named))
            theirs = max(theirs, await run(asyncio.Lock()))
        return ours, theirs

    return asyncio.run(both())


OTEL_BY_HAND = [float("nan")]


def observed(coordinated: Callable[[], Any]) -> tuple[float, float]:
    """``coordinated`` with OpenTelemetry on (the SDK's providers, spans and metrics made and
    dropped: no exporter), then with a recording to a file."""
    import os

    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider

        from agentdiff_coordination import record, telemetry
    except ImportError:  # an earlier release without them
        return float("nan"), float("nan")

    tracer_provider, meter_provider = TracerProvider(), MeterProvider()
    tracer, meter = tracer_provider.get_tracer("by-hand"), meter_provider.get_meter("by-hand")
    wait, hold, waiting = meter.create_histogram("w"), meter.create_histogram("h"), meter.create_up_down_counter("n")
    raw, attrs = threading.Lock(), {"l": "bench_api"}

    def by_hand() -> int:  # what a user would write for the same span, attributes and metrics
        with tracer.start_as_current_span("coordinate bench_sync") as span:
            waiting.add(1, attrs)
            with raw:
                waiting.add(-1, attrs)
                wait.record(0.0, attrs)
                span.set_attributes({"coordination.step": "bench_sync", "coordination.run_id": "run-1",
                                     "coordination.lock.names": ["bench_api"], "coordination.lock.wait_duration": 0.0,
                                     "coordination.fencing": 1})
                hold.record(0.0, attrs)
                return 1

    telemetry.enable(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        with_otel = per_call_us(coordinated, 20_000)
    finally:
        telemetry.disable()
    OTEL_BY_HAND[0] = per_call_us(by_hand, 20_000)
    with tempfile.TemporaryDirectory() as folder:
        with record(os.path.join(folder, "run.jsonl")):
            recorded = per_call_us(coordinated, 20_000)
    return with_otel, recorded


def measure_ours() -> dict[str, float]:
    from agentdiff_coordination import coordinate, drain, emit, lock, when

    out: dict[str, float] = {}

    @coordinate("bench_sync", lock_name="bench_api")
    def coordinated() -> int:
        return 1

    def plain_locked(_raw: threading.Lock = threading.Lock()) -> int:
        with _raw:
            return 1

    out["coordinate_sync_us"] = per_call_us(coordinated, 100_000)
    out["raw_sync_locked_call_us"] = per_call_us(plain_locked, 100_000)

    named = lock("bench_lock")
    raw = threading.Lock()

    def with_named() -> None:
        with named:
            pass

    def with_raw() -> None:
        with raw:
            pass

    out["with_lock_us"] = per_call_us(with_named, 100_000)
    out["with_threading_lock_us"] = per_call_us(with_raw, 100_000)

    @coordinate("bench_async", lock_name="bench_api")
    async def acoordinated() -> int:
        return 1

    out["coordinate_async_us"] = async_per_call_us(acoordinated, 50_000)

    async def with_named_async() -> None:
        async with named:
            pass

    out["async_with_lock_us"] = async_per_call_us(with_named_async, 50_000)

    async def with_asyncio_lock() -> None:
        async with alock:
            pass

    async def make_lock() -> asyncio.Lock:
        return asyncio.Lock()

    alock = asyncio.run(make_lock())
    out["async_with_asyncio_lock_us"] = async_per_call_us(with_asyncio_lock, 50_000)

    out["contended_async_ours_per_s"], out["contended_async_asyncio_per_s"] = contended_async(named)
    out["coordinate_sync_otel_us"], out["coordinate_sync_recorded_us"] = observed(coordinated)
    out["otel_by_hand_us"] = OTEL_BY_HAND[0]

    def emit_nobody() -> None:
        emit("bench_nobody_listens")

    out["emit_no_subscriber_us"] = per_call_us(emit_nobody, 200_000)

    samples: list[float] = []
    done = threading.Event()

    @when("bench_ping")
    def on_ping(data: float) -> None:
        samples.append(time.perf_counter() - data)
        done.set()

    latency_us(lambda t: emit("bench_ping", t), done, samples, 200)  # warm the worker
    p50, p99 = latency_us(lambda t: emit("bench_ping", t), done, samples, 2000)
    out["emit_to_handler_p50_us"], out["emit_to_handler_p99_us"] = p50, p99
    drain(5)

    # the raw alternative: a queue and a consumer thread
    import queue

    q: queue.SimpleQueue[float] = queue.SimpleQueue()
    raw_samples: list[float] = []
    raw_done = threading.Event()

    def consumer() -> None:
        while True:
            t = q.get()
            if t < 0:
                return
            raw_samples.append(time.perf_counter() - t)
            raw_done.set()

    th = threading.Thread(target=consumer, daemon=True)
    th.start()
    latency_us(q.put, raw_done, raw_samples, 200)
    p50, _ = latency_us(q.put, raw_done, raw_samples, 2000)
    out["queue_thread_p50_us"] = p50
    q.put(-1.0)
    return out


BASELINE_SCRIPT = textwrap.dedent(
    """
    import json, threading, time, timeit, statistics
    from agentdiff_coordination import coordinate, emit, when

    @coordinate("bench_sync", lock_name="bench_api")
    def coordinated():
        return 1

    n = 5000
    per_call = min(timeit.repeat(coordinated, number=n, repeat=5)) / n * 1e6
    samples, done = [], threading.Event()

    @when("bench_ping")
    def on_ping(event_data):
        t = event_data["t"] if isinstance(event_data, dict) and "t" in event_data else event_data
        samples.append(time.perf_counter() - t)
        done.set()

    for _ in range(500):
        done.clear()
        emit("bench_ping", {"t": time.perf_counter()})
        done.wait(5)
    ordered = sorted(samples[100:])
    print(json.dumps({"coordinate_sync_us": per_call,
                      "emit_to_handler_p50_us": statistics.median(ordered) * 1e6}))
    """
)


def measure_baseline(python: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as elsewhere:  # not this checkout: the import names clash
        done = subprocess.run(
            [python, "-c", BASELINE_SCRIPT], capture_output=True, text=True, timeout=600, cwd=elsewhere
        )
    if done.returncode != 0:
        raise SystemExit(f"baseline run failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-python", help="interpreter with agentdiff-coordination==0.1.1 installed")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()

    ours = measure_ours()
    base = measure_baseline(args.baseline_python) if args.baseline_python else {}
    if args.json:
        print(json.dumps({"ours": ours, "baseline_0_1_1": base}, indent=2))
        return

    def row(label: str, value: float, reference: float | None, ref_label: str) -> None:
        ratio = f"{value / reference:6.1f}x {ref_label}" if reference else ""
        print(f"{label:<44} {value:9.2f} us   {ratio}")

    print(f"python {sys.version.split()[0]}, best of {REPEATS} repeats\n")
    row("@coordinate sync, uncontended, no listener", ours["coordinate_sync_us"], ours["raw_sync_locked_call_us"], "call under threading.Lock")
    if base:
        row("  published 0.1.1, same function", base["coordinate_sync_us"], ours["coordinate_sync_us"], "ours")
    row("  with OpenTelemetry on (SDK, no exporter)", ours["coordinate_sync_otel_us"], ours["coordinate_sync_us"], "off")
    row("  the same span and metrics written by hand", ours["otel_by_hand_us"], None, "")
    if ours["otel_by_hand_us"] == ours["otel_by_hand_us"]:
        print(f"{'  ours against by hand':<44} {ours['coordinate_sync_otel_us'] / ours['otel_by_hand_us']:9.2f}x")
    row("  with record(path) on", ours["coordinate_sync_recorded_us"], ours["coordinate_sync_us"], "off")
    row("@coordinate async, uncontended, no listener", ours["coordinate_async_us"], ours["async_with_asyncio_lock_us"], "async with asyncio.Lock")
    row("with lock(name), uncontended", ours["with_lock_us"], ours["with_threading_lock_us"], "with threading.Lock")
    row("async with lock(name), uncontended", ours["async_with_lock_us"], ours["async_with_asyncio_lock_us"], "async with asyncio.Lock")
    print(f"{'200 tasks contending, acquisitions/s':<44} {ours['contended_async_ours_per_s']:9.0f}      "
          f"{ours['contended_async_ours_per_s'] / ours['contended_async_asyncio_per_s']:6.2f}x the throughput of one asyncio.Lock")
    row("emit, no subscriber", ours["emit_no_subscriber_us"], None, "")
    row("emit -> sync handler starts, p50", ours["emit_to_handler_p50_us"], ours["queue_thread_p50_us"], "SimpleQueue + thread")
    row("emit -> sync handler starts, p99", ours["emit_to_handler_p99_us"], None, "")
    if base:
        row("  published 0.1.1, emit -> handler p50", base["emit_to_handler_p50_us"], ours["emit_to_handler_p50_us"], "ours")


if __name__ == "__main__":
    main()
