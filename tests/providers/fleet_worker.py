"""A fleet of processes calling the stand-in provider: ``run_fleet`` starts them, ``main`` is one.

``run_fleet`` (used by ``test_fleet.py`` and ``benchmarks/bench_providers.py``) starts
the processes, releases them together and collects what each counted.

One process: python fleet_worker.py JSON
JSON keys: ``redis`` (URL), ``prefix``, ``base_url`` (the stand-in's OpenAI URL),
``mode``, ``agents``, ``seconds``, ``requests`` and ``tokens`` (the provider's limits
per ``period`` seconds), ``processes``, ``margin``, ``max_tokens``, ``max_retries``.
Says it is ready (``PREFIX:ready``), waits for its start (``PREFIX:go``), then runs
``agents`` threads that each send chat completions for ``seconds``, and prints one
JSON line: calls that succeeded, calls that failed with a 429 after the SDK's retries, and
calls that found no connection.

MODE ``limit``: ``limit_client`` on a limit shared on Redis, declared as the provider's
limits over ``period * margin`` seconds. MODE ``sdk``: the bare client (only the SDK's
retries). MODE ``inmemory``: a per-process ``InMemoryRateLimiter`` of LangChain, given
this process's share of the provider's requests (``requests / period / processes`` a
second) before each call.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import redis

ROOT = str(Path(__file__).resolve().parents[2])

# the fleet of the tests and the benchmark: a provider "minute" long enough that scheduling
# noise is small beside it; tokens bind (about 28 requests' worth a minute)
MINUTE, R, T = 6.0, 40, 3000
PROCESSES, AGENTS, MARGIN = 4, 8, 1.05


def fleet_figures(url: str, mode: str, minutes: int = 2) -> dict[str, Any]:
    """Run the fleet of ``mode`` for a little more than ``minutes`` of the stand-in's minutes and
    count: the provider's 429 answers, calls failed after the SDK's retries, the share of its
    allowance used in ``minutes`` full minutes from its first answer, its busiest minute."""
    from agentdiff_coordination.stand_in_provider import StandInProvider

    with StandInProvider(rpm=R, tpm=T, minute=MINUTE, latency=0.01, reply_tokens=32) as provider:
        counts = run_fleet(url, provider.openai_url, mode, processes=PROCESSES, agents=AGENTS, seconds=minutes * MINUTE + 1,
                           requests=R, tokens=T, period=MINUTE, margin=MARGIN, max_tokens=48, max_retries=2)
        stats = provider.stats()
        if stats.first is None:
            raise RuntimeError("the provider answered nothing")
        requests, tokens = provider.accepted_between(stats.first, stats.first + minutes * MINUTE)
    return {
        "429s": stats.rejected,
        "failed calls": sum(c["failed"] for c in counts),
        "unreachable calls": sum(c["unreachable"] for c in counts),
        "calls": sum(c["ok"] + c["failed"] for c in counts),
        "allowance used": max(requests / (minutes * R), tokens / (minutes * T)),
        "peak requests": stats.peak_requests,
        "peak tokens": stats.peak_tokens,
    }


def run_fleet(url: str, base_url: str, mode: str, *, processes: int, agents: int, seconds: float, **limits: Any) -> list[dict[str, int]]:
    """Run ``processes`` workers of ``agents`` agents each for ``seconds`` against ``base_url``;
    ``limits``: ``requests``, ``tokens``, ``period``, ``margin``, ``max_tokens``, ``max_retries``."""
    prefix = f"fleet-{uuid.uuid4().hex[:8]}"
    args = {"redis": url, "prefix": prefix, "base_url": base_url, "mode": mode, "agents": agents,
            "seconds": seconds, "processes": processes, **limits}
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, __file__, json.dumps(args)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    r = redis.Redis.from_url(url, socket_timeout=120)
    try:
        for _ in procs:
            if not r.blpop([f"{prefix}:ready"], timeout=60):
                raise RuntimeError("a fleet worker never became ready")
        r.rpush(f"{prefix}:go", *["go"] * processes)
        out = []
        for p in procs:
            stdout, _ = p.communicate(timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"fleet worker {p.pid} failed")
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)


def _warm_up(client: Any) -> None:
    """What a process does once, done before the start: the SDK's answer models are built (a
    pydantic build is not thread-safe), a connection is opened, the limit's scripts are loaded."""
    from openai.types.chat import ChatCompletion

    try:
        client.models.list()  # not a model call: the stand-in answers 404 and counts nothing
    except openai.NotFoundError:
        pass

    ChatCompletion.construct(**{
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })


def main() -> None:
    args: dict[str, Any] = json.loads(sys.argv[1])
    client = openai.OpenAI(api_key="test", base_url=args["base_url"], max_retries=args["max_retries"])
    before: Any = None
    if args["mode"] == "limit":
        from agentdiff_coordination import configure, limit
        from agentdiff_coordination.core.limits import Rate
        from agentdiff_coordination.integrations.openai import limit_client

        configure(args["redis"], key_prefix=args["prefix"])
        period = args["period"] * args["margin"]
        limit("provider", requests=Rate(args["requests"], period), rate=Rate(args["tokens"], period))
        client = limit_client(client, "provider")
        limit("warm-up", requests="1000/s").acquire()
    elif args["mode"] == "inmemory":
        from langchain_core.rate_limiters import InMemoryRateLimiter

        rps = args["requests"] / args["period"] / args["processes"]
        before = InMemoryRateLimiter(requests_per_second=rps, check_every_n_seconds=0.005, max_bucket_size=1).acquire
    _warm_up(client)
    r = redis.Redis.from_url(args["redis"], socket_timeout=120)
    r.rpush(f"{args['prefix']}:ready", "ready")
    r.blpop([f"{args['prefix']}:go"], timeout=60)
    end = time.monotonic() + args["seconds"]
    counts = {"ok": 0, "failed": 0, "unreachable": 0}
    lock = threading.Lock()

    def agent(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < end:
            prompt = "tell me more " * rng.randint(15, 30)  # 180-360 characters: 45-90 tokens
            if before is not None:
                before()
            try:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}], max_tokens=args["max_tokens"])
                outcome = "ok"
            except openai.RateLimitError:
                outcome = "failed"
            except openai.APIConnectionError:
                outcome = "unreachable"
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(args["agents"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
