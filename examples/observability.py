"""See who holds, who waits, and where the time went.

Three researcher threads share one stand-in LLM API behind the lock ``openai_api``.
While the first one holds it, ``status()`` shows the holder (its step, thread, process)
and the two waiters; the whole run is recorded with ``record(path)`` and drawn with the
timeline command into ``timeline.html`` (open it in a browser). Offline, in-memory.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import agentdiff_coordination as ac
from agentdiff_coordination.cli import main as cli
from agentdiff_coordination.recording import record
from agentdiff_coordination.status import format_status, status

holding = threading.Event()


@ac.coordinate("researcher", lock_name="openai_api")
def research(topic: str) -> str:
    holding.set()
    time.sleep(0.2)  # the model "thinks"
    return f"notes on {topic}"


def wait_until_queued(waiters: int) -> None:
    for _ in range(500):
        locks = status().locks
        if locks and locks[0].waiting == waiters:
            return
        time.sleep(0.01)


folder = Path(tempfile.mkdtemp())
with record(folder / "run-{pid}.jsonl"):
    first = threading.Thread(target=research, args=("agents",), name="researcher-1")
    first.start()
    holding.wait()
    others = [threading.Thread(target=research, args=(t,), name=f"researcher-{i}") for i, t in ((2, "locks"), (3, "limits"))]
    for t in others:
        t.start()
    wait_until_queued(2)
    snapshot = status()
    print(format_status(snapshot))
    print(json.dumps(snapshot.to_json()["locks"][0]["holder"]))
    for t in [first, *others]:
        t.join()

cli(["timeline", *map(str, folder.glob("run-*.jsonl")), "-o", "timeline.html"])
(lock,) = snapshot.locks
ok = lock.holder is not None and lock.holder.step == "researcher" and lock.holder.thread == "researcher-1" and lock.waiting == 2
print("status showed the holder and both waiters" if ok else "status did not show the holder and its waiters")
