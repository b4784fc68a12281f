"""The HTTP transport the client wrappers give an SDK: each model call waits for the limit.

OpenAI's and Anthropic's SDKs send every request through an HTTPX client (``httpx2``
in their current releases, ``httpx`` before), which takes a ``transport=``: their
documented way to change how requests are sent. ``wrap_client`` gives the SDK client a
new default HTTP client (``client.with_options(http_client=...)``) whose transport wraps
the ordinary one and, for each model call (``POST`` to ``.../chat/completions``,
``/responses``, ``/embeddings``, ``/messages``):

1. estimates the request's tokens and waits for the limit with them;
2. sends it; the permit is held until the answer's headers arrive;
3. gives the headers to the limit (``observe_headers``); on a 429, backs the limit off
   for the time the answer asks (``retry-after``), before the SDK sees the answer and
   retries (its retry then waits for the limit like any request); an answer that is
   not a success is reported as having used no tokens;
4. reads the usage the answer states as its bytes pass to the SDK (streams too) and
   reports it when the SDK closes the answer.

Other requests (files, models, ...) pass through untouched. The logic is written once
(``_Calls``); the sync and async transports only do the I/O.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from types import ModuleType
from typing import Any

from ..core.limits import Limit, Permit
from ..core.validation import check_name
from . import _limit_api as lim
from ._provider_usage import Estimate, Tokens, UsageReader, check_estimate, default_estimate, estimate_of, is_model_call, retry_after

__all__ = ["wrap_client"]

logger = logging.getLogger("agentdiff_coordination")


class _Calls:
    """What the sync and async transports share: one limit name and one estimate."""

    __slots__ = ("name", "estimate")

    def __init__(self, name: str, estimate: Estimate) -> None:
        self.name = name
        self.estimate = estimate

    def begin(self, request: Any) -> tuple[Limit, dict[str, int]]:
        """The limit and the admission keywords for ``request``."""
        try:
            body = json.loads(request.content or b"{}")
        except Exception:  # a streamed upload, or not JSON: no text to count
            body = {}
        api = lim.lookup(self.name)
        tokens = estimate_of(self.estimate, body if isinstance(body, dict) else {}, default_estimate)
        return api, lim.keywords(api, tokens)

    def answered(self, api: Limit, response: Any) -> UsageReader | None:
        """Hear the answer's headers; a reader of its usage, or None when it is not a success."""
        headers = response.headers
        try:
            lim.observe_headers(api, headers)
            if response.status_code == 429:
                lim.backoff(api, retry_after(headers))
        except Exception:
            logger.warning("limit %r could not hear the provider's answer", api.name, exc_info=True)
        if response.status_code >= 400:
            return None
        return UsageReader(headers.get("content-type", ""), headers.get("content-encoding", ""))

    @staticmethod
    def used(api: Limit, reader: UsageReader | None) -> dict[str, int] | None:
        """The report keywords for what the answer stated (no tokens when it failed)."""
        tokens: Tokens | None = (0, 0) if reader is None else reader.tokens()
        return None if tokens is None else lim.keywords(api, tokens, cap=False)


class _Answer:
    """One answer passing to the SDK: its usage is read as it passes and reported once, at its close."""

    __slots__ = ("api", "permit", "reader", "_open")

    def __init__(self, api: Limit, permit: Permit, reader: UsageReader | None) -> None:
        self.api, self.permit, self.reader = api, permit, reader
        self._open = True

    def closing(self) -> dict[str, int] | None:
        """The report keywords, the first time only (None: nothing to report)."""
        if not self._open:
            return None
        self._open = False
        return _Calls.used(self.api, self.reader)

    def report_failed(self, exc: BaseException) -> None:
        logger.warning("reporting usage to limit %r failed", self.api.name, exc_info=exc)


