"""The Redis backend: locks, limits and events shared across processes and machines.

See ``backend`` for the whole and ``url`` for the URL and its options.
"""

from __future__ import annotations

from .backend import RedisBackend
from .grant import RedisLockGrant

__all__ = ["RedisBackend", "RedisLockGrant"]
