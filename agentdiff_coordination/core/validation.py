"""Checks of user input shared by the core: names and timeouts, with clear errors."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["check_decorator_name", "check_encodable", "check_name", "check_timeout"]


def check_decorator_name(value: object, decorator: str, example: str) -> str:
    """``check_name`` for the first argument of a decorator factory, with a hint when the
    decorator was applied bare (``@coordinate`` instead of ``@coordinate("step")``)."""
    if callable(value) and not isinstance(value, str):
        raise TypeError(
            f"@{decorator} needs a name: write @{decorator}({example!r}) above "
            f"{getattr(value, '__qualname__', repr(value))}, not a bare @{decorator}"
        )
    return check_name(value, f"{decorator}() name" if decorator != "when" else "event pattern")


def check_name(value: object, what: str) -> str:
    """``value`` as a name, or a clear error naming ``what`` it was meant to be."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__} ({value!r})")
    if not value or value.strip() != value:
        raise ValueError(f"{what} must be a non-empty string without surrounding spaces, not {value!r}")
    return value


def check_timeout(timeout: object, what: str = "timeout") -> float | None:
    """``timeout`` as seconds (None waits forever), or a clear error."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {timeout!r}")
    if timeout < 0 or timeout != timeout:
        raise ValueError(f"{what} must be >= 0 seconds (or None to wait forever), not {timeout!r}")
    if timeout >= threading.TIMEOUT_MAX:
        return None  # longer than the platform's timers can count: the same as waiting forever
    return float(timeout)


def check_encodable(event: str, data: Any, _depth: int = 0) -> None:
    """Refuse event data holding text with no UTF-8 form (a lone surrogate such as
    ``"\\ud800"``): no backend could carry it. Walks strings, dicts, lists and tuples."""
    t = type(data)
    if t is str:
        if not data.isascii():
            try:
                data.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"event {event!r} cannot be emitted: its data holds text with no UTF-8 form "
                    f"({data[max(exc.start - 10, 0):exc.end + 10]!r}: {exc.reason}); remove or replace that character"
                ) from None
    elif _depth > 50:
        return
    elif t is dict:
        for key, value in data.items():
            check_encodable(event, key, _depth + 1)
            check_encodable(event, value, _depth + 1)
    elif t is list or t is tuple:
        for value in data:
            check_encodable(event, value, _depth + 1)
