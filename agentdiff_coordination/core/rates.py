"""Rates of limits: ``parse_rate("500/min")`` and the ``Rate`` it returns.

A rate is "at most N cost in any window of a period" (a sliding window). The accepted
forms are ``N/s``, ``N/min``, ``N/hour``, ``N/day`` (with their usual spellings) and
several units such as ``100/10s``; anything else is a ``ValueError`` that names the rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ACCEPTED_RATES", "MAX_PERIOD", "Rate", "parse_rate", "parse_rates"]

_UNITS: dict[str, tuple[float, str]] = {}
for _names, _seconds, _canonical in (
    (("s", "sec", "secs", "second", "seconds"), 1.0, "s"),
    (("min", "mins", "minute", "minutes"), 60.0, "min"),
    (("h", "hr", "hrs", "hour", "hours"), 3600.0, "hour"),
    (("d", "day", "days"), 86400.0, "day"),
):
    for _name in _names:
        _UNITS[_name] = (_seconds, _canonical)

#: the longest period a rate may have (ten years): windows longer than that are a mistake
MAX_PERIOD = 3650 * 86400.0

ACCEPTED_RATES = (
    "'N/s', 'N/min', 'N/hour' or 'N/day' with N a whole number >= 1 "
    "(e.g. '20/s', '500/min', '90000/min', '10/hour', '1000/day'), "
    "optionally over several units such as '100/10s' or '300/5min'"
)
_RATE_RE = re.compile(r"^\s*([^/]*?)\s*/\s*(\d*)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` cost in any ``period`` seconds (a sliding window)."""

    limit: int
    period: float
    text: str = ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rate) and (self.limit, self.period) == (other.limit, other.period)

    def __hash__(self) -> int:
        return hash((self.limit, self.period))

    def __str__(self) -> str:
        return self.text or f"{self.limit}/{self.period:g}s"


def parse_rate(value: str | Rate) -> Rate:
    """``"500/min"`` as a ``Rate``; a malformed rate is a ``ValueError`` naming it."""
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a rate must be a string such as '500/min', not {type(value).__name__} ({value!r})")
    match = _RATE_RE.match(value)
    if match is None:
        raise ValueError(f"malformed rate {value!r}: expected {ACCEPTED_RATES}")
    amount, count, unit = match.groups()
    if not amount.isdigit():
        raise ValueError(f"malformed rate {value!r}: the amount {amount!r} is not a whole number >= 1; expected {ACCEPTED_RATES}")
    if int(amount) < 1:
        raise ValueError(f"malformed rate {value!r}: the amount must be at least 1 (a limit of 0 admits nothing); expected {ACCEPTED_RATES}")
    found = _UNITS.get(unit.lower())
    if found is None:
        raise ValueError(f"malformed rate {value!r}: unknown unit {unit!r}; expected {ACCEPTED_RATES}")
    if count and int(count) < 1:
        raise ValueError(f"malformed rate {value!r}: the number of units must be at least 1; expected {ACCEPTED_RATES}")
    seconds, canonical = found
    n = int(count) if count else 1
    if seconds * n > MAX_PERIOD:
        raise ValueError(
            f"malformed rate {value!r}: its period of {count}{unit} is longer than any backend keeps a window "
            f"(at most {MAX_PERIOD // 86400:.0f} days); expected {ACCEPTED_RATES}"
        )
    text = f"{int(amount)}/{n if n != 1 else ''}{canonical}"
    return Rate(int(amount), seconds * n, text)


def parse_rates(value: str | Rate | Iterable[str | Rate] | None, what: str) -> tuple[Rate, ...]:
    """The rates ``value`` gives (one, a list, or None for none); ``what`` names it in errors."""
    if value is None:
        return ()
    if isinstance(value, (str, Rate)):
        return (parse_rate(value),)
    if not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a rate string such as '500/min' or a list of them, not {value!r}")
    out = tuple(parse_rate(v) for v in value)
    if not out:
        raise ValueError(f"{what} is an empty list: give at least one rate such as '500/min', or None")
    return out
