"""status(): typed records, their JSON form, and the memory backend's snapshot."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading

import pytest

import agentdiff_coordination as ac
from agentdiff_coordination.core.coordinate import coordinate
from agentdiff_coordination.core.snapshots import (
    ConsumerStatus, EventsStatus, HolderInfo, LimitStatus, LockStatus, RateUse, Status,
)
from agentdiff_coordination.status import format_status, status


def full_status() -> Status:
    holder = HolderInfo("box", 12, "MainThread", "Task-3", "researcher")
    return Status(
        "redis://localhost:6379/0",
        (LockStatus("openai_api", holder, 7, 1.5, 28.5, 2), LockStatus("db", None, None, None, None, 1)),
        (LimitStatus("openai", (RateUse("90000/min", 1200, 90000), RateUse("concurrency", 1, 4)), 1, 0),),
        EventsStatus(3, 1, (ConsumerStatus("mod.fn:x_*", "box:12", 2, 0.25),)),
    )


def test_the_json_form_has_exactly_the_documented_keys() -> None:
    data = full_status().to_json()
    assert set(data) == {"backend", "locks", "limits", "events"}
    assert set(data["locks"][0]) == {"name", "holder", "fencing", "held_for", "lease_left", "waiting"}
    assert set(data["locks"][0]["holder"]) == {"host", "pid", "thread", "task", "step"}
    assert data["locks"][1]["holder"] is None
    assert set(data["limits"][0]) == {"name", "rates", "holders", "waiting"}
    assert set(data["limits"][0]["rates"][0]) == {"rate", "used", "limit"}
    assert set(data["events"]) == {"pending", "dead_letters", "consumers"}


def test_the_json_form_round_trips_through_json_text() -> None:
    snapshot = full_status()
    assert Status.from_json(json.loads(json.dumps(snapshot.to_json()))) == snapshot


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("backend",), 5, "backend"),
        (("locks", 0, "waiting"), "2", "waiting"),
        (("locks", 0, "holder", "pid"), True, "pid"),
        (("limits", 0, "rates"), {}, "rates"),
    ],
)
def test_from_json_names_the_bad_field(path: tuple[object, ...], value: object, message: str) -> None:
    data = full_status().to_json()
    target = data
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    with pytest.raises(TypeError, match=message):
        Status.from_json(data)


def test_from_json_names_a_missing_field() -> None:
    data = full_status().to_json()
    del data["events"]["pending"]
    with pytest.raises(ValueError, match="pending"):
        Status.from_json(data)


def test_memory_status_names_the_holder_its_step_and_the_waiters() -> None:
    holding, release = threading.Event(), threading.Event()

    @coordinate("researcher", lock_name="openai_api")
    def research() -> None:
        holding.set()
        release.wait(10)

    worker = threading.Thread(target=research, name="researcher-1")
    worker.start()
    assert holding.wait(10)
    def wait_for_it() -> None:
        with ac.lock("openai_api", timeout=10):
            pass

    waiter = threading.Thread(target=wait_for_it)
    try:
        waiter.start()
        for _ in range(1000):
            snapshot = status()
            if snapshot.locks and snapshot.locks[0].waiting == 1:
                break
            threading.Event().wait(0.005)
        (lock,) = snapshot.locks
        assert lock.name == "openai_api" and lock.waiting == 1
        assert lock.holder == HolderInfo(socket.gethostname(), os.getpid(), "researcher-1", None, "researcher")
        assert lock.fencing is not None and lock.held_for is not None and lock.held_for >= 0
    finally:
        release.set()
        worker.join()
        waiter.join()
    assert status().locks == ()


def test_memory_status_shows_limit_use_and_concurrency() -> None:
    openai = ac.limit("openai", rate="90000/min", requests="500/min", concurrency=4)
    with openai.acquire(cost=1200):
        (lim,) = status().limits
    assert lim.name == "openai" and lim.holders == 1 and lim.waiting == 0
    assert [r.to_json() for r in lim.rates] == [
        {"rate": "90000/min", "used": 1200, "limit": 90000},
        {"rate": "500/min requests", "used": 1, "limit": 500},
        {"rate": "concurrency", "used": 1, "limit": 4},
    ]


def test_memory_status_counts_dead_letters_and_lists_handlers() -> None:
    ac.configure(handler_retries=0)

    @ac.when("order_placed")
    def ship(data: object) -> None:
        raise ValueError("no address")

    ac.emit("order_placed", {"id": 1})
    assert ac.drain(5)
    events = status().events
    assert events.dead_letters == 1 and events.pending == 0
    assert [c.group for c in events.consumers] == [f"{__name__}.test_memory_status_counts_dead_letters_and_lists_handlers.<locals>.ship:order_placed"]


def test_status_of_an_async_holder_is_shown_while_it_holds() -> None:
    async def main() -> Status:
        async with ac.lock("db"):
            return status()

    (lock,) = asyncio.run(main()).locks
    assert lock.name == "db" and lock.holder is not None and lock.waiting == 0


def test_format_status_draws_each_table() -> None:
    text = format_status(full_status())
    assert "openai_api" in text and "researcher on box:12 task Task-3" in text
    assert "1200/90000 (90000/min)" in text and "mod.fn:x_*" in text
    assert "dead letters 1" in text
