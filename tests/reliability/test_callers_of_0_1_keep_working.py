"""Issue 10, item 11: code written for the 0.1 package on PyPI keeps working, warned.

0.1 spelled ``emit(name, data, sender)`` with ``sender`` positional and chose its backend
with ``configure_broker("redis", redis_url=...)`` / ``configure_broker("inmemory")``. These
forms are accepted with a ``DeprecationWarning`` naming today's spelling;
``configure_broker("file")`` is a clear error: there is no file backend, and it says what to
use instead. See docs/migrating-from-0.1.md.
"""

from __future__ import annotations

import re

import pytest
import redis

from agentdiff_coordination import configure_broker, drain, emit, lock, when
from agentdiff_coordination.testing import EventRecorder


def test_emit_with_a_positional_sender_works_and_warns() -> None:
    with EventRecorder("research_done") as seen:
        with pytest.warns(DeprecationWarning, match=r"sender="):
            emit("research_done", {"findings": 3}, "research_agent")
        (event,) = seen.wait_for_count(1, timeout=5)
    assert event.sender == "research_agent"
    assert event.data == {"findings": 3}


def test_configure_broker_inmemory_works_and_warns() -> None:
    with pytest.warns(DeprecationWarning, match=r"memory://"):
        configure_broker("inmemory")
    got: list[int] = []

    @when("ping")
    def handler(data: int) -> None:
        got.append(data)

    emit("ping", 1)
    assert drain(timeout=5)
    assert got == [1]


@pytest.mark.redis
def test_configure_broker_redis_with_redis_url_works_and_warns(redis_url: str, prefix: str) -> None:
    with pytest.warns(DeprecationWarning, match=r"redis://"):
        configure_broker("redis", redis_url=redis_url, key_prefix=prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        with lock("shared-record"):
            assert client.keys(f"{prefix}*"), "configure_broker('redis', ...) did not put the locks on Redis"
    finally:
        client.close()


def test_configure_broker_file_says_why_there_is_none_and_what_to_use() -> None:
    with pytest.raises(ValueError) as refused:
        configure_broker("file")
    message = str(refused.value)
    assert re.search(r"no file backend|file backend .*(0\.1|removed|gone)", message), (
        f"the error should say there is no file backend any more, and why: {message}"
    )
    assert "memory://" in message and "redis://" in message, f"the error should say what to use: {message}"
