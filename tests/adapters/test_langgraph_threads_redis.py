"""``serialize_threads`` across processes: two processes, one Redis, one shared SQLite checkpointer.

Both processes run the same thread again and again. Without ``serialize_threads`` their
runs overlap (each node waits until the other process's node has entered too), and the
thread's checkpoint history forks. With it, each node waits until the other process has
a run queued, so the contention is real, and the history stays one line: every
checkpoint's parent is the one before it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.sqlite")

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(60)]

ROUNDS = 4
ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent('''
    import operator, sys, time
    from typing import Annotated
    import redis
    from typing_extensions import TypedDict
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import START, StateGraph
    from agentdiff_coordination import configure
    from agentdiff_coordination.adapters.langgraph import serialize_threads

    url, prefix, path, me, other, rounds, serialized = sys.argv[1:8]
    rounds, serialized = int(rounds), serialized == "1"
    configure(url, key_prefix=prefix)
    r = redis.Redis.from_url(url)
    key = lambda what, who: f"{prefix}:probe:{what}:{who}"
    count = lambda what, who: int(r.get(key(what, who)) or 0)

    class Chat(TypedDict):
        turns: Annotated[list, operator.add]

    def reply(state):
        if r.incr(f"{prefix}:probe:inside") > 1:
            r.incr(f"{prefix}:probe:overlaps")
        entered = r.incr(key("entered", me))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if serialized:  # go on once the other process has a run waiting (or is done)
                if count("started", other) > count("finished", other) or count("finished", other) >= rounds:
                    break
            elif count("entered", other) >= entered:  # both nodes inside at once
                break
            time.sleep(0.002)
        r.decr(f"{prefix}:probe:inside")
        return {"turns": [f"reply-{me}"]}

    builder = StateGraph(Chat)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    with SqliteSaver.from_conn_string(path) as saver:
        graph = builder.compile(checkpointer=saver)
        if serialized:
            graph = serialize_threads(graph)
        for i in range(rounds):
            r.incr(key("started", me))
            graph.invoke({"turns": [f"{me}-{i}"]}, {"configurable": {"thread_id": "shared"}})
            r.incr(key("finished", me))
    print("done")
''')


def run_two_processes(redis_url: str, path: Path, serialized: bool) -> dict[str, Any]:
    import redis

    from langgraph.checkpoint.sqlite import SqliteSaver

    prefix = f"test-threads-{uuid.uuid4().hex[:8]}"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()  # the tables, once, before two processes race to make them
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, prefix, str(path), me, other, str(ROUNDS), "1" if serialized else "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for me, other in (("p1", "p2"), ("p2", "p1"))
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=50)
        assert proc.returncode == 0 and "done" in out, err[-3000:]
    client = redis.Redis.from_url(redis_url)
    overlaps = int(client.get(f"{prefix}:probe:overlaps") or 0)
    with SqliteSaver.from_conn_string(str(path)) as saver:
        config = {"configurable": {"thread_id": "shared"}}
        parents = [t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None
                   for t in saver.list(config)]
        latest = saver.get_tuple(config)
        assert latest is not None
        turns = latest.checkpoint["channel_values"]["turns"]
    return {"overlaps": overlaps, "forks": len(parents) - len(set(parents)), "turns": len(turns)}


def test_without_serialize_threads_two_processes_fork_the_threads_history(redis_url: str, tmp_path: Path) -> None:
    seen = run_two_processes(redis_url, tmp_path / "checkpoints.sqlite", serialized=False)
    assert seen["overlaps"] > 0 and seen["forks"] > 0
    assert seen["turns"] < 2 * 2 * ROUNDS  # turns of overlapping runs were lost on the surviving branch


def test_with_serialize_threads_two_processes_keep_one_linear_history(redis_url: str, tmp_path: Path) -> None:
    seen = run_two_processes(redis_url, tmp_path / "checkpoints.sqlite", serialized=True)
    assert seen == {"overlaps": 0, "forks": 0, "turns": 2 * 2 * ROUNDS}
