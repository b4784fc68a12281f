"""Several processes, one Redis: a shared lock and events handled across the fleet.

    python examples/multiprocess_redis.py [redis://host:6379/0]

Without a URL it starts a private redis-server on a free local port (Debian/Ubuntu:
``apt-get install redis-server``) and stops it at the end. Three worker processes
("agents") each update one shared ledger file 20 times as a coordinated step holding
``lock("ledger")``; the main process hears every step's ``*_update_complete`` event,
and the workers share one subscription to ``audit`` events, so each audit is handled
by exactly one of them. The script prints what happened and checks it: no update
lost, every event handled.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agentdiff_coordination import configure, coordinate, drain, emit, when

UPDATES = 20


def agent(url: str, prefix: str, name: str, ledger: str, audits: str, ready: Any) -> None:
    """One worker process: update the ledger under the shared lock, and handle audits."""
    configure(url, key_prefix=prefix)

    @when("audit", group="auditors")  # one subscription for every worker: each audit handled once
    def audit(data: dict[str, int]) -> None:
        with open(audits, "a") as f:
            f.write(f"{data['n']} {name}\n")

    ready.release()

    @coordinate(f"{name}_update", lock_name="ledger")
    def update(i: int) -> dict[str, int]:
        path = Path(ledger)
        entries = json.loads(path.read_text())
        entries.append({"agent": name, "i": i})
        path.write_text(json.dumps(entries))
        return {"entries": len(entries)}

    for i in range(UPDATES):
        update(i)
    drain(30)


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: install it (apt-get install redis-server) or pass a redis:// URL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tempfile.gettempdir(), "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import redis

    for _ in range(250):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    server = None
    url = sys.argv[1] if len(sys.argv) > 1 else None
    if url is None:
        server, url = start_redis()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp())
    ledger, audits = workdir / "ledger.json", workdir / "audits.txt"
    ledger.write_text("[]")
    audits.touch()
    try:
        configure(url, key_prefix=prefix)
        updates: list[dict[str, object]] = []

        @when("*_update_complete")  # lifecycle events of the workers' steps, from every process
        def seen(data: dict[str, object]) -> None:
            updates.append(data)

        ctx = multiprocessing.get_context("spawn")
        names = ["alpha", "beta", "gamma"]
        ready = ctx.Semaphore(0)
        procs = [ctx.Process(target=agent, args=(url, prefix, n, str(ledger), str(audits), ready)) for n in names]
        for p in procs:
            p.start()
        for _ in procs:  # every worker has subscribed to "audit"
            ready.acquire(timeout=60)
        for n in range(30):
            emit("audit", {"n": n})
        for p in procs:
            p.join(120)
        drain(30)

        entries = json.loads(ledger.read_text())
        handled = [line.split() for line in audits.read_text().splitlines()]
        print(f"{len(procs)} processes each made {UPDATES} updates under lock('ledger') on Redis:")
        print(f"  ledger entries: {len(entries)} (expected {len(procs) * UPDATES}: no update lost)")
        print(f"  '*_update_complete' events seen by the main process: {len(updates)}")
        by_worker = {n: sum(1 for _, w in handled if w == n) for n in names}
        print(f"  30 'audit' events handled by the workers' shared subscription: {len(handled)} {by_worker}")
        assert len(entries) == len(procs) * UPDATES, "an update was lost"
        assert len(updates) == len(procs) * UPDATES, "a lifecycle event was missed"
        assert sorted(int(n) for n, _ in handled) == list(range(30)), "an audit was missed or repeated"
        print("all checks passed")
    finally:
        configure("memory://")
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
