"""Shared fixtures.

``backend`` runs a test once per backend: ``memory`` always, ``redis`` against the
server named by ``AGENTDIFF_TEST_REDIS_URL`` (``scripts/test.sh`` starts one). Under
CI a missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from agentdiff_coordination import configure, testing

REDIS_URL_ENV = "AGENTDIFF_TEST_REDIS_URL"


def redis_url_or_skip() -> str:
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{REDIS_URL_ENV} is not set under CI: run the tests through scripts/test.sh")
        pytest.skip(f"no Redis for this run: set {REDIS_URL_ENV} (scripts/test.sh does)")
    return url


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """Each test starts on a fresh memory backend with no subscriptions."""
    testing.reset()
    yield
    testing.reset()


@pytest.fixture
def redis_url() -> str:
    return redis_url_or_skip()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Configure the backend under test; yields its URL. Redis runs get a private key prefix."""
    if request.param == "memory":
        configure("memory://")
        yield "memory://"
        return
    url = redis_url_or_skip()
    configure(url, key_prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield url
