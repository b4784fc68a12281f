"""Each provider test starts with no limit declared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentdiff_coordination.core import limits


@pytest.fixture(autouse=True)
def _no_declared_limits() -> Iterator[None]:
    limits.forget_declarations()
    yield
    limits.forget_declarations()
