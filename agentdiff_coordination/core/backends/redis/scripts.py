"""The Lua scripts of the Redis backend, each defined once in ``lua/*.lua`` (package data).

A script is its own file, with the shared helpers it needs put in front: the lock
scripts (``ACQUIRE``, ``RELEASE``, ``ABANDON``, ``TEND``) share ``prelude.lua`` (the
server's clock, the fencing counter, granting and handing on), the stream scripts
(``DRAIN_STATE``, ``TRIM``) share ``groups.lua``. Every time comes from the server
(``TIME``), never from a client clock. Scripts go out as ``EVALSHA``; the connection
context (``link``) sends the source once when the server lacks it.

The fencing counter starts at the server's time in microseconds the first time it is
used (or after a restart of a Redis without persistence), so fencing numbers keep
growing across restarts: a new holder's number is always higher.
"""

from __future__ import annotations

import hashlib
from importlib import resources

__all__ = ["ABANDON", "ACQUIRE", "ALL", "DRAIN_STATE", "EXTEND", "RELEASE", "TEND", "TRIM", "Script"]  # and LIMIT_*


class Script:
    """A Lua script: its ``name``, ``source`` and ``sha`` (the SHA1 ``EVALSHA`` names it by)."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    @classmethod
    def load(cls, name: str, *helpers: str) -> Script:
        """The script of ``lua/NAME.lua`` with the ``helpers`` files put in front."""
        folder = resources.files(__package__).joinpath("lua")
        parts = [folder.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in (*helpers, name)]
        return cls(name, "\n".join(parts))

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"


ACQUIRE = Script.load("acquire", "prelude")
RELEASE = Script.load("release", "prelude")
ABANDON = Script.load("abandon", "prelude")
TEND = Script.load("tend", "prelude")
EXTEND = Script.load("extend")
DRAIN_STATE = Script.load("drain_state", "groups")
TRIM = Script.load("trim", "groups")

# limits: ``limit_prelude.lua`` (the server clock, the keys, the sliding log's steps), then each step
LIMIT_ACQUIRE = Script.load("limit_acquire", "limit_prelude")
LIMIT_RELEASE = Script.load("limit_release", "limit_prelude")
LIMIT_ABANDON = Script.load("limit_abandon", "limit_prelude")
LIMIT_REPORT = Script.load("limit_report", "limit_prelude")
LIMIT_CHARGE = Script.load("limit_charge", "limit_prelude")
LIMIT_USAGE = Script.load("limit_usage", "limit_prelude")
LIMIT_RENEW = Script.load("limit_renew", "limit_prelude")
LIMIT_BACKOFF = Script.load("limit_backoff", "limit_prelude")
LIMIT_OBSERVE = Script.load("limit_observe", "limit_prelude")

ALL = (
    ACQUIRE, RELEASE, ABANDON, TEND, EXTEND, DRAIN_STATE, TRIM, LIMIT_ACQUIRE, LIMIT_RELEASE, LIMIT_ABANDON,
    LIMIT_REPORT, LIMIT_CHARGE, LIMIT_USAGE, LIMIT_RENEW, LIMIT_BACKOFF, LIMIT_OBSERVE,
)
