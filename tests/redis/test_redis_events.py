"""Events on Redis Streams: JSON payloads, consumer groups, dead letters, trimming.

The event semantics shared with the memory backend (patterns, order, retries, drain,
wait_for) run in ``tests/conformance`` against Redis too; the tests across processes
are in ``test_redis_processes.py``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import pytest
import redis

from agentdiff_coordination import coordinate, configure, drain, emit, when
from agentdiff_coordination.core.backends.redis import RedisBackend
from agentdiff_coordination.core.backends.redis.codec import json_form
from agentdiff_coordination.core.backends.redis.scripts import TRIM

from .support import HANG

pytestmark = pytest.mark.redis


@dataclasses.dataclass
class Reply:
    """Stands in for an LLM response object."""

    text: str
    tokens: int


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def entries(url: str, stream: str) -> list[dict[str, Any]]:
    out = []
    for entry_id, fields in redis.Redis.from_url(url).xrange(stream):
        decoded = {k.decode(): v.decode() for k, v in fields.items()}
        decoded["_id"] = entry_id.decode()
        out.append(decoded)
    return out


def test_emitting_data_that_is_not_json_is_a_type_error_at_emit(redis_backend: RedisBackend) -> None:
    with pytest.raises(TypeError) as info:
        emit("report_ready", {"when": object()})
    message = str(info.value)
    assert "report_ready" in message and "JSON" in message and "['when']" in message
    with pytest.raises(TypeError, match="key of type tuple"):
        emit("report_ready", {(1, 2): "pair"})
    emit("report_ready", {"fine": [1, 2.5, "x", None, True]})  # plain JSON goes through


def test_lifecycle_objects_reach_local_handlers_as_objects_and_the_stream_as_json(
    redis_backend: RedisBackend, redis_url: str
) -> None:
    got: list[Any] = []

    @when("writer_complete")
    def on_done(data: dict[str, Any]) -> None:
        got.append(data)

    @coordinate("writer")
    def write(topic: str, extra: Opaque) -> Reply:
        return Reply(f"about {topic}", 42)

    write("tides", Opaque())
    assert drain(HANG)
    assert isinstance(got[0]["result"], Reply) and got[0]["result"].tokens == 42  # the very object
    stored = [e for e in entries(redis_url, redis_backend.key("events")) if e["n"] == "writer_complete"]
    remote = json.loads(stored[0]["d"])
    assert remote["result"] == {"text": "about tides", "tokens": 42}
    assert remote["run_id"] == got[0]["run_id"]
    started = [e for e in entries(redis_url, redis_backend.key("events")) if e["n"] == "writer_started"]
    assert json.loads(started[0]["d"])["args"] == ["tides", {"__type__": f"{__name__}.Opaque", "__repr__": "<Opaque thing>"}]


def test_json_form_of_common_objects_is_documented() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):
        name: str
        when: Any = None

    assert json_form((1, {2: {3}})) == [1, {"2": [3]}]
    assert json_form(Model(name="m")) == {"name": "m", "when": None}
    assert json_form(Reply("t", 1)) == {"text": "t", "tokens": 1}
    assert json_form(b"x") == {"__type__": "builtins.bytes", "__repr__": "b'x'"}


def test_an_event_is_handled_once_per_subscription(redis_backend: RedisBackend) -> None:
    first: list[int] = []
    second: list[int] = []

    @when("tick")
    def one(data: int) -> None:
        first.append(data)

    @when("tick")
    def two(data: int) -> None:
        second.append(data)

    for i in range(50):
        emit("tick", i)
    assert drain(HANG)
    assert first == list(range(50)) and second == list(range(50))


def test_one_handler_subscribed_twice_in_one_process_runs_twice(redis_backend: RedisBackend) -> None:
    got: list[int] = []
    mutex = threading.Lock()

    def make() -> Any:
        def handler(data: int) -> None:  # the same qualified name both times: the same group name
            with mutex:
                got.append(data)

        return handler

    when("twice")(make())
    when("twice")(make())
    emit("twice", 7)
    assert drain(HANG)
    assert got == [7, 7]


def test_drain_waits_for_handlers_and_acknowledgements(redis_backend: RedisBackend, redis_url: str) -> None:
    done: list[int] = []

    @when("slow")
    def slow(data: int) -> None:
        time.sleep(0.01)
        done.append(data)

    for i in range(20):
        emit("slow", i)
    assert drain(HANG)
    assert done == list(range(20))
    client = redis.Redis.from_url(redis_url)
    groups = client.xinfo_groups(redis_backend.key("events"))
    assert [g["pending"] for g in groups] == [0]


def test_an_entry_delivered_too_often_goes_to_the_dead_letter_stream(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, key_prefix=prefix, max_deliveries=2, consumer_ttl=0.3)
    configure(backend)
    stream, group = backend.key("events"), "poison-group"
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(stream, group, id="0", mkstream=True)
    client.xadd(stream, {"n": "poison", "i": "ev-1", "t": "0", "d": "1"})
    # two consumers that took the entry and died without a word (no alive marker)
    client.xreadgroup(group, "ghost-1", {stream: ">"})
    client.xclaim(stream, group, "ghost-2", 0, [client.xrange(stream)[0][0]])
    handled: list[Any] = []
    when("poison", group=group)(handled.append)
    deadline = time.monotonic() + HANG
    while not client.xlen(backend.key("events", "dead")):
        assert time.monotonic() < deadline, "the entry never reached the dead-letter stream"
        time.sleep(0.02)
    dead = entries(redis_url, backend.key("events", "dead"))[0]
    assert dead["group"] == group and dead["n"] == "poison" and "delivered 2 times" in dead["reason"]
    assert client.xpending(stream, group)["pending"] == 0
    assert handled == []


def test_an_entry_held_by_a_dead_consumer_is_reclaimed_and_handled(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, key_prefix=prefix, consumer_ttl=0.3)
    configure(backend)
    stream, group = backend.key("events"), "reclaim-group"
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(stream, group, id="0", mkstream=True)
    client.xadd(stream, {"n": "orphan", "i": "ev-1", "t": "0", "d": '{"k": 1}'})
    client.xreadgroup(group, "ghost", {stream: ">"})  # taken by a consumer that then died
    handled: list[Any] = []
    when("orphan", group=group)(handled.append)
    deadline = time.monotonic() + HANG
    while not handled:
        assert time.monotonic() < deadline, "the orphaned entry was never reclaimed"
        time.sleep(0.02)
    assert handled == [{"k": 1}]
    assert drain(HANG)


def test_trimming_keeps_every_entry_a_group_has_not_acknowledged(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    stream = f"{prefix}:events"
    ids = [client.xadd(stream, {"n": "e", "i": str(i)}) for i in range(10)]
    client.xgroup_create(stream, "fast", id="0")
    client.xgroup_create(stream, "slow", id="0")
    for entry_id in ids:  # the fast group acknowledged everything
        client.xreadgroup("fast", "c", {stream: ">"}, count=1)
        client.xack(stream, "fast", entry_id)
    client.xreadgroup("slow", "c", {stream: ">"}, count=6)
    client.xack(stream, "slow", *ids[:3])  # the slow one still holds 3, 4, 5 and never saw 6..9
    client.eval(TRIM.source, 1, stream, 10_000)
    kept = [e[0] for e in client.xrange(stream)]
    assert kept == ids[3:]


def test_events_of_different_prefixes_never_meet(redis_url: str) -> None:
    other = RedisBackend(redis_url, key_prefix="app-b-" + str(time.monotonic_ns()))
    configure(RedisBackend(redis_url, key_prefix="app-a-" + str(time.monotonic_ns())))
    got: list[Any] = []
    when("shared_name")(got.append)
    other.client.xadd(other.key("events"), {"n": "shared_name", "i": "x", "t": "0", "d": "1"})
    emit("shared_name", 2)
    assert drain(HANG)
    assert got == [2]
    other.close()
