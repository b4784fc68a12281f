"""A fleet against a provider's limits, and what ``limit_client`` costs per request, in one run.

    python benchmarks/bench_providers.py [--redis redis://127.0.0.1:6379/0] [--json]

Without ``--redis`` (or ``AGENTDIFF_TEST_REDIS_URL``) it starts a private redis-server.

1. The fleet: 4 processes of 8 agents (threads) send chat completions for a little
   more than 2 of the stand-in provider's minutes (a "minute" of 6 s, 40 requests and
   3000 tokens per minute, so tokens bind) through the real OpenAI SDK, three ways:
   ``limit_client`` on one limit shared on Redis (declared as the provider's limits
   over 1.05 of its minute), the bare SDK (its own retries only, 2 per call), and a
   per-process LangChain ``InMemoryRateLimiter`` given a quarter of the provider's
   requests per second. Figures: the provider's 429 answers, the calls that failed
   after the SDK's retries, and the share of the provider's allowance used in the
   first 2 minutes from its first answer (the larger of requests and tokens).
2. Per-request cost: one caller sends non-streamed chat completions one after the
   other to a stand-in in another process (no limits, no latency), with the raw SDK
   and with ``limit_client`` on a limit it never reaches, on the memory backend, then
   on Redis. The two clients take turns request by request; the figure is each one's
   median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

MODES = {"limit": "limit_client, shared Redis limit", "sdk": "SDK retries only", "inmemory": "InMemoryRateLimiter per process"}


def per_request(url: str, n: int = 1500) -> dict[str, float]:
    """Median µs per chat completion of each client, against a stand-in in another process:
    the raw SDK and ``limit_client`` take turns request by request (a busy spell hits both),
    first on the memory backend, then on Redis (the backend is per process)."""
    import openai

    from agentdiff_coordination import configure, limit
    from agentdiff_coordination.testing import reset as _reset_for_tests
    from agentdiff_coordination.integrations.openai import limit_client

    server = subprocess.Popen([sys.executable, "-m", "agentdiff_coordination.stand_in_provider"], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    messages = [{"role": "user", "content": "a question of about sixty characters, asked again and again"}]
    out: dict[str, float] = {}
    try:
        assert server.stdout is not None
        raw = openai.OpenAI(api_key="test", base_url=server.stdout.readline().strip() + "/v1", max_retries=0)
        for backend in ("memory", "Redis"):
            if backend == "Redis":
                configure(url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
            limit(f"bench-{backend}", requests="1000000/min", rate="100000000/min")
            clients = {f"raw SDK ({backend} run)": raw, f"limit_client ({backend})": limit_client(raw, f"bench-{backend}")}
            times: dict[str, list[float]] = {label: [] for label in clients}
            for client in clients.values():  # warm up: connections, models, scripts
                for _ in range(20):
                    client.chat.completions.create(model="m", messages=messages, max_tokens=16)
            for _ in range(n):
                for label, client in clients.items():
                    t0 = time.perf_counter()
                    client.chat.completions.create(model="m", messages=messages, max_tokens=16)
                    times[label].append(time.perf_counter() - t0)
            out.update({label: statistics.median(t) * 1e6 for label, t in times.items()})
        return out
    finally:
        server.terminate()
        server.wait()
        _reset_for_tests()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default=os.environ.get("AGENTDIFF_TEST_REDIS_URL"), help="a running redis-server")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    server = None
    url = opts.redis
    if url is None:
        from bench_redis import start_server

        server, url, _ = start_server()
    from tests.providers.fleet_worker import AGENTS, MINUTE, PROCESSES, R, T, fleet_figures

    try:
        fleets = {mode: fleet_figures(url, mode) for mode in MODES}
        cost = per_request(url)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    if opts.json:
        print(json.dumps({"fleet": fleets, "per_request_us": cost}, indent=2))
        return
    print(f"Fleet: {PROCESSES} processes x {AGENTS} agents, provider {R} requests and {T} tokens per {MINUTE:g} s minute")
    print("| fleet | 429 answers | calls failed after retries | calls | allowance used | busiest minute (requests, tokens) |")
    print("|---|---|---|---|---|---|")
    for mode, f in fleets.items():
        failed = f"{f['failed calls']}" + (f" (+{f['unreachable calls']} unreachable)" if f["unreachable calls"] else "")
        print(f"| {MODES[mode]} | {f['429s']} | {failed} | {f['calls']} | {f['allowance used']:.0%} | "
              f"{f['peak requests']}/{R}, {f['peak tokens']}/{T} |")
    print()
    print("| client | µs per chat completion (median) | ratio to the raw SDK in the same run |")
    print("|---|---|---|")
    for label, us in cost.items():
        backend = "Redis" if "Redis" in label else "memory"
        print(f"| {label} | {us:.0f} | {us / cost[f'raw SDK ({backend} run)']:.3f} |")


if __name__ == "__main__":
    main()
