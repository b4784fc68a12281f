"""Fixtures of the reliability tests (issue 10): fresh prefixes and private servers.

These tests use only the public API (``agentdiff_coordination``, backend URLs and
``agentdiff_coordination.testing``) so that they hold across changes of the core.
A private server is stopped by its PID, continued first if a test froze it.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentdiff_coordination import configure

from ..redis.support import RedisServer


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"rel-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_private_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private servers with extra arguments: ``make_private_redis("--requirepass", "s")``."""
    started: list[RedisServer] = []

    def make(*extra: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", *extra).start()
        started.append(server)
        return server

    yield make
    configure("memory://")
    for server in started:
        proc = server.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def private_redis(make_private_redis: Callable[..., RedisServer]) -> RedisServer:
    """A redis-server of this test's own, for tests that freeze, refuse or restart it."""
    return make_private_redis()
