"""Limits against aiolimiter, limits and pyrate-limiter, on the same workloads, in one run.

    python benchmarks/bench_limits.py [--redis redis://127.0.0.1:6379/0] [--json]

Two workloads:

1. Admission cost: one caller admits N times under a rate it never reaches
   (100000/min; every library starts each repeat on a fresh key). Figures are the
   best time per admission over several repeats, the libraries taking turns; ratios
   are to ours on the same backend. In memory and, with ``--redis`` (or
   ``AGENTDIFF_TEST_REDIS_URL``), on Redis, where the server's own time per admission
   (from ``INFO commandstats``) is given too: it does not depend on client noise.
2. Saturation (memory): 8 threads (tasks for aiolimiter) ask for 100/s for 3 s of
   demand. For each library: the most admissions seen in any 1 s sliding window
   (the limit is 100) and the share of the limit used over 3 periods. Admission
   times are read by the caller right after each admission, the same way for every
   library, so scheduling noise may shift a window by a little.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

REPEATS = 5
N = 5000
BIG = "100000/min"


def best_us(steps: dict[str, Callable[[str], Callable[[], Any]]], number: int = N) -> dict[str, float]:
    """Best µs per admission of each step; ``steps[label](key)`` makes one admission
    function on a fresh key (fresh state) for each repeat."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(REPEATS):
        for label, make in steps.items():
            admit = make(uuid.uuid4().hex)
            t0 = time.perf_counter()
            for _ in range(number):
                admit()
            best[label] = min(best[label], time.perf_counter() - t0)
    return {label: seconds / number * 1e6 for label, seconds in best.items()}


def best_us_async(steps: dict[str, Callable[[str], Callable[[], Awaitable[Any]]]], number: int = N) -> dict[str, float]:
    async def run() -> dict[str, float]:
        best = dict.fromkeys(steps, float("inf"))
        for _ in range(REPEATS):
            for label, make in steps.items():
                admit = make(uuid.uuid4().hex)
                t0 = time.perf_counter()
                for _ in range(number):
                    await admit()
                best[label] = min(best[label], time.perf_counter() - t0)
        return {label: seconds / number * 1e6 for label, seconds in best.items()}

    return asyncio.run(run())


# -- workload 1: admission cost ----------------------------------------------------------


def ours_sync(key: str) -> Callable[[], Any]:
    from agentdiff_coordination import limit

    api = limit(f"bench-{key}", rate=BIG)
    return lambda: api.acquire()


def ours_with(key: str) -> Callable[[], Any]:
    from agentdiff_coordination import limit

    api = limit(f"bench-{key}", rate=BIG)

    def admit() -> None:
        with api:
            pass

    return admit


def ours_async(key: str) -> Callable[[], Awaitable[Any]]:
    from agentdiff_coordination import limit

    api = limit(f"bench-{key}", rate=BIG)
    return lambda: api.acquire_async()


def limits_sync(storage_url: str, strategy: str) -> Callable[[str], Callable[[], Any]]:
    import limits

    storage = limits.storage.storage_from_string(storage_url)
    limiter = getattr(limits.strategies, strategy)(storage)
    item = limits.parse(BIG.replace("min", "minute"))
    return lambda key: (lambda: limiter.hit(item, key))


def limits_async(storage_url: str) -> Callable[[str], Callable[[], Awaitable[Any]]]:
    import limits.aio

    item = limits.parse(BIG.replace("min", "minute"))
    state: dict[str, Any] = {}

    def make(key: str) -> Callable[[], Awaitable[Any]]:
        loop = asyncio.get_running_loop()
        if state.get("loop") is not loop:  # one storage per loop
            options = {"implementation": "redispy"} if "redis" in storage_url else {}  # redis-py, not coredis
            storage = limits.storage.storage_from_string(storage_url, **options)
            state.update(loop=loop, limiter=limits.aio.strategies.MovingWindowRateLimiter(storage))
        limiter = state["limiter"]
        return lambda: limiter.hit(item, key)

    return make


def pyrate_sync(redis_url: str | None = None) -> Callable[[str], Callable[[], Any]]:
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate, RedisBucket

    rates = [Rate(100000, Duration.MINUTE)]

    def make(key: str) -> Callable[[], Any]:
        if redis_url is None:
            bucket: Any = InMemoryBucket(rates)
        else:
            import redis

            bucket = RedisBucket.init(rates, redis.Redis.from_url(redis_url), f"bench-{key}")
        limiter = Limiter(bucket)
        return lambda: limiter.try_acquire(key, blocking=False)

    return make


def aiolimiter_async(key: str) -> Callable[[], Awaitable[Any]]:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(100000, 60)
    return limiter.acquire


