"""Each provider test starts with no limit declared and no backoff in force."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentdiff_coordination.core import limits
from agentdiff_coordination.integrations import _limit_api


@pytest.fixture(autouse=True)
def _no_declared_limits() -> Iterator[None]:
    limits._reset_for_tests()
    _limit_api._until.clear()  # SHIM: the process-local backoff (gone with the Limit API of issue 12)
    yield
    limits._reset_for_tests()
    _limit_api._until.clear()
