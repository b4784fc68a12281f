"""Worker processes of the reliability tests: ``python -m tests.reliability.workers ROLE JSON``.

Each role configures its backend from the URL it is given (``?prefix=...`` included),
through the public API only, and reports in JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from agentdiff_coordination import configure, lock


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def hold(args: dict[str, Any]) -> None:
    """Take lock ``name``, say so, release it when told (a line on stdin), say so."""
    configure(args["url"])
    held = lock(args["name"])
    held.__enter__()
    say("holding", fencing=held.fencing, pid=os.getpid())
    sys.stdin.readline()
    released = time.time()
    try:
        held.__exit__(None, None, None)
    finally:
        say("released", at=released)
    sys.stdin.readline()  # stay alive (and registered) until told to go


def waiters(args: dict[str, Any]) -> None:
    """``per_wave`` asyncio tasks per wave wait for lock ``name``; wave ``w`` starts at
    wall time ``start_at + w * gap``. Reports every grant as ``[wave, fencing, wall time]``,
    or what was served when ``cap`` seconds passed after the last wave."""
    configure(args["url"])
    asyncio.run(_waiters(args))
    sys.stdout.flush()
    os._exit(0)  # waiters cut off at the cap must not hold up the exit


async def _waiters(args: dict[str, Any]) -> None:
    name, served = args["name"], []

    async def one(wave: int) -> None:
        held = lock(name)
        async with held:
            served.append([wave, held.fencing, time.time()])

    tasks: list[asyncio.Task[None]] = []
    for wave in range(args["waves"]):
        await asyncio.sleep(max(0.0, args["start_at"] + wave * args["gap"] - time.time()))
        tasks += [asyncio.create_task(one(wave)) for _ in range(args["per_wave"])]
        say("wave", wave=wave)
    done, pending = await asyncio.wait(tasks, timeout=args["cap"])
    errors = [repr(t.exception()) for t in done if t.exception() is not None]
    say("served", served=served, waiting=len(pending), failed=len(errors), errors=errors[:3])


ROLES = {"hold": hold, "waiters": waiters}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
