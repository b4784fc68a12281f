"""The Lua scripts of limits on Redis, one file per step, shipped in ``lua/`` as package data.

``ACQUIRE`` admits or queues, ``RELEASE`` frees a slot, ``ABANDON`` leaves the queue,
``REPORT`` corrects an admission's cost, ``CHARGE`` logs cost spent outside an
admission, ``USAGE`` reads a snapshot, ``RENEW`` extends the leases of held slots,
``BACKOFF`` and ``OBSERVE`` record what the provider said.
Every script is ``lua/limit_prelude.lua`` (the server clock, the keys, the sliding
log's steps) followed by its own file ``lua/limit_<step>.lua``; every one reads the
server's clock (``TIME``), never a client's.

Keys of a limit ``NAME`` (``P`` is the key prefix), every one expiring by itself
once the limit is idle for longer than its longest period, lease and waiter TTL::

    P:limit:NAME:l:I   list  entry stamps (µs), oldest first        rate I's log
    P:limit:NAME:c:I   hash  stamp -> cost, and "total"              rate I's entries and their sum
    P:limit:NAME:h     zset  holder token -> lease end (µs)          concurrency slots
    P:limit:NAME:q     zset  waiter token -> arrival ticket          the FIFO queue
    P:limit:NAME:w     zset  waiter token -> liveness deadline (µs)  waiters still polling
    P:limit:NAME:n     string                                        ticket counter
    P:limit:NAME:k:TOK list                                          a waiter's wake-up call
    P:limit:NAME:p     hash  the provider's gate: "b" backoff end (µs); per dimension d (1-4)
                             "r<d>" remaining until "u<d>" (µs), "w<d>" its last word
"""

from __future__ import annotations

from importlib.resources import files

from .redis_lua import Script

__all__ = ["ABANDON", "ACQUIRE", "BACKOFF", "CHARGE", "OBSERVE", "RELEASE", "RENEW", "REPORT", "USAGE", "load"]

_LUA = files(__package__ or "agentdiff_coordination.core.backends").joinpath("lua")


def load(step: str) -> Script:
    """The script of one step: the shared prelude, then ``lua/limit_<step>.lua``."""
    prelude = _LUA.joinpath("limit_prelude.lua").read_text(encoding="utf-8")
    body = _LUA.joinpath(f"limit_{step}.lua").read_text(encoding="utf-8")
    return Script(f"limit_{step}", prelude + "\n" + body)


ACQUIRE = load("acquire")
RELEASE = load("release")
ABANDON = load("abandon")
REPORT = load("report")
CHARGE = load("charge")
USAGE = load("usage")
RENEW = load("renew")
BACKOFF = load("backoff")
OBSERVE = load("observe")
