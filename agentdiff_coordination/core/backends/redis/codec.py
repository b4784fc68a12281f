"""How events travel through Redis: JSON, never pickle.

An event is one stream entry with the fields ``c`` (the emitter's trace context, when
traced), ``n`` (name), ``i`` (id), ``s`` (sender,
absent when None), ``t`` (wall time of the emit) and ``d`` (the data as JSON).

User data must be JSON already: anything else is a ``TypeError`` at ``emit``, naming
the event and the value that could not be encoded; a string that is not valid UTF-8
(a lone surrogate such as ``"\ud800"``, in the data, the name or the sender) is a
``ValueError`` at ``emit``. Either way nothing is queued: one bad event never costs
another.

Lifecycle payloads of ``@coordinate`` (``NAME_started``, ``NAME_complete``, ...)
carry whatever the step took and returned: an LLM response, a framework message.
Handlers in the emitting process receive those objects as they are. Handlers in
other processes receive their JSON form (``json_form``):

- ``str``, ``int``, ``float``, ``bool``, ``None``: themselves;
- ``dict``: a dict with ``str`` keys (other keys through ``str()``); ``list``,
  ``tuple``, ``set``, ``frozenset``: a list;
- a pydantic model: ``model.model_dump(mode="json")``; a dataclass: a dict of its fields;
- anything else: ``{"__type__": "module.QualName", "__repr__": repr(obj)}`` (the
  repr is cut at 2,000 characters).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ...records import Event

__all__ = ["LIFECYCLE_SUFFIXES", "decode_event", "encode_event", "entry_fields", "is_lifecycle", "json_form"]

LIFECYCLE_SUFFIXES = ("_started", "_complete", "_failed", "_cancelled", "_interrupted")
REPR_LIMIT = 2000

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def is_lifecycle(event: Event) -> bool:
    """Whether ``event`` is a lifecycle event of a coordinated step (named after its sender)."""
    sender = event.sender
    name = event.name
    return (
        sender is not None
        and isinstance(event.data, dict)
        and "run_id" in event.data
        and name.startswith(sender)
        and name[len(sender):] in LIFECYCLE_SUFFIXES
    )


def _type_name(obj: object) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def json_form(obj: Any, _depth: int = 0) -> Any:
    """The documented JSON form of any object (see the module docstring)."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if _depth > 50:
        return {"__type__": _type_name(obj), "__repr__": "<nested too deeply>"}
    d = _depth + 1
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): json_form(v, d) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_form(v, d) for v in obj]
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        try:
            return json_form(dump(mode="json"), d)
        except Exception:
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: json_form(getattr(obj, f.name, None), d) for f in dataclasses.fields(obj)}
    try:
        text = repr(obj)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    if len(text) > REPR_LIMIT:
        text = text[:REPR_LIMIT] + "..."
    return {"__type__": _type_name(obj), "__repr__": text}


def _find_unencodable(obj: Any, path: str = "data", depth: int = 0) -> str:
    """Where in ``obj`` the first value JSON cannot encode sits, for the error message."""
    if depth > 50:
        return f"{path} (nested too deeply, or a reference cycle)"
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return ""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                return f"{path} has a key of type {type(k).__name__} ({k!r})"
            found = _find_unencodable(v, f"{path}[{k!r}]", depth + 1)
            if found:
                return found
        return ""
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _find_unencodable(v, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return ""
    return f"{path} is a {_type_name(obj)}"


def encode_event(event: Event) -> list[bytes]:
    """The stream fields of ``event``; ``TypeError`` when its data is not JSON,
    ``ValueError`` when a string in it is not valid UTF-8."""
    try:
        data = _dumps(event.data)
    except (TypeError, ValueError, RecursionError) as exc:
        if is_lifecycle(event):
            data = _dumps(json_form(event.data))
        else:
            where = _find_unencodable(event.data) or str(exc)
            raise TypeError(
                f"event {event.name!r} cannot be emitted on the Redis backend: its data is not JSON "
                f"({where}). Events cross processes as JSON; emit plain values (dict, list, str, "
                "int, float, bool, None) and convert objects first, e.g. model.model_dump()"
            ) from exc
    fields: list[str | bytes] = [b"n", event.name, b"i", event.id, b"t", repr(event.timestamp), b"d", data]
    if event.sender is not None:
        fields += [b"s", event.sender]
    if event.trace:
        fields += [b"c", _dumps(event.trace)]
    try:
        return [f if isinstance(f, bytes) else f.encode() for f in fields]
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"event {event.name!r} cannot be emitted on the Redis backend: a string in it is not valid "
            f"UTF-8 ({exc.reason} at {exc.object[max(0, exc.start - 20):exc.end + 20]!r}); events cross "
            "processes as UTF-8 JSON"
        ) from None


_decode_json = json.JSONDecoder().decode


def entry_fields(fields: list[bytes]) -> dict[bytes, bytes]:
    """The fields of a stream entry as a dict."""
    return dict(zip(fields[::2], fields[1::2]))


def decode_event(values: dict[bytes, bytes], data: Any = _decode_json) -> Event:
    """An ``Event`` from the fields of a stream entry; ``data`` given, or decoded from JSON."""
    sender = values.get(b"s")
    if data is _decode_json:
        raw = values.get(b"d")
        data = _decode_json(raw.decode()) if raw is not None else None
    t = values.get(b"t")
    trace = values.get(b"c")
    return Event(
        values[b"n"].decode(),
        data,
        values[b"i"].decode(),
        sender.decode() if sender is not None else None,
        float(t) if t is not None else 0.0,
        _decode_json(trace.decode()) if trace is not None else None,
    )
