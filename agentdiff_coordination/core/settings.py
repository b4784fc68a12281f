"""The options of the core as one frozen record, each option checked where it is given.

``Settings`` is what ``configure(**options)`` changes; the environment gives the defaults
of a few (see ``from_environment``). A bad value is refused at once with an error that
names the option (or the environment variable), the value and what is accepted.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import LeaseLostError
from .records import LockGrant

__all__ = [
    "ENV_BACKEND",
    "ENV_EXIT_DRAIN",
    "ENV_LOG_LEVEL",
    "Settings",
    "check_options",
    "from_environment",
]

ENV_BACKEND = "AGENTDIFF_COORDINATION_BACKEND"
ENV_LOG_LEVEL = "AGENTDIFF_COORDINATION_LOG_LEVEL"
ENV_EXIT_DRAIN = "AGENTDIFF_COORDINATION_EXIT_DRAIN"
ENV_OPENTELEMETRY = "AGENTDIFF_COORDINATION_OPENTELEMETRY"

LeaseLostCallback = Callable[[LockGrant, LeaseLostError], Any]


@dataclass(frozen=True)
class Settings:
    """The options of the core; change them with ``configure(**options)``."""

    #: attempts after the first when a handler raises
    handler_retries: int = 2
    #: seconds before the first retry; doubles with each further retry
    retry_delay: float = 0.05
    #: most handler worker threads at once (more are queued, never dropped)
    handler_threads: int = 64
    #: seconds the interpreter waits at exit for handlers still pending
    exit_drain_timeout: float = 10.0
    #: dead letters kept for ``dead_letters()`` (older ones are dropped with a warning)
    dead_letter_limit: int = 1000
    #: seconds a distributed lock's lease lasts before it must be renewed
    lease: float = 30.0
    #: prefix of every key a shared backend writes
    key_prefix: str = "agentdiff"
    #: called as ``callback(grant, error)`` when a distributed lease is lost while held
    on_lease_lost: LeaseLostCallback | None = None
    #: most events waiting for their handlers in this process; past it ``emit`` waits for room
    max_pending: int = 100_000
    #: seconds ``emit`` waits for room under ``max_pending`` before it raises
    pending_timeout: float = 30.0
    #: spans and metrics through the global OpenTelemetry providers (extra ``otel``)
    opentelemetry: bool = False
    #: a JSON Lines file recording every run, wait and hold (``{pid}`` is the process id), or None
    record: str | None = None

    def replace(self, **options: Any) -> Settings:
        """A copy with ``options`` changed, each checked first."""
        return replace(self, **check_options(options))


# option -> (kind, lower bound is exclusive); kinds: seconds, count
_SECONDS = {"retry_delay": False, "exit_drain_timeout": False, "lease": True, "pending_timeout": False}
_COUNTS = {"handler_retries": False, "handler_threads": True, "dead_letter_limit": True, "max_pending": True}
_KNOWN = tuple(f.name for f in fields(Settings))


def check_seconds(value: object, what: str, *, positive: bool = False) -> float:
    """``value`` as a finite number of seconds (> 0 with ``positive``), or an error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number < 0 or (positive and number == 0):
        accepted = "a finite number of seconds > 0" if positive else "a finite number of seconds >= 0"
        raise ValueError(f"{what} must be {accepted}, not {value!r}")
    return number


def check_count(value: object, what: str, *, positive: bool = False) -> int:
    """``value`` as a whole number (>= 1 with ``positive``, else >= 0), or an error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a whole number, not {value!r}")
    if value < (1 if positive else 0):
        raise ValueError(f"{what} must be a whole number >= {1 if positive else 0}, not {value!r}")
    return value


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked (and normalised) as ``Settings`` fields; the first bad one raises."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in _SECONDS:
            out[key] = check_seconds(value, key, positive=_SECONDS[key])
        elif key in _COUNTS:
            out[key] = check_count(value, key, positive=_COUNTS[key])
        elif key == "key_prefix":
            out[key] = check_prefix(value, key)
        elif key == "opentelemetry":
            if not isinstance(value, bool):
                raise TypeError(f"opentelemetry must be True or False, not {value!r}")
            out[key] = value
        elif key == "record":
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TypeError(f"record must be a file path such as 'run-{{pid}}.jsonl' or None, not {value!r}")
            out[key] = value
        elif key == "on_lease_lost":
            if value is not None and not callable(value):
                raise TypeError(f"on_lease_lost must be a callable(grant, error) or None, not {value!r}")
            out[key] = value
        else:
            raise TypeError(f"configure() got an unknown option {key!r}; known options: {', '.join(sorted(_KNOWN))}")
    return out


#: characters a key prefix may not hold: they separate the parts of a shared backend's keys
PREFIX_FORBIDDEN = ":{}|"


def check_prefix(value: object, what: str = "key_prefix") -> str:
    """A key prefix: non-empty, printable, without the separators of keys (``:``, ``{``, ``}``, ``|``),
    so two different prefixes never share a key."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    bad = sorted({c for c in value if c in PREFIX_FORBIDDEN or not c.isprintable() or c.isspace()})
    if bad:
        raise ValueError(
            f"{what} {value!r} holds {''.join(bad)!r}: a key prefix may hold letters, digits and "
            f"punctuation other than {' '.join(PREFIX_FORBIDDEN)} (they separate the parts of keys) and no spaces"
        )
    return value


def log_level_from_environment(environ: Mapping[str, str] = os.environ) -> int | None:
    """The level ``AGENTDIFF_COORDINATION_LOG_LEVEL`` asks for, or None when unset."""
    raw = environ.get(ENV_LOG_LEVEL)
    if not raw:
        return None
    level = logging.getLevelName(raw.strip().upper())
    if not isinstance(level, int):
        raise ValueError(
            f"{ENV_LOG_LEVEL}={raw!r} is not a logging level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    return level


def from_environment(environ: Mapping[str, str] = os.environ) -> Settings:
    """The default settings with what the environment sets; a bad variable raises, naming it."""
    settings = Settings()
    raw = environ.get(ENV_EXIT_DRAIN)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        try:
            settings = replace(settings, exit_drain_timeout=check_seconds(value, ENV_EXIT_DRAIN))
        except ValueError:
            raise ValueError(f"{ENV_EXIT_DRAIN}={raw!r} is not a finite number of seconds >= 0") from None
    raw = environ.get(ENV_OPENTELEMETRY)
    if raw:
        flag = _FLAGS.get(raw.strip().lower())
        if flag is None:
            raise ValueError(f"{ENV_OPENTELEMETRY}={raw!r} is not a flag: expected one of 1, 0, true, false, yes, no, on, off")
        settings = replace(settings, opentelemetry=flag)
    log_level_from_environment(environ)
    return settings


_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
