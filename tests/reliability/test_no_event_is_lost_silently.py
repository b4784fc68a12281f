"""Issue 10, item 1: one bad event never costs another, and no event is lost silently.

An event that cannot be encoded (a lone surrogate has no UTF-8 form) is refused at
``emit`` on every backend. An event Redis refuses (here: ``maxmemory`` reached for a
moment) is retried while that can help, else reported in ``dead_letters()``; ``drain()``
does not report success while an event was lost.
"""

from __future__ import annotations

import threading

import pytest
import redis

from agentdiff_coordination import configure, dead_letters, drain, emit, when

from ..redis.support import RedisServer
from .support import with_prefix, figure

LONE_SURROGATE = "\ud800"


def handled_numbers(event: str) -> set[int]:
    """The ``n`` of every ``event`` handled from now on (filled in by a handler)."""
    seen: set[int] = set()
    guard = threading.Lock()

    @when(event)
    def handler(data: dict[str, int]) -> None:
        with guard:
            seen.add(data["n"])

    return seen


@pytest.mark.parametrize(
    "data", [LONE_SURROGATE, {"text": LONE_SURROGATE}, ["ok", LONE_SURROGATE]], ids=["str", "in-dict", "in-list"]
)
def test_an_event_that_cannot_be_encoded_is_refused_at_emit(backend: str, data: object) -> None:
    @when("unsendable")
    def handler(event_data: object) -> None:
        pass

    with pytest.raises((TypeError, ValueError)) as refused:
        emit("unsendable", data)
    assert "unsendable" in str(refused.value), f"the error should name the event: {refused.value}"
    assert drain(timeout=10)


@pytest.mark.redis
def test_one_unencodable_event_costs_no_other_event(redis_url: str, prefix: str) -> None:
    configure(with_prefix(redis_url, prefix))
    seen = handled_numbers("good")

    def good(start: int) -> None:
        for n in range(start, start + 250):
            emit("good", {"n": n})

    emitters = [threading.Thread(target=good, args=(k * 250,)) for k in range(4)]
    for t in emitters:
        t.start()
    try:
        emit("bad", LONE_SURROGATE)  # refused here (the fix), or sent among the good ones
    except (TypeError, ValueError):
        pass
    for t in emitters:
        t.join()
    drained = drain(timeout=30)
    lost = sorted(set(range(1000)) - seen)
    figure("1000 good + 1 bad event", {"delivered": len(seen), "lost": len(lost)})
    assert not lost, f"{len(lost)} of 1000 good events were lost because of one bad event (first: {lost[:10]})"
    assert drained


@pytest.mark.redis
def test_an_event_redis_refuses_is_delivered_or_reported_never_lost(private_redis: RedisServer, prefix: str) -> None:
    configure(with_prefix(private_redis.url, prefix))
    admin = redis.Redis(port=private_redis.port)
    seen = handled_numbers("good")

    ids: dict[int, str] = {}
    for n in range(500):
        ids[n] = emit("good", {"n": n})
    assert drain(timeout=30)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write is refused: OOM
    try:
        ids[500] = emit("good", {"n": 500})  # the event Redis refuses while it is full
        drained_while_full = drain(timeout=2)
    finally:
        admin.config_set("maxmemory", 0)
    for n in range(501, 1001):
        ids[n] = emit("good", {"n": n})
    drained = drain(timeout=30)

    reported = {letter.event.id for letter in dead_letters()}
    silently_lost = [n for n in range(1001) if n not in seen and ids[n] not in reported]
    figure("maxmemory: 1001 emitted", {"delivered": len(seen), "reported": len(reported), "silently_lost": len(silently_lost)})
    assert not silently_lost, (
        f"{len(silently_lost)} of 1001 events were neither delivered nor reported in dead_letters() "
        f"(first: {silently_lost[:10]})"
    )
    assert not drained_while_full, "drain() reported success while Redis refused an event"
    if any(ids[n] in reported for n in range(1001)):
        assert not drained, "drain() reported success although events were lost (reported as dead letters)"
    assert all(n in seen for n in range(501, 1001)), "events emitted after Redis recovered were lost"
    admin.close()
