"""A pytest plugin for your own tests (registered through the ``pytest11`` entry point).

Fixtures:

``coordination``         a clean coordination state for the test (``testing.isolated``):
                         a fresh backend, and afterwards pending handlers drained and the
                         subscriptions made by the test removed. Yields the backend URL.
``coordination_events``  an ``EventRecorder`` of every event the test emits (with ``coordination``).

The backend is ``memory://`` unless ``--coordination-backend URL`` (or the ini option
``coordination_backend``) names another; on Redis every test gets a key prefix of its
own (``pytest-<random>``), so tests never see each other's locks, limits or events.

```python
def test_research_chains_into_analysis(coordination, coordination_events):
    research_agent("agents")
    coordination_events.wait_for_count(2)
    assert coordination_events.names()[-1] == "analyzer_complete"
```

Give every test of a module a clean state with
``pytestmark = pytest.mark.usefixtures("coordination")``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .testing import EventRecorder, isolated

__all__ = ["coordination", "coordination_backend_url", "coordination_events"]

OPTION = "--coordination-backend"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentdiff-coordination")
    group.addoption(
        OPTION, dest="coordination_backend", metavar="URL", default=None,
        help="run the coordination fixtures on this backend URL (default: memory://), e.g. redis://localhost:6379/15",
    )
    parser.addini("coordination_backend", "backend URL of the coordination fixtures (default: memory://)", default="")


def _with_own_prefix(url: str) -> str:
    """``url`` with a key prefix of its own, for a shared backend."""
    if url.lower().startswith("memory:"):
        return url
    return f"{url}{'&' if '?' in url else '?'}prefix=pytest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def coordination_backend_url(request: pytest.FixtureRequest) -> str:
    """The backend URL given by ``--coordination-backend`` or the ini option, else ``memory://``."""
    url = request.config.getoption("coordination_backend") or request.config.getini("coordination_backend")
    return str(url or "memory://")


@pytest.fixture
def coordination(coordination_backend_url: str) -> Iterator[str]:
    """A clean coordination state for one test; yields the backend URL it runs on."""
    url = _with_own_prefix(coordination_backend_url)
    with isolated(url):
        yield url


@pytest.fixture
def coordination_events(coordination: str) -> Iterator[EventRecorder]:
    """Records every event emitted during the test, in emit order."""
    with EventRecorder("*") as recorder:
        yield recorder
