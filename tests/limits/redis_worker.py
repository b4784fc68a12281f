"""One process of the multi-process limit tests (run as a script, not collected).

Usage: python redis_worker.py URL PREFIX MODE COUNT [COST]
Says it is ready (pushes to ``PREFIX:ready``) and waits for its start signal (one
item pushed to ``PREFIX:go``), then admits COUNT
times through the limit of MODE and prints one JSON line: what it observed.

MODE ``rate``: ``limit("shared", requests="40/s")``; prints the admission times
(the server's clock). MODE ``tokens``: ``limit("shared", rate="300/s")`` with cost
COST; prints (time, cost) pairs. MODE ``slots``: ``limit("shared", concurrency=3)``; counts the
holders at once in a Redis counter and prints the most it saw. MODE ``hold``: takes
one slot of ``limit("held", concurrency=1)``, says so, and waits to be killed.
MODE ``backoff``: backs ``limit("fleet", requests="1000/s")`` off for COST seconds and
prints the server's time just before. MODE ``queue``: waits for its own start signal
(``PREFIX:go:COUNT``), admits once through that limit and prints when.
"""

from __future__ import annotations

import json
import sys
import time

import redis

from agentdiff_coordination import configure, limit


def main() -> None:
    url, prefix, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    configure(url, key_prefix=prefix)
    r = redis.Redis.from_url(url)
    if mode == "hold":
        held = limit("held", concurrency=1).acquire()
        print(json.dumps({"holding": held.admitted_at}), flush=True)
        time.sleep(600)  # killed by the test
        return
    r.rpush(f"{prefix}:ready", "ready")
    if mode == "queue":
        r.blpop([f"{prefix}:go:{count}"], timeout=60)
        permit = limit("fleet", requests="1000/s").acquire()
        print(json.dumps({"index": count, "at": permit.admitted_at}), flush=True)
        return
    r.blpop([f"{prefix}:go"], timeout=60)
    if mode == "backoff":
        seconds, micros = r.time()
        limit("fleet", requests="1000/s").backoff(float(sys.argv[5]))
        print(json.dumps({"before": seconds + micros / 1e6}), flush=True)
        return
    if mode == "rate":
        api = limit("shared", requests="40/s")
        times = []
        for _ in range(count):
            with api as permit:
                times.append(permit.admitted_at)
        print(json.dumps({"times": times}), flush=True)
    elif mode == "tokens":
        cost = int(sys.argv[5])
        tokens = limit("shared", rate="300/s")
        admitted = []
        for _ in range(count):
            with tokens(cost=cost) as permit:
                admitted.append((permit.admitted_at, cost))
        print(json.dumps({"admitted": admitted}), flush=True)
    elif mode == "slots":
        slots = limit("shared", concurrency=3)
        most = 0
        for _ in range(count):
            with slots:
                most = max(most, int(r.incr(f"{prefix}:inside")))
                time.sleep(0.02)  # the work done while holding a slot
                r.decr(f"{prefix}:inside")
        print(json.dumps({"most": most}), flush=True)


if __name__ == "__main__":
    main()
