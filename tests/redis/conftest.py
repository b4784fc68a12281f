"""Fixtures of the Redis tests: the shared test server, private servers, fresh prefixes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentdiff_coordination import configure, testing
from agentdiff_coordination.core.backends.redis import RedisBackend

from .support import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_backend(redis_url: str, prefix: str) -> Iterator[RedisBackend]:
    """The Redis backend configured for this test (on the shared test server)."""
    backend = RedisBackend(redis_url, key_prefix=prefix)
    configure(backend)
    yield backend


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that stop, kill or restart it."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        if server.proc is not None:  # let the backend finish its work while the server is up
            testing.reset()
        server.stop()
