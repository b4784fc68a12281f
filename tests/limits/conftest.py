"""Each limit test starts with no limit declared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentdiff_coordination.core import limits


@pytest.fixture(autouse=True)
def _no_declared_limits() -> Iterator[None]:
    limits._reset_for_tests()
    yield
    limits._reset_for_tests()

