"""OpenAI: ``limit_client(client, "openai")`` makes every model call wait for a named limit.

::

    from openai import OpenAI
    from agentdiff_coordination import limit
    from agentdiff_coordination.integrations.openai import limit_client

    limit("openai", requests="500/min", rate="90000/min")      # the provider's limits
    client = limit_client(OpenAI(), "openai")

Every chat completion, response and embedding (sync or async, streamed or not) waits
for the limit with an estimate of its tokens, reports the usage the answer states,
gives the answer's rate-limit headers to the limit, and on a 429 backs the limit off
for every process sharing it before the SDK retries. ``docs/providers.md`` tells more.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..core.extras import require
from ._limit_transport import wrap_client
from ._provider_usage import Estimate

__all__ = ["limit_client"]

C = TypeVar("C")


def limit_client(client: C, limit_name: str, *, estimate: Estimate = None) -> C:
    """A copy of ``client`` (``OpenAI`` or ``AsyncOpenAI``) whose model calls the limit
    ``limit_name`` admits (declare the limit first: an undeclared name is a ``LookupError``).

    ``estimate`` gives a request's cost before it is sent: by default its text length / 4
    as input tokens and its ``max_tokens`` / ``max_completion_tokens`` /
    ``max_output_tokens`` as output tokens; a whole number (input tokens) or a callable
    taking the request's JSON body and returning a number or
    ``{"input_tokens": .., "output_tokens": ..}`` replaces it. The copy uses a new
    default HTTP client of the SDK (its usual timeouts); a custom ``http_client`` the
    original had is not carried over.
    """
    sdk = require("openai", extra="openai", feature="integrations.openai.limit_client")
    wrapped: Any = wrap_client(client, sdk, limit_name, estimate, classes=("OpenAI", "AsyncOpenAI"), owner="integrations.openai.limit_client")
    return wrapped  # type: ignore[no-any-return]
