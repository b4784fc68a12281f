"""Where ``redis_limits_lua`` finds ``Script`` until it moves into the ``redis`` package
(a bridge: the scripts live in ``redis/scripts.py`` and ``redis/lua/``)."""

from __future__ import annotations

from .redis.scripts import Script

__all__ = ["Script"]
