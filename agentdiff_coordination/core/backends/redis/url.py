"""The URL of a Redis backend and its options, each checked where it is given.

``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS) and
``unix:///path/redis.sock?db=0`` take redis-py's own connection options in the query
string (``REDIS_PY_OPTIONS``) and these of ours (also keywords of ``RedisBackend``):

``prefix``            key prefix (default: the runtime's ``key_prefix``, ``"agentdiff"``)
``lease``             seconds of a lock lease (default: the runtime's ``lease``, 30)
``max_deliveries``    deliveries of one event to one subscription before it goes to the
                      dead-letter stream ``PREFIX:events:dead`` (default 5)
``consumer_ttl``      seconds after which a silent process counts as gone and its events
                      are taken over by the others (default 10)
``stream_retention``  entries the event stream keeps while no consumer group reads it
                      (default 10,000; with groups it keeps what they have not handled)

An option nobody knows, or a bad value, is a ``ValueError`` naming the option, the value
and what is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...settings import check_count, check_prefix, check_seconds

__all__ = ["OUR_OPTIONS", "REDIS_PY_OPTIONS", "RedisOptions", "parse_url", "safe_url"]

SCHEMES = ("redis", "rediss", "unix")

#: options of ours, with what each accepts
OUR_OPTIONS = {
    "prefix": "a key prefix without ':', '{', '}', '|' or spaces",
    "key_prefix": "the same as prefix",
    "lease": "a finite number of seconds > 0",
    "max_deliveries": "a whole number >= 1",
    "consumer_ttl": "a finite number of seconds > 0",
    "stream_retention": "a whole number >= 1",
}

#: redis-py's own connection options, passed on to it as they are
REDIS_PY_OPTIONS = frozenset({
    "db", "username", "password", "client_name", "lib_name", "lib_version",
    "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
    "socket_read_size", "socket_type", "retry_on_timeout", "retry_on_error", "max_connections",
    "health_check_interval", "timeout", "encoding", "encoding_errors",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_ca_data",
    "ssl_check_hostname", "ssl_password", "ssl_ciphers", "ssl_min_version", "ssl_include_verify_flags",
    "ssl_exclude_verify_flags", "ssl_validate_ocsp", "ssl_validate_ocsp_stapled", "ssl_ocsp_context",
    "ssl_ocsp_expected_cert", "legacy_responses", "credential_provider",
})

#: redis-py options the backend sets itself
FIXED = {"decode_responses": "the backend reads bytes", "protocol": "the backend speaks RESP2",
         "retry": "the backend retries by its own policy", "connection_pool": "the backend makes its pool"}


@dataclass(frozen=True)
class RedisOptions:
    """A checked URL: what goes to redis-py, and our options (None: from the runtime)."""

    redis_url: str
    safe_url: str
    prefix: str | None = None
    lease: float | None = None
    max_deliveries: int = 5
    consumer_ttl: float = 10.0
    stream_retention: int = 10_000
    redis_options: dict[str, Any] = field(default_factory=dict)


def safe_url(url: str) -> str:
    """The URL without its password and query, for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, query=""))


def _number(option: str, raw: Any) -> float:
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return math.nan
    return raw  # type: ignore[no-any-return]  # checked by the caller


def check_option(option: str, raw: Any, where: str) -> Any:
    """One option of ours, checked; ``where`` says where it was given (for the error)."""
    what = f"{where} {option}={raw!r}"
    try:
        if option in ("prefix", "key_prefix"):
            return check_prefix(raw, what)
        if option in ("lease", "consumer_ttl"):
            return check_seconds(_number(option, raw), what, positive=True)
        if option in ("max_deliveries", "stream_retention"):
            value = int(raw) if isinstance(raw, str) and raw.strip().isdigit() else raw
            return check_count(value, what, positive=True)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not accepted: {option} must be {OUR_OPTIONS[option]}") from None
    raise ValueError(_unknown(option, raw, where))


def _unknown(option: str, raw: Any, where: str) -> str:
    if option in FIXED:
        return f"{where} {option}={raw!r} is not accepted: {FIXED[option]}"
    return (
        f"{where} {option}={raw!r} is not a known option; accepted: ours ({', '.join(OUR_OPTIONS)}) "
        f"and redis-py's ({', '.join(sorted(REDIS_PY_OPTIONS))})"
    )


def check_redis_option(option: str, raw: Any, where: str) -> None:
    """Refuse a redis-py option nobody knows (or one the backend sets itself)."""
    if option not in REDIS_PY_OPTIONS:
        raise ValueError(_unknown(option, raw, where))


def parse_url(url: object, keywords: dict[str, Any], redis_options: dict[str, Any]) -> RedisOptions:
    """Check ``url``, our ``keywords`` (None: not given) and redis-py ``redis_options``."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"Redis URL must look like 'redis://host:6379/0', not {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"Redis URL {safe_url(url)!r}: the scheme must be one of {', '.join(SCHEMES)}")
    path = parts.path.strip("/")
    if parts.scheme != "unix" and path and not path.isdigit():
        raise ValueError(
            f"Redis URL {safe_url(url)!r}: the database path {parts.path!r} must be a number "
            "(redis://host:6379/0), or nothing for database 0"
        )
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"Redis URL {safe_url(url)!r}: its query {parts.query!r} is not name=value&...") from None
    ours: dict[str, Any] = {}
    kept: list[tuple[str, str]] = []
    for option, raw in query:
        if option in OUR_OPTIONS:
            ours["prefix" if option == "key_prefix" else option] = check_option(option, raw, "Redis URL option")
        else:
            check_redis_option(option, raw, "Redis URL option")
            kept.append((option, raw))
    for option, raw in keywords.items():
        if raw is not None:
            ours["prefix" if option == "key_prefix" else option] = check_option(option, raw, "RedisBackend option")
    for option, raw in redis_options.items():
        check_redis_option(option, raw, "RedisBackend option")
    return RedisOptions(
        redis_url=urlunsplit(parts._replace(query=urlencode(kept))),
        safe_url=safe_url(url),
        redis_options=dict(redis_options),
        **ours,
    )
