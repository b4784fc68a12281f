"""LangChain: one named limit shared by every chat model, thread and process.

Any LangChain chat model takes a ``rate_limiter=``; give it ``LimitRateLimiter`` and
every model (in every LangGraph node, thread and, on Redis, process) draws on the
same limit::

    from agentdiff_coordination import limit
    from agentdiff_coordination.integrations.langchain import LimitRateLimiter, LimitUsageCallback

    limit("openai", requests="500/min", rate="90000/min")
    model = ChatOpenAI(
        rate_limiter=LimitRateLimiter("openai"),      # each call waits for its turn
        callbacks=[LimitUsageCallback("openai")],     # then counts the tokens it used
    )

LangChain asks its limiter before each call and tells it nothing afterwards, so a
limit used here must be a rate: a concurrency slot could never be given back.
Tokens are known only once the model answers; ``LimitUsageCallback`` charges them to
the limit's weighted rates then, and the next requests wait for that budget.

For LangChain v1 agents (``langchain.agents.create_agent``), ``LimitMiddleware`` does
all of it around each model call: admits it with an estimate of its tokens, reports the
usage its answer states, and turns a provider's 429 into a backoff of the limit::

    agent = create_agent(model, tools, middleware=[LimitMiddleware("openai")])
"""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.outputs import LLMResult
    from langchain_core.rate_limiters import BaseRateLimiter
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the LangChain integration needs langchain-core: pip install 'agentdiff-coordination[langchain]' "
        "(the [langgraph] extra brings it too)"
    ) from exc

from ..core.errors import CoordinationTimeoutError
from ..core.limits import Limit, get_limit
from ..core.validation import check_timeout

__all__ = ["LimitMiddleware", "LimitRateLimiter", "LimitUsageCallback"]


def __getattr__(name: str) -> Any:
    """``LimitMiddleware`` (LangChain v1 agents), imported on first use: it needs ``langchain>=1``."""
    if name == "LimitMiddleware":
        from ._langchain_middleware import LimitMiddleware

        return LimitMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rate_limit(limit: str | Limit, what: str) -> Limit:
    found = limit if isinstance(limit, Limit) else get_limit(limit)
    if found.spec.concurrency is not None:
        raise ValueError(
            f"{what} cannot use limit {found.name!r}: it has concurrency={found.spec.concurrency}, and LangChain "
            "never says when a call ends, so the slot could not be given back. Declare a rate-only limit for "
            "the model, or wrap the call in coordinate(..., limit=...) or 'with limit(...)' instead"
        )
    return found


class LimitRateLimiter(BaseRateLimiter):
    """A LangChain rate limiter backed by the named limit (declared with ``limit(...)``).

    Each model call is admitted with ``cost`` (1: one request). ``timeout`` bounds a
    blocking wait: past it ``CoordinationTimeoutError`` names the limit, because
    LangChain ignores a ``False`` from a blocking limiter and would call anyway.
    ``blocking=False`` tries once without queueing and returns whether it was admitted.
    """

    def __init__(self, limit: str | Limit, *, cost: int = 1, timeout: float | None = None) -> None:
        if not isinstance(limit, (str, Limit)):
            raise TypeError(f"LimitRateLimiter takes a limit name or a limit(...) object, not {limit!r}")
        self._name = limit if isinstance(limit, str) else limit.name
        self._limit = limit if isinstance(limit, Limit) else None
        self.timeout = check_timeout(timeout)
        self.cost = cost
        if self._limit is not None:
            _rate_limit(self._limit, "LimitRateLimiter")
            self._limit.spec.check_cost(cost)

    @property
    def limit(self) -> Limit:
        """The limit (looked up by name on first use, so it may be declared after the model)."""
        found = self._limit
        if found is None:
            found = self._limit = _rate_limit(self._name, "LimitRateLimiter")
            found.spec.check_cost(self.cost)
        return found

    def acquire(self, *, blocking: bool = True) -> bool:
        """Wait for the limit (or, with ``blocking=False``, try once); True when admitted."""
        try:
            self.limit.acquire(self.cost, timeout=self.timeout if blocking else 0)
        except CoordinationTimeoutError:
            if blocking:
                raise
            return False
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        """The async twin of ``acquire``: waits without blocking the event loop."""
        try:
            await self.limit.acquire_async(self.cost, timeout=self.timeout if blocking else 0)
        except CoordinationTimeoutError:
            if blocking:
                raise
            return False
        return True

    def __repr__(self) -> str:
        return f"LimitRateLimiter({self._name!r}, cost={self.cost}, timeout={self.timeout})"


def tokens_used(response: LLMResult) -> int:
    """The tokens a model call used, from its messages' ``usage_metadata`` (or the
    provider's ``llm_output["token_usage"]``); 0 when the model did not say."""
    total = 0
    for generations in response.generations:
        for generation in generations:
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if usage:
                total += int(usage.get("total_tokens") or usage.get("input_tokens", 0) + usage.get("output_tokens", 0))
    if not total and response.llm_output:
        usage = response.llm_output.get("token_usage") or response.llm_output.get("usage") or {}
        total = int(usage.get("total_tokens") or 0)
    return total


class LimitUsageCallback(BaseCallbackHandler):
    """Charges the tokens each model call used to the limit's weighted rates (``rate=``).

    Give it to the model (``callbacks=[...]``) next to ``LimitRateLimiter``: the limiter
    admits each request, this counts what it cost, and later requests wait for it.
    """

    def __init__(self, limit: str | Limit) -> None:
        super().__init__()
        self._name = limit if isinstance(limit, str) else limit.name
        self._limit = limit if isinstance(limit, Limit) else None

    @property
    def limit(self) -> Limit:
        found = self._limit
        if found is None:
            found = self._limit = get_limit(self._name)
        return found

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        """Charge the tokens of the finished call."""
        used = tokens_used(response)
        if used:
            self.limit.charge(used)

    def __repr__(self) -> str:
        return f"LimitUsageCallback({self._name!r})"
