"""``LimitMiddleware``: LangChain v1 agents' model calls admitted by a named limit.

Re-exported by ``integrations.langchain``; imported only when that name is used, so the
rate limiter and the callback there need nothing beyond ``langchain-core``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..core.extras import require
from ..core.limits import Limit
from ..core.validation import check_name
from . import _limit_api as lim
from ._provider_usage import Estimate, Tokens, check_estimate, estimate_of, retry_after, text_length

_middleware = require("langchain.agents.middleware", extra="langchain", feature="integrations.langchain.LimitMiddleware")
AgentMiddleware: Any = _middleware.AgentMiddleware

__all__ = ["LimitMiddleware"]


def _request_estimate(request: Any) -> Tokens:
    """Input: the messages' (and system message's) text length / 4; output: the model's ``max_tokens``."""
    messages = list(request.messages)
    if getattr(request, "system_message", None) is not None:
        messages.append(request.system_message)
    chars = sum(text_length(getattr(m, "content", "")) for m in messages)
    settings = getattr(request, "model_settings", None) or {}
    output = settings.get("max_tokens") if isinstance(settings, Mapping) else None
    if not isinstance(output, int):
        output = getattr(request.model, "max_tokens", None)
    return math.ceil(chars / 4), output if isinstance(output, int) and output > 0 else 0


def _stated(response: Any) -> Tokens | None:
    """(input, output) tokens the response's messages state in ``usage_metadata``, or None."""
    result = getattr(response, "result", None)
    if result is None:
        result = getattr(getattr(response, "model_response", None), "result", None)
    messages = result if isinstance(result, list) else [response]
    found = [u for m in messages if isinstance(u := getattr(m, "usage_metadata", None), Mapping)]
    if not found:
        return None
    return sum(int(u.get("input_tokens") or 0) for u in found), sum(int(u.get("output_tokens") or 0) for u in found)


def _rate_limited(exc: BaseException) -> Mapping[str, str] | None:
    """The headers of a provider's 429 carried by ``exc`` ({} without headers), None if it is no 429."""
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    if status != 429:
        return None
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else {}


class LimitMiddleware(AgentMiddleware):  # type: ignore[misc]
    """Admits each model call of a ``create_agent`` agent under the limit ``limit_name``.

    ``estimate`` gives a call's cost before it is made: by default the messages' text
    length / 4 as input tokens and the model's ``max_tokens`` as output tokens; a whole
    number (input tokens) or a callable taking the ``ModelRequest`` and returning a number
    or ``{"input_tokens": .., "output_tokens": ..}`` replaces it. After the call the
    usage in the answer's ``usage_metadata`` is reported; a provider's 429 (an error with
    ``status_code`` 429 and its response's headers) backs the limit off for
    ``retry-after`` before the error goes on.
    """

    def __init__(self, limit_name: str, estimate: Estimate = None) -> None:
        super().__init__()
        self.limit_name = check_name(limit_name, "limit name")
        self.estimate = check_estimate(estimate, "LimitMiddleware")

    @property
    def name(self) -> str:
        return f"LimitMiddleware[{self.limit_name}]"

    def _begin(self, request: Any) -> tuple[Limit, dict[str, int]]:
        api = lim.lookup(self.limit_name)
        return api, lim.keywords(api, estimate_of(self.estimate, request, _request_estimate))

    @staticmethod
    def _failed(api: Limit, exc: BaseException) -> dict[str, int] | None:
        headers = _rate_limited(exc)
        if headers is None:
            return None
        lim.observe_headers(api, headers)
        lim.backoff(api, retry_after(headers))
        return lim.keywords(api, (0, 0))

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """Wait for the limit, call the model, report its usage (or back off on a 429)."""
        api, dims = self._begin(request)
        with lim.admit(api, dims) as permit:
            try:
                response = handler(request)
            except Exception as exc:
                if (zero := self._failed(api, exc)) is not None:
                    lim.report(permit, zero)
                raise
            if (tokens := _stated(response)) is not None:
                lim.report(permit, lim.keywords(api, tokens, cap=False))
            return response

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        """The async twin of ``wrap_model_call``: waits without blocking the loop."""
        api, dims = self._begin(request)
        async with lim.admit(api, dims) as permit:
            try:
                response = await handler(request)
            except Exception as exc:
                if (zero := self._failed(api, exc)) is not None:
                    await lim.report_async(permit, zero)
                raise
            if (tokens := _stated(response)) is not None:
                await lim.report_async(permit, lim.keywords(api, tokens, cap=False))
            return response

    def __repr__(self) -> str:
        return f"LimitMiddleware({self.limit_name!r})"
