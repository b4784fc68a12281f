"""Checks of user input shared by the core: names and timeouts, with clear errors."""

from __future__ import annotations

__all__ = ["check_decorator_name", "check_name", "check_timeout"]


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
    if timeout == float("inf"):
        return None  # the same as waiting forever, without overflowing the platform's timers
    return float(timeout)
