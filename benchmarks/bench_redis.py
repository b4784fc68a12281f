"""The Redis backend against redis-py's own ``Lock``, on one redis-server, in one run.

    python benchmarks/bench_redis.py [--url redis://127.0.0.1:6379/0] [--quick] [--json]

Without ``--url`` it starts a private redis-server on a free loopback port (and stops
it). It prints one table:

- uncontended acquire+release pairs per second, in one process (best of several
  rounds, the two locks taking turns so slow spells of a busy machine hit both);
- hand-off to a waiting process: two processes take one lock in turns, each holding
  it 20 to 120 ms (at random) while the other waits; the figure is the time from the
  holder starting its release to the other process holding the lock (p50, p90), on
  the system-wide monotonic clock;
- crash takeover: a holder is killed with SIGKILL; the time until a waiting process
  holds the lock, next to the lease (redis-py's lock is not renewed: it expires
  ``timeout`` seconds after it was taken, whether its holder lives or not, so its
  figure is only what was left of that timeout);
- events across processes: one process emits, another handles (one subscription);
  events per second for a burst (from the first emit to the last handled), and the
  latency from emit to handler start (p50, p90) at a steady 1,000 events per second.

Figures depend on the machine and its load; compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))

HOLD = (0.02, 0.12)  # seconds a holder keeps the lock in the hand-off test (uniform)
LEASE = 2.0  # seconds of lease in the crash test


# -- worker processes (python bench_redis.py worker ROLE JSON) ------------------------------


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _our_backend(url: str, prefix: str, **options: Any) -> Any:
    from agentdiff_coordination import configure
    from agentdiff_coordination.core.backends.redis import RedisBackend

    try:  # until the runtime attaches backends itself (the old bus calls bind())
        from tests.redis import bridge  # noqa: F401
    except ImportError:
        pass

    backend = RedisBackend(url, key_prefix=prefix, **options)
    configure(backend)
    return backend


def worker_turns(args: dict[str, Any]) -> None:
    """Take the lock ``rounds`` times; log when each turn began and when its release began."""
    import redis

    turns = []
    counter = redis.Redis.from_url(args["url"])
    ctr_key = f"{args['prefix']}:turn"
    if args["kind"] == "ours":
        from agentdiff_coordination import lock

        _our_backend(args["url"], args["prefix"])
        held = lock("handoff")

        def enter() -> None:
            held.__enter__()

        def leave() -> None:
            held.__exit__(None, None, None)
    else:
        rlock = counter.lock(f"{args['prefix']}:handoff", timeout=30, sleep=0.1)

        def enter() -> None:
            rlock.acquire(blocking=True)

        def leave() -> None:
            rlock.release()

    _say(event="ready")
    sys.stdin.readline()
    for _ in range(args["rounds"]):
        enter()
        got = time.monotonic()
        turn = int(counter.incr(ctr_key))
        time.sleep(random.uniform(*HOLD))  # the other process is waiting meanwhile
        release = time.monotonic()
        leave()
        turns.append((turn, got, release, os.getpid()))
        # no barging: let the other process have its turn before asking again
        deadline = time.monotonic() + 1.0
        while int(counter.get(ctr_key) or 0) == turn and time.monotonic() < deadline:
            time.sleep(0.0005)
    _say(event="turns", turns=turns)


def worker_hold(args: dict[str, Any]) -> None:
    """Take the lock, say so, and wait to be killed."""
    if args["kind"] == "ours":
        from agentdiff_coordination import lock

        _our_backend(args["url"], args["prefix"], lease=LEASE)
        lock("crash").__enter__()
    else:
        import redis

        redis.Redis.from_url(args["url"]).lock(f"{args['prefix']}:crash", timeout=LEASE).acquire()
    _say(event="holding")
    time.sleep(3600)


def worker_take(args: dict[str, Any]) -> None:
    """Wait for the lock; say when it was had."""
    if args["kind"] == "ours":
        from agentdiff_coordination import lock

        _our_backend(args["url"], args["prefix"], lease=LEASE)
        _say(event="waiting")
        with lock("crash"):
            _say(event="acquired", at=time.monotonic())
    else:
        import redis

        rlock = redis.Redis.from_url(args["url"]).lock(f"{args['prefix']}:crash", timeout=LEASE, sleep=0.1)
        _say(event="waiting")
        rlock.acquire(blocking=True)
        _say(event="acquired", at=time.monotonic())
        rlock.release()


def worker_consume(args: dict[str, Any]) -> None:
    """Handle ``bench`` events: note the latency of each, report when ``n`` were handled."""
    import threading

    from agentdiff_coordination import when

    _our_backend(args["url"], args["prefix"])
    latencies: list[float] = []
    done = threading.Event()

    @when("bench")
    def handle(data: dict[str, Any]) -> None:
        latencies.append(time.monotonic() - data["t"])
        if len(latencies) == args["n"]:
            done.set()

    _say(event="ready")
    done.wait(300)
    _say(event="handled", last=time.monotonic(), latencies=latencies if args.get("report") else [],
         count=len(latencies))


def worker_produce(args: dict[str, Any]) -> None:
    """Emit ``n`` events, at ``rate`` per second (0: as fast as possible)."""
    from agentdiff_coordination import drain, emit

    _our_backend(args["url"], args["prefix"])
    sys.stdin.readline()
    rate = args["rate"]
    start = time.monotonic()
    for i in range(args["n"]):
        if rate:
            due = start + i / rate
            while time.monotonic() < due:
                time.sleep(max(0.0, due - time.monotonic() - 0.0002))
        emit("bench", {"i": i, "t": time.monotonic()})
    drain(60)
    _say(event="emitted", first=start)


WORKERS = {
    "turns": worker_turns, "hold": worker_hold, "take": worker_take,
    "consume": worker_consume, "produce": worker_produce,
}


class Proc:
    def __init__(self, role: str, **args: Any) -> None:
        self.p = subprocess.Popen(
            [sys.executable, str(HERE), "worker", role, json.dumps(args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def read(self) -> dict[str, Any]:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"a benchmark worker exited with {self.p.wait()}")
        return dict(json.loads(line))

    def expect(self, event: str) -> dict[str, Any]:
        while True:
            msg = self.read()
            if msg.get("event") == event:
                return msg

    def go(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


# -- measurements ----------------------------------------------------------------------


def pairs_per_second(url: str, rounds: int, n: int) -> dict[str, float]:
    import redis

    from agentdiff_coordination import lock

    _our_backend(url, f"bench-{uuid.uuid4().hex[:6]}")
    client = redis.Redis.from_url(url)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"

    def ours() -> None:
        for _ in range(n):
            with lock("pairs"):
                pass

    def theirs() -> None:
        for _ in range(n):
            rlock = client.lock(f"{prefix}:pairs", timeout=30)
            rlock.acquire()
            rlock.release()

    def pings() -> None:  # the floor: one bare round trip, twice per pair
        for _ in range(n):
            client.ping()

    best = {"ours": 0.0, "redis-py": 0.0, "ping": 0.0}
    for _ in range(3):  # warm both up (and the fresh server)
        ours()
        theirs()
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("redis-py", theirs), ("ping", pings)):
            t = time.perf_counter()
            fn()
            best[name] = max(best[name], n / (time.perf_counter() - t))
    return best


def handoff(url: str, kind: str, rounds: int) -> list[float]:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    procs = [Proc("turns", url=url, prefix=prefix, kind=kind, rounds=rounds) for _ in range(2)]
    try:
        for p in procs:
            p.expect("ready")
        for p in procs:
            p.go()
        turns = sorted(t for p in procs for t in p.expect("turns")["turns"])
    finally:
        for p in procs:
            p.kill()
    # from the start of a release to the other process holding the lock
    return [b[1] - a[2] for a, b in zip(turns, turns[1:]) if a[3] != b[3] and b[0] == a[0] + 1]


def takeover(url: str, kind: str, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        holder = Proc("hold", url=url, prefix=prefix, kind=kind)
        taker = None
        try:
            holder.expect("holding")
            taker = Proc("take", url=url, prefix=prefix, kind=kind)
            taker.expect("waiting")
            time.sleep(0.2)  # the taker is queued (or polling)
            killed = time.monotonic()
            os.kill(holder.p.pid, signal.SIGKILL)
            out.append(taker.expect("acquired")["at"] - killed)
        finally:
            holder.kill()
            if taker is not None:
                taker.kill()
    return out


def events(url: str, n: int, rate: float) -> tuple[float, list[float]]:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    consumer = Proc("consume", url=url, prefix=prefix, n=n, report=bool(rate))
    producer = Proc("produce", url=url, prefix=prefix, n=n, rate=rate)
    try:
        consumer.expect("ready")
        time.sleep(0.3)
        producer.go()
        handled = consumer.expect("handled")
        emitted = producer.expect("emitted")
    finally:
        producer.kill()
        consumer.kill()
    return n / (handled["last"] - emitted["first"]), handled["latencies"]


def waiters(url: str, n: int, cap: float) -> dict[str, float]:
    """``n`` asyncio tasks of one process queue for one held lock; then it is released.
    Hand-offs per second until all are served (or ``cap`` seconds pass), and how many
    were served out of their arrival order (tasks arrive in batches of 100)."""
    import asyncio

    from agentdiff_coordination import lock

    backend = _our_backend(url, f"bench-{uuid.uuid4().hex[:6]}")

    def waiting() -> int:  # queued in Redis
        return int(backend.client.zcard(backend.key("lockq", "crowd")))

    served: list[int] = []

    async def wait(i: int) -> None:
        async with lock("crowd"):
            served.append(i)

    async def run() -> tuple[float, int]:
        # the holder is another call chain (a task made inside ``async with`` would re-enter it)
        held = await backend.acquire_lock_async("crowd", "holder", None)
        tasks = []
        for start in range(0, n, 100):  # batches: every task of a batch arrives before the next batch
            tasks += [asyncio.ensure_future(wait(i)) for i in range(start, min(n, start + 100))]
            deadline = time.monotonic() + 30
            while waiting() < len(tasks) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
        t = time.perf_counter()
        await backend.release_lock_async(held)
        done, pending = await asyncio.wait(tasks, timeout=cap)
        elapsed = time.perf_counter() - t
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return elapsed, len(done)

    elapsed, done = asyncio.run(run())
    out_of_order = sum(1 for a, b in zip(served, served[1:]) if b // 100 < a // 100)
    return {"n": n, "served": done, "seconds": elapsed, "per_s": done / elapsed, "out_of_order": out_of_order}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def start_server() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed; give --url of a running server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    return proc, url, workdir


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        WORKERS[sys.argv[2]](json.loads(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running redis-server (default: start a private one)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--only-waiters", action="store_true", help="only the many-waiters figures")
    parser.add_argument("--waiters-cap", type=float, default=120.0, help="seconds the 10,000 waiters may take")
    opts = parser.parse_args()
    server = None
    url = opts.url
    if url is None:
        server, url, workdir = start_server()
    try:
        q = opts.quick
        crowd = {n: waiters(url, n, opts.waiters_cap) for n in (100, 10_000)}
        if opts.only_waiters:
            print(json.dumps(crowd, indent=2))
            return
        pairs = pairs_per_second(url, rounds=3 if q else 5, n=1000 if q else 3000)
        hand = {k: handoff(url, k, rounds=20 if q else 60) for k in ("ours", "redis-py")}
        crash = {k: takeover(url, k, repeats=1 if q else 3) for k in ("ours", "redis-py")}
        burst, _ = events(url, n=20_000 if q else 50_000, rate=0)
        _, latencies = events(url, n=1000 if q else 3000, rate=1000)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
            shutil.rmtree(workdir, ignore_errors=True)
    figures = {
        "pairs_per_s": pairs,
        "handoff_ms": {k: {"p50": pct(v, 0.5) * 1e3, "p90": pct(v, 0.9) * 1e3} for k, v in hand.items()},
        "takeover_s": {k: {"max": max(v), "median": statistics.median(v)} for k, v in crash.items()},
        "lease_s": LEASE,
        "waiters": crowd,
        "events": {"per_s": burst, "p50_ms": pct(latencies, 0.5) * 1e3, "p90_ms": pct(latencies, 0.9) * 1e3},
    }
    if opts.json:
        print(json.dumps(figures, indent=2))
        return
    rows = [
        ("uncontended acquire+release, pairs/s", f"{pairs['ours']:,.0f}", f"{pairs['redis-py']:,.0f}",
         f"{pairs['ours'] / pairs['redis-py']:.2f}x"),
        ("bare PING round trips/s (2 per pair at best)", f"{pairs['ping']:,.0f}", "", ""),
        ("hand-off to a waiting process, p50 ms", f"{figures['handoff_ms']['ours']['p50']:.2f}",
         f"{figures['handoff_ms']['redis-py']['p50']:.2f}", ""),
        ("hand-off to a waiting process, p90 ms", f"{figures['handoff_ms']['ours']['p90']:.2f}",
         f"{figures['handoff_ms']['redis-py']['p90']:.2f}", ""),
        (f"crash takeover, s (lease {LEASE:g} s), worst", f"{figures['takeover_s']['ours']['max']:.2f}",
         f"{figures['takeover_s']['redis-py']['max']:.2f}*", ""),
        ("100 waiters on one lock, hand-offs/s", f"{crowd[100]['per_s']:,.0f}", "-", ""),
        ("10,000 waiters on one lock, hand-offs/s", f"{crowd[10_000]['per_s']:,.0f}", "-",
         f"{crowd[10_000]['per_s'] / crowd[100]['per_s']:.2f}x"),
        ("10,000 waiters: served / out of order",
         f"{crowd[10_000]['served']:.0f}/{crowd[10_000]['out_of_order']:.0f}", "-", ""),
        ("events across processes, events/s (burst)", f"{burst:,.0f}", "-", ""),
        ("event latency at 1,000/s, p50 ms", f"{figures['events']['p50_ms']:.2f}", "-", ""),
        ("event latency at 1,000/s, p90 ms", f"{figures['events']['p90_ms']:.2f}", "-", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'ours':>10}  {'redis-py':>10}  {'':>6}")
    for name, a, b, c in rows:
        print(f"{name:{width}}  {a:>10}  {b:>10}  {c:>6}")
    print(f"* redis-py's lock is not renewed: it expires {LEASE:g} s after it was taken, whether its holder")
    print("  lives or not; the figure is only what was left of that time when the holder was killed.")


if __name__ == "__main__":
    main()
