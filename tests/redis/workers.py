"""Worker processes for the multi-process Redis tests: ``python -m tests.redis.workers ROLE JSON``.

Each role configures the Redis backend from its JSON arguments (``url``, ``prefix``
and backend options), does one job and reports in JSON lines on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agentdiff_coordination import (
    BackendUnavailableError,
    CoordinationTimeoutError,
    LeaseLostError,
    configure,
    emit,
    lock,
    when,
)
from agentdiff_coordination.core.backends.redis import RedisBackend




def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def backend(args: dict[str, Any], **options: Any) -> RedisBackend:
    b = RedisBackend(args["url"], key_prefix=args["prefix"], **args.get("options", {}), **options)
    configure(b)
    return b


def increment(args: dict[str, Any]) -> None:
    """Add one to the number in a file, ``n`` times, each time under the lock."""
    backend(args)
    path = Path(args["path"])
    for _ in range(args["n"]):
        with lock("counter"):
            value = int(path.read_text() or "0")
            path.write_text(str(value + 1))
    say("done")


def hold(args: dict[str, Any]) -> None:
    """Take a lock, say so, and release it when told (reporting a lost lease)."""
    lost: list[str] = []
    backend(args, on_lease_lost=lambda grant, error: lost.append(str(error)))
    held = lock(args["name"])
    held.__enter__()
    say("holding", fencing=held.fencing, pid=os.getpid())
    sys.stdin.readline()
    try:
        held.__exit__(None, None, None)
    except LeaseLostError as exc:
        say("lost", error=str(exc), fencing=exc.fencing, callback=lost)
    else:
        say("released", callback=lost)


def acquire(args: dict[str, Any]) -> None:
    """Wait for a lock; say when it was had, with its fencing number."""
    backend(args)
    say("waiting")
    with lock(args["name"], timeout=args.get("timeout")) as held:
        say("acquired", fencing=held.fencing, at=time.time())


def handle(data: dict[str, Any]) -> None:
    """The shared handler of the ``consume`` role: record the job; block on the ones asked."""
    i = data["i"]
    if i in ARGS.get("block_on", []):
        say("blocking", i=i)
        threading.Event().wait()  # until this process is killed
    with open(ARGS["ledger"], "a") as f:  # one short append per line: lines never interleave
        f.write(f"{i} {os.getpid()}\n")


ARGS: dict[str, Any] = {}


def consume(args: dict[str, Any]) -> None:
    """Handle ``job`` events (group shared with the other consumers) until told to stop."""
    ARGS.update(args)
    backend(args)
    when("job")(handle)  # one group for every consumer process: __main__.handle:job
    say("ready", pid=os.getpid())
    sys.stdin.readline()
    say("stopping")


def produce(args: dict[str, Any]) -> None:
    """Emit ``job`` events with ``{"i": i}`` for i in range(start, start + n)."""
    backend(args)
    for i in range(args.get("start", 0), args.get("start", 0) + args["n"]):
        emit("job", {"i": i})
    say("emitted")


def fenced_rounds(args: dict[str, Any]) -> None:
    """Take the lock again and again for ``seconds``, logging each critical section.

    A section is logged as ``start end fencing outcome`` where outcome is ``ok``,
    ``lost`` (a LeaseLostError at release or the lease-lost callback) or ``error``.
    Errors of an unreachable Redis are counted, then retried.
    """
    lost: set[int] = set()
    backend(args, on_lease_lost=lambda grant, error: lost.add(grant.fencing))
    log = open(args["log"], "a")
    unavailable = timeouts = rounds = 0
    stop_at = time.monotonic() + args["seconds"]
    say("started")
    while time.monotonic() < stop_at:
        held = lock("fenced", timeout=1.0)
        try:
            held.__enter__()
        except BackendUnavailableError:
            unavailable += 1
            time.sleep(0.02)
            continue
        except CoordinationTimeoutError:
            timeouts += 1
            continue
        start, fencing = time.time(), held.fencing or 0
        time.sleep(0.005)
        end = time.time()  # the section's work is over; the release follows
        outcome = "ok"
        try:
            held.__exit__(None, None, None)
        except LeaseLostError:
            outcome = "lost"
        except BackendUnavailableError:
            unavailable += 1
            outcome = "error"
        if fencing in lost:
            outcome = "lost"
        log.write(f"{start} {end} {fencing} {outcome}\n")
        log.flush()
        rounds += 1
    log.close()
    say("finished", unavailable=unavailable, timeouts=timeouts, rounds=rounds)


ROLES = {f.__name__: f for f in (increment, hold, acquire, consume, produce, fenced_rounds)}

if __name__ == "__main__":
    role, raw = sys.argv[1], sys.argv[2]
    ROLES[role](json.loads(raw))
