"""Where ``redis_limits`` finds the Redis backend's connections until it moves into the
``redis`` package (a bridge: the connection context lives in ``redis/link.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .redis.link import Link as _Link
from .redis.link import backend_error

__all__ = ["Link", "backend_error"]


class Link(_Link):
    """A dedicated connection whose commands wait as long as the server takes (BLPOP...)."""

    __slots__ = ()

    def __init__(self, make: Callable[[], Any]) -> None:
        super().__init__(make, io_timeout=None)
