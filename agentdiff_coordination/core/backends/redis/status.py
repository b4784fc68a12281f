"""What ``status()`` shows of a Redis backend: every lock, limit and event stream of the
prefix, fleet-wide, read from the server (holders are stored as JSON, see ``holder_json``)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from typing import Any, Protocol


from ..base import LimitStore
from ...snapshots import ConsumerStatus, EventsStatus, HolderInfo, LockStatus, Status
from .link import Context

__all__ = ["holder_json", "holder_text", "snapshot"]

_host = socket.gethostname()


def holder_json(step: str | None) -> str:
    """Who takes a lock, as stored with the grant: step, host, process, thread, task."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return json.dumps(
        {"step": step, "host": _host, "pid": os.getpid(), "thread": threading.current_thread().name,
         "task": None if task is None else task.get_name()},
        separators=(",", ":"),
    )


def _holder(raw: bytes | str | None) -> HolderInfo | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
        return HolderInfo(data.get("host"), data.get("pid"), data.get("thread"), data.get("task"), data.get("step"))
    except (ValueError, AttributeError):
        return HolderInfo(step=text)


def holder_text(raw: bytes | str | None) -> str | None:
    """A stored holder as people read it (in timeout errors): ``'step' (pid P on HOST, thread T)``."""
    info = _holder(raw)
    if info is None:
        return None
    who = repr(info.step) if info.step else "an anonymous holder"
    if info.pid is None:
        return who
    where = f"task {info.task}" if info.task else f"thread {info.thread}"
    return f"{who} (pid {info.pid} on {info.host}, {where})"


class Host(Protocol):
    """What the snapshot needs of the backend."""

    @property
    def ctx(self) -> Context: ...

    @property
    def safe_url(self) -> str: ...

    def limit_store(self) -> LimitStore: ...


def _names(ctx: Context, kind: str) -> set[str]:
    prefix = ctx.key(kind, "")
    found: set[str] = set()
    cursor: Any = 0
    while True:
        cursor, keys = ctx.run(f"listing the {kind} keys", ("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000))
        found.update(k.decode()[len(prefix):] for k in keys)
        if int(cursor) == 0:
            return found


def _locks(ctx: Context) -> tuple[LockStatus, ...]:
    out = []
    now_ms = None
    for name in sorted(_names(ctx, "lock") | _names(ctx, "lockq")):
        lock, queue = ctx.key("lock", name), ctx.key("lockq", name)
        fields = ctx.run("reading a lock", ("HMGET", lock, "holder", "fencing", "since"))
        pttl = ctx.run("reading a lock", ("PTTL", lock))
        waiting = int(ctx.run("reading a lock", ("ZCARD", queue)))
        holder, fencing, since = fields
        if holder is None and waiting == 0:
            continue
        held_for = None
        if since is not None:
            if now_ms is None:
                seconds, micros = ctx.run("reading the server's clock", ("TIME",))
                now_ms = int(seconds) * 1000 + int(micros) // 1000
            held_for = max(0, now_ms - int(since)) / 1000
        out.append(LockStatus(
            name, _holder(holder), None if fencing is None else int(fencing), held_for,
            pttl / 1000 if holder is not None and pttl is not None and pttl >= 0 else None, waiting,
        ))
    return tuple(out)


def _events(ctx: Context) -> EventsStatus:
    stream, dead = ctx.key("events"), ctx.key("events", "dead")
    pending = 0
    consumers = []
    try:
        groups = ctx.run("reading the event groups", ("XINFO", "GROUPS", stream))
    except Exception:  # no stream yet
        groups = []
    for group in groups:
        info = dict(zip(group[::2], group[1::2]))
        name = info[b"name"]
        pending += int(info.get(b"pending") or 0) + int(info.get(b"lag") or 0)
        for consumer in ctx.run("reading the event consumers", ("XINFO", "CONSUMERS", stream, name)):
            c = dict(zip(consumer[::2], consumer[1::2]))
            consumers.append(ConsumerStatus(
                name.decode(), c[b"name"].decode(), int(c.get(b"pending") or 0), int(c.get(b"idle") or 0) / 1000,
            ))
    dead_letters = int(ctx.run("counting dead letters", ("XLEN", dead)))
    return EventsStatus(pending, dead_letters, tuple(consumers))


def snapshot(host: Host) -> Status:
    """Locks and event streams of every process sharing the prefix; the limits this process
    declared, with their fleet-wide use."""
    ctx = host.ctx
    return Status(host.safe_url, _locks(ctx), host.limit_store().statuses(), _events(ctx))
