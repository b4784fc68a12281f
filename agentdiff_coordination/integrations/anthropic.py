"""Anthropic: ``limit_client(client, "anthropic")`` makes every message wait for a named limit.

::

    from anthropic import Anthropic
    from agentdiff_coordination import limit
    from agentdiff_coordination.integrations.anthropic import limit_client

    limit("anthropic", requests="50/min", input_tokens="30000/min", output_tokens="8000/min")
    client = limit_client(Anthropic(), "anthropic")

Every ``messages.create`` and ``messages.stream`` (sync or async) waits for the limit
with an estimate of its input and output tokens, reports the usage the answer states
(``message_start`` and ``message_delta`` of a stream), gives the answer's
``anthropic-ratelimit-*`` headers to the limit, and on a 429 backs the limit off for
every process sharing it before the SDK retries. ``docs/providers.md`` tells more.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..core.extras import require
from ._limit_transport import wrap_client
from ._provider_usage import Estimate

__all__ = ["limit_client"]

C = TypeVar("C")


def limit_client(client: C, limit_name: str, *, estimate: Estimate = None) -> C:
    """A copy of ``client`` (``Anthropic`` or ``AsyncAnthropic``) whose messages the limit
    ``limit_name`` admits (declare the limit first: an undeclared name is a ``LookupError``).

    ``estimate`` gives a request's cost before it is sent: by default its text length / 4
    (messages, system, tools) as input tokens and its ``max_tokens`` as output tokens; a
    whole number (input tokens) or a callable taking the request's JSON body and
    returning a number or ``{"input_tokens": .., "output_tokens": ..}`` replaces it. The
    copy uses a new default HTTP client of the SDK (its usual timeouts); a custom
    ``http_client`` the original had is not carried over.
    """
    sdk = require("anthropic", extra="anthropic", feature="integrations.anthropic.limit_client")
    wrapped: Any = wrap_client(client, sdk, limit_name, estimate, classes=("Anthropic", "AsyncAnthropic"), owner="integrations.anthropic.limit_client")
    return wrapped  # type: ignore[no-any-return]