def server_us(redis_url: str, steps: dict[str, Callable[[str], Callable[[], Any]]], number: int) -> dict[str, float]:
    """Redis server time per admission (all commands, from ``INFO commandstats``): the work
    each library gives the server, free of the client's scheduling noise."""
    import redis

    r = redis.Redis.from_url(redis_url)

    def busy() -> int:
        return sum(int(v["usec"]) for k, v in r.info("commandstats").items() if k not in ("cmdstat_info",))

    out = {}
    for label, make in steps.items():
        admit = make(uuid.uuid4().hex)
        admit()  # scripts loaded, connections made
        before = busy()
        for _ in range(number):
            admit()
        out[label] = (busy() - before) / number
    return out


def admission_cost(redis_url: str | None) -> dict[str, dict[str, float]]:
    from agentdiff_coordination import configure

    out: dict[str, dict[str, float]] = {}
    configure("memory://")
    out["memory, sync"] = best_us({
        "agentdiff acquire()": ours_sync,
        "agentdiff with": ours_with,
        "limits moving window": limits_sync("memory://", "MovingWindowRateLimiter"),
        "limits fixed window": limits_sync("memory://", "FixedWindowRateLimiter"),
        "pyrate-limiter": pyrate_sync(),
    })
    out["memory, async"] = best_us_async({
        "agentdiff acquire_async()": ours_async,
        "aiolimiter": aiolimiter_async,
        "limits.aio moving window": limits_async("async+memory://"),
    })
    if redis_url:
        configure(redis_url, key_prefix=f"bench-{uuid.uuid4().hex[:6]}")
        redis_sync = {
            "agentdiff acquire()": ours_sync,
            "limits moving window": limits_sync(redis_url, "MovingWindowRateLimiter"),
            "limits fixed window": limits_sync(redis_url, "FixedWindowRateLimiter"),
            "pyrate-limiter": pyrate_sync(redis_url),
        }
        out["redis, sync"] = best_us(redis_sync, number=N // 5)
        out["redis, server time"] = server_us(redis_url, redis_sync, N // 5)
        out["redis, async"] = best_us_async({
            "agentdiff acquire_async()": ours_async,
            "limits.aio moving window": limits_async("async+" + redis_url),
        }, number=N // 5)
        configure("memory://")
    return out


# -- workload 2: saturation --------------------------------------------------------------

RATE, PERIOD, DEMAND, THREADS = 100, 1.0, 300, 8


def most_in_a_window(times: list[float]) -> int:
    times = sorted(times)
    most, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + PERIOD:
            j += 1
        most = max(most, j - i)
    return most


def saturate_threads(admit: Callable[[], None]) -> list[float]:
    times: list[float] = []
    mutex = threading.Lock()
    per_thread = DEMAND // THREADS + 1

    def worker() -> None:
        for _ in range(per_thread):
            admit()
            with mutex:
                times.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def saturation() -> dict[str, dict[str, float]]:
    import limits
    from aiolimiter import AsyncLimiter
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate

    from agentdiff_coordination import configure, limit

    configure("memory://")
    runs: dict[str, list[float]] = {}
    ours = limit(f"sat-{uuid.uuid4().hex}", requests=f"{RATE}/s")
    runs["agentdiff"] = saturate_threads(lambda: ours.acquire() and None)

    moving = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.parse(f"{RATE}/second")

    def limits_admit() -> None:  # limits never waits: poll until the window has room
        while not moving.hit(item, "sat"):
            reset = moving.get_window_stats(item, "sat").reset_time
            time.sleep(max(0.0005, reset - time.time()))

    runs["limits moving window"] = saturate_threads(limits_admit)
    pyrate = Limiter(InMemoryBucket([Rate(RATE, Duration.SECOND)]))
    runs["pyrate-limiter"] = saturate_threads(lambda: pyrate.try_acquire("sat") and None)

    async def aio() -> list[float]:
        limiter = AsyncLimiter(RATE, PERIOD)
        times: list[float] = []

        async def worker() -> None:
            for _ in range(DEMAND // THREADS + 1):
                async with limiter:
                    times.append(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(THREADS)))
        return times

    runs["aiolimiter"] = asyncio.run(aio())
    out = {}
    for label, times in runs.items():
        first = min(times)
        used = sum(1 for t in times if t < first + 3 * PERIOD)
        out[label] = {"most in a 1 s window (limit 100)": most_in_a_window(times), "used over 3 periods": used / (3 * RATE)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("AGENTDIFF_TEST_REDIS_URL"), help="Redis URL for the Redis figures")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    figures = {"admission µs": admission_cost(args.redis), "saturation": saturation()}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"Admission cost, µs per admission (best of {REPEATS}); ratio = theirs / ours")
    for section, row in figures["admission µs"].items():
        ours = next(v for k, v in row.items() if k.startswith("agentdiff"))
        print(f"  {section}")
        for label, us in row.items():
            print(f"    {label:28s} {us:8.2f} µs   x{us / ours:5.2f}")
    print(f"Saturation: {THREADS} callers, {DEMAND} requests against {RATE}/s")
    for label, row in figures["saturation"].items():
        most, used = row.values()
        print(f"    {label:28s} most in any 1 s window {most:4.0f}   used {used:6.1%} of the limit over 3 s")


if __name__ == "__main__":
    main()
