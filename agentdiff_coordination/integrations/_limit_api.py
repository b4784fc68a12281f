"""Every call the provider integrations make on a limit, in one place.

Admission with named dimensions (``api(tokens=n)`` or ``api(input_tokens=i,
output_tokens=o)``, as ``with`` or ``async with``), ``permit.report(...)`` / ``await
permit.report_async(...)`` with the same keywords, ``api.backoff(seconds)`` and
``api.observe_headers(headers)``. ``keywords()`` is the one adapter from an estimate to
those keywords.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.limits import Limit, Permit, get_limit
from ..core.rates import Rate
from ._provider_usage import Tokens

__all__ = ["admit", "backoff", "keywords", "lookup", "observe_headers", "report", "report_async"]


def lookup(name: str) -> Limit:
    """The declared limit called ``name`` (looked up per request, so a limit declared anew is used)."""
    return get_limit(name)


def _capped(value: int, rates: tuple[Rate, ...]) -> int:
    """An estimate no larger than one window of the dimension admits (the provider judges the rest)."""
    return min([max(0, value), *(r.limit for r in rates)])


def keywords(api: Limit, tokens: Tokens, *, cap: bool = True) -> dict[str, int]:
    """The admission (and report) keywords for ``tokens`` = (input, output) under ``api``:
    ``input_tokens``/``output_tokens`` when the limit counts them apart, else ``tokens``.
    An admission's estimate is capped at what one window admits (``cap``); a report is not."""
    i, o = tokens
    spec = api.spec
    if spec.input_tokens or spec.output_tokens:
        if cap:
            i, o = _capped(i, spec.input_tokens), _capped(o, spec.output_tokens)
            total = _capped(i + o, spec.rates)
            return {"tokens": total, "input_tokens": i, "output_tokens": o}
        return {"input_tokens": i, "output_tokens": o}
    if spec.rates:
        return {"tokens": _capped(i + o, spec.rates) if cap else i + o}
    return {}


def admit(api: Limit, dims: Mapping[str, int]) -> Any:
    """``api(**dims)``: a context manager (``with`` / ``async with``) giving a ``Permit``."""
    return api(**dims)


def report(permit: Permit, dims: Mapping[str, int]) -> None:
    """``permit.report(**dims)``: the usage the provider stated (nothing when the limit counts no tokens)."""
    if dims:
        permit.report(**dims)


async def report_async(permit: Permit, dims: Mapping[str, int]) -> None:
    """``await permit.report_async(**dims)``."""
    if dims:
        await permit.report_async(**dims)


def backoff(api: Limit, seconds: float) -> None:
    """``api.backoff(seconds)``: nothing admitted under the limit, in any process, before then."""
    api.backoff(seconds)


def observe_headers(api: Limit, headers: Mapping[str, str]) -> None:
    """``api.observe_headers(headers)``: what the provider says remains, and until when."""
    api.observe_headers(headers)
