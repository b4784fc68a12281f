"""Every call the provider integrations make on a limit, in one place.

The integrations speak the Limit API of issue 12: admission with named dimensions
(``api(tokens=n)`` or ``api(input_tokens=i, output_tokens=o)``, as ``with`` or
``async with``), ``permit.report(...)`` / ``await permit.report_async(...)`` with the
same keywords, ``api.backoff(seconds)`` and ``api.observe_headers(headers)``.
``keywords()`` is the one adapter from an estimate to those keywords.

SHIM: until that API lands in ``core.limits`` (today: ``limit(name, rate=...,
requests=..., concurrency=...)``, ``api(cost=n)``, ``permit.report(actual)``), the
functions below marked SHIM map to today's API: the dimensions become one cost
(input + output tokens) charged to the limit's ``rate=``; ``backoff`` makes only this
process wait (not the fleet); ``observe_headers`` does nothing. Once ``Limit`` has
``backoff``, ``_REAL`` is true and the shim is never used: delete the SHIM section and
the ``if not _REAL`` branches, nothing else.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ..core.limits import Limit, Permit, get_limit
from ._provider_usage import Tokens

__all__ = ["admit", "backoff", "keywords", "lookup", "observe_headers", "report", "report_async"]

_REAL = hasattr(Limit, "backoff") and hasattr(Limit, "observe_headers")


def lookup(name: str) -> Limit:
    """The declared limit called ``name`` (looked up per request, so a limit declared anew is used)."""
    return get_limit(name)


def keywords(api: Limit, tokens: Tokens) -> dict[str, int]:
    """The admission (and report) keywords for ``tokens`` = (input, output) under ``api``:
    ``input_tokens``/``output_tokens`` when the limit counts them apart, else ``tokens``."""
    i, o = tokens
    spec = api.spec
    if getattr(spec, "input_tokens", None) or getattr(spec, "output_tokens", None):
        return {"input_tokens": i, "output_tokens": o}
    if getattr(spec, "tokens", None) or spec.rates:
        return {"tokens": i + o}
    return {}


def admit(api: Limit, dims: Mapping[str, int]) -> Any:
    """``api(**dims)``: a context manager (``with`` / ``async with``) giving a ``Permit``."""
    if _REAL:
        return api(**dims)
    return _ShimAdmission(api, dims)  # SHIM


def report(permit: Permit, dims: Mapping[str, int]) -> None:
    """``permit.report(**dims)``: the usage the provider stated."""
    if _REAL:
        permit.report(**dims)
    elif "tokens" in dims:  # SHIM: only a rate= limit was charged tokens
        permit.report(max(0, dims["tokens"]))


async def report_async(permit: Permit, dims: Mapping[str, int]) -> None:
    """``await permit.report_async(**dims)``."""
    if _REAL:
        await permit.report_async(**dims)
    elif "tokens" in dims:  # SHIM
        await permit.report_async(max(0, dims["tokens"]))


def backoff(api: Limit, seconds: float) -> None:
    """``api.backoff(seconds)``: nothing admitted under the limit before then."""
    if _REAL:
        api.backoff(seconds)  # type: ignore[attr-defined]
    else:
        _shim_backoff(api.name, seconds)  # SHIM


def observe_headers(api: Limit, headers: Mapping[str, str]) -> None:
    """``api.observe_headers(headers)``: what the provider says remains."""
    if _REAL:
        api.observe_headers(headers)  # type: ignore[attr-defined]


# -- SHIM: today's Limit API; delete this section once Limit.backoff exists --------------

_until: dict[str, float] = {}  # limit name -> monotonic time before which this process waits
_until_lock = threading.Lock()


def _shim_backoff(name: str, seconds: float) -> None:
    with _until_lock:
        _until[name] = max(_until.get(name, 0.0), time.monotonic() + max(0.0, seconds))


def _shim_wait(name: str) -> float:
    return _until.get(name, 0.0) - time.monotonic()


class _ShimAdmission:
    """Waits out this process's backoff, then ``api(cost=input+output)`` (1 without ``rate=``;
    at most the smallest ``rate=``)."""

    __slots__ = ("_use", "_name")

    def __init__(self, api: Limit, dims: Mapping[str, int]) -> None:
        # an estimate above what one window admits waits for a whole window (the provider judges it)
        cost = min(max(1, dims.get("tokens", 0)), api.max_cost or 1) if api.spec.rates else 1
        self._use = api(cost=cost)
        self._name = api.name

    def __enter__(self) -> Permit:
        while (wait := _shim_wait(self._name)) > 0:
            time.sleep(wait)
        permit: Permit = self._use.__enter__()
        return permit

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._use.__exit__(t, e, tb)

    async def __aenter__(self) -> Permit:
        while (wait := _shim_wait(self._name)) > 0:
            await asyncio.sleep(wait)
        permit: Permit = await self._use.__aenter__()
        return permit

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self._use.__aexit__(t, e, tb)
