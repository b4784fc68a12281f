"""Dead letters on Redis: the stream ``P:events:dead`` that every process shares.

An entry holds the event's own fields (see ``codec``) and ``group`` (the handler's
subscription), ``error``, ``attempts`` and ``reason``. Handlers that gave up after their
retries put their events here, as do consumers whose entries were delivered too often.
Replaying adds each event to the event stream again, marked ``only`` for its group, so
only the handler that failed it sees it again.
"""

from __future__ import annotations

from typing import Any

from ...records import DeadLetter
from .codec import decode_event, encode_event, entry_fields
from .link import Context

__all__ = ["dead_letters", "purge", "record", "replay"]

#: dead letters kept (the oldest go first)
KEEP = 10_000


def record(ctx: Context, letter: DeadLetter) -> None:
    """Keep ``letter`` in the shared dead-letter stream."""
    error = f"{type(letter.error).__name__}: {letter.error}"
    fields = [*encode_event(letter.event), b"group", letter.handler, b"error", error,
              b"attempts", str(letter.attempts), b"reason", "the handler failed every attempt"]
    ctx.run("keeping a dead letter", ("XADD", ctx.key("events", "dead"), "MAXLEN", "~", KEEP, "*", *fields))


def _entries(ctx: Context) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return [(entry_id, entry_fields(fields))
            for entry_id, fields in ctx.run("reading dead letters", ("XRANGE", ctx.key("events", "dead"), "-", "+"))]


def _text(values: dict[bytes, bytes], key: bytes) -> str | None:
    raw = values.get(key)
    return None if raw is None else raw.decode()


def dead_letters(ctx: Context) -> list[dict[str, Any]]:
    """Every dead letter, oldest first, as a JSON object."""
    out = []
    for entry_id, values in _entries(ctx):
        try:
            event = decode_event(values)
            name, data, sender, stamp = event.name, event.data, event.sender, event.timestamp
        except Exception:  # an entry that was dead-lettered because it could not be decoded
            name, data, sender, stamp = _text(values, b"n") or "?", _text(values, b"d"), _text(values, b"s"), None
        out.append({
            "id": entry_id.decode(), "event": name, "data": data, "sender": sender, "timestamp": stamp,
            "handler": _text(values, b"group"), "error": _text(values, b"error") or _text(values, b"reason"),
            "attempts": int(values.get(b"attempts") or 0),
        })
    return out


def replay(ctx: Context) -> int:
    """Send every dead letter again, to its handler's group only; how many were sent."""
    stream, dead = ctx.key("events"), ctx.key("events", "dead")
    sent = 0
    for entry_id, values in _entries(ctx):
        group = values.get(b"group")
        keep = {k: v for k, v in values.items() if k not in (b"group", b"error", b"attempts", b"reason", b"entry", b"only")}
        if group is not None:
            keep[b"only"] = group
        flat = [x for pair in keep.items() for x in pair]
        ctx.run("replaying a dead letter", ("XADD", stream, "*", *flat))
        ctx.run("replaying a dead letter", ("XDEL", dead, entry_id))
        sent += 1
    return sent


def purge(ctx: Context) -> int:
    """Drop every dead letter; how many were dropped."""
    dead = ctx.key("events", "dead")
    count = int(ctx.run("counting dead letters", ("XLEN", dead)))
    ctx.run("dropping dead letters", ("DEL", dead))
    return count