@lru_cache(maxsize=None)
def _transport_types(http: ModuleType) -> tuple[type[Any], type[Any]]:
    """The sync and async transports, built on ``http`` (``httpx2`` or ``httpx``)."""

    class UsageStream(http.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, answer: _Answer) -> None:
            self._inner, self._answer = inner, answer

        def __iter__(self) -> Iterator[bytes]:
            reader = self._answer.reader
            for chunk in self._inner:
                if reader is not None:
                    reader.feed(chunk)
                yield chunk

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                if (dims := self._answer.closing()) is not None:
                    try:
                        lim.report(self._answer.permit, dims)
                    except Exception as exc:
                        self._answer.report_failed(exc)

    class AsyncUsageStream(http.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, answer: _Answer) -> None:
            self._inner, self._answer = inner, answer

        async def __aiter__(self) -> AsyncIterator[bytes]:
            reader = self._answer.reader
            async for chunk in self._inner:
                if reader is not None:
                    reader.feed(chunk)
                yield chunk

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                if (dims := self._answer.closing()) is not None:
                    try:
                        await lim.report_async(self._answer.permit, dims)
                    except Exception as exc:
                        self._answer.report_failed(exc)

    class LimitTransport(http.BaseTransport):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, calls: _Calls) -> None:
            self._inner, self._calls = inner, calls

        def handle_request(self, request: Any) -> Any:
            if not is_model_call(request.method, request.url.path):
                return self._inner.handle_request(request)
            api, dims = self._calls.begin(request)
            with lim.admit(api, dims) as permit:
                response = self._inner.handle_request(request)
            stream = UsageStream(response.stream, _Answer(api, permit, self._calls.answered(api, response)))
            return http.Response(response.status_code, headers=response.headers, stream=stream, extensions=response.extensions)

        def close(self) -> None:
            self._inner.close()

    class AsyncLimitTransport(http.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, calls: _Calls) -> None:
            self._inner, self._calls = inner, calls

        async def handle_async_request(self, request: Any) -> Any:
            if not is_model_call(request.method, request.url.path):
                return await self._inner.handle_async_request(request)
            api, dims = self._calls.begin(request)
            async with lim.admit(api, dims) as permit:
                response = await self._inner.handle_async_request(request)
            stream = AsyncUsageStream(response.stream, _Answer(api, permit, self._calls.answered(api, response)))
            return http.Response(response.status_code, headers=response.headers, stream=stream, extensions=response.extensions)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return LimitTransport, AsyncLimitTransport


def _http_module(client_class: type[Any]) -> ModuleType:
    """The HTTPX package an SDK's default HTTP client class is built on."""
    for base in client_class.__mro__:
        if base.__name__ in ("Client", "AsyncClient"):
            return sys.modules[base.__module__.split(".")[0]]
    raise TypeError(f"{client_class!r} is not an HTTPX client class")  # pragma: no cover


def wrap_client(client: Any, sdk: ModuleType, limit_name: str, estimate: object, *, classes: tuple[str, str], owner: str) -> Any:
    """``client`` (of ``sdk``) with every model call admitted by the limit ``limit_name``.

    ``classes`` names the SDK's sync and async client classes; ``owner`` names the
    wrapper in errors.
    """
    sync_name, async_name = classes
    sync_type, async_type = getattr(sdk, sync_name), getattr(sdk, async_name)
    if not isinstance(client, (sync_type, async_type)):
        raise TypeError(f"{owner} takes an {sdk.__name__}.{sync_name} or {async_name} client, not {client!r}")
    check_name(limit_name, "limit name")
    # declared first: an error raised inside the transport would reach the caller only as the
    # SDK's APIConnectionError, after its retries
    lim.lookup(limit_name)
    calls = _Calls(limit_name, check_estimate(estimate, owner))
    is_async = isinstance(client, async_type)
    client_class = getattr(sdk, "DefaultAsyncHttpxClient" if is_async else "DefaultHttpxClient")
    http = _http_module(client_class)
    sync_transport, async_transport = _transport_types(http)
    limits = http.Limits(max_connections=1000, max_keepalive_connections=100)
    if is_async:
        transport = async_transport(http.AsyncHTTPTransport(limits=limits), calls)
    else:
        transport = sync_transport(http.HTTPTransport(limits=limits), calls)
    return client.with_options(http_client=client_class(transport=transport))
