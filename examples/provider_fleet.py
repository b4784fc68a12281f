"""A team of agents on one provider's limits: the real OpenAI and Anthropic SDKs, offline.

    python examples/provider_fleet.py

The stand-in provider (``agentdiff_coordination.stand_in_provider``) is a real HTTP
server on loopback that speaks OpenAI's and Anthropic's APIs and enforces its own
limits, like a provider would: here 30 requests and 2400 tokens per "minute" of 3
seconds, answering 429 past them. Eight agents (threads) call it through the real
SDKs, pointed at it with ``base_url``, twice:

1. bare clients: the provider answers many 429s, and the SDKs retry;
2. clients wrapped with ``limit_client`` on one named limit: every call waits for its
   turn with an estimate of its tokens, and the usage each answer states is reported.

It prints what the provider saw each time and checks the second run kept the
provider's limits (no 429: at most one at a window's edge on a loaded machine).
Runs in about 20 seconds. Pass a Redis URL as the only argument to share the limit
through Redis (the same code then holds for processes on many machines).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import Any

import anthropic
import openai

from agentdiff_coordination import configure, limit
from agentdiff_coordination.core.limits import Rate
from agentdiff_coordination.integrations.anthropic import limit_client as limit_anthropic
from agentdiff_coordination.integrations.openai import limit_client
from agentdiff_coordination.stand_in_provider import StandInProvider

MINUTE, REQUESTS, TOKENS = 3.0, 30, 2400
AGENTS, SECONDS = 8, 6.0
MARGIN = 1.1  # our minute a little longer: on this scale, scheduling delays are not small beside a minute


def agent(i: int, oa: Any, an: Any, end: float, failed: list[int]) -> None:
    rng = random.Random(i)
    while time.monotonic() < end:
        question = "please summarise this paragraph " * rng.randint(4, 12)
        try:
            if i % 2:  # half the team talks to the OpenAI API, half to Anthropic's: one provider here
                oa.chat.completions.create(model="gpt-stand-in", messages=[{"role": "user", "content": question}], max_tokens=40)
            else:
                with an.messages.stream(model="claude-stand-in", max_tokens=40, messages=[{"role": "user", "content": question}]) as s:
                    s.until_done()
        except (openai.RateLimitError, anthropic.RateLimitError):
            failed.append(i)  # still 429 after the SDK's own retries


def run(wrapped: bool) -> tuple[Any, int]:
    with StandInProvider(rpm=REQUESTS, tpm=TOKENS, minute=MINUTE, latency=0.01, reply_tokens=30) as provider:
        oa: Any = openai.OpenAI(api_key="offline", base_url=provider.openai_url)
        an: Any = anthropic.Anthropic(api_key="offline", base_url=provider.url)
        if wrapped:
            # the provider's limits over a slightly longer minute: a request reaches it just after its admission
            limit("provider", requests=Rate(REQUESTS, MINUTE * MARGIN), rate=Rate(TOKENS, MINUTE * MARGIN))
            oa, an = limit_client(oa, "provider"), limit_anthropic(an, "provider")
        failed: list[int] = []
        end = time.monotonic() + SECONDS
        threads = [threading.Thread(target=agent, args=(i, oa, an, end, failed)) for i in range(AGENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return provider.stats(), len(failed)


def main() -> None:
    if len(sys.argv) > 1:
        configure(sys.argv[1])
    print(f"provider: {REQUESTS} requests and {TOKENS} tokens per {MINUTE:g} s 'minute'; {AGENTS} agents for {SECONDS:g} s")
    results = {}
    for wrapped in (False, True):
        stats, failed = run(wrapped)
        label = "with limit_client" if wrapped else "bare SDK clients "
        print(f"{label}: {stats.requests} answered, {stats.rejected} answered 429, {failed} calls failed after retries; "
              f"busiest minute {stats.peak_requests}/{REQUESTS} requests, {stats.peak_tokens}/{TOKENS} tokens")
        results[wrapped] = stats
    bare, limited = results[False], results[True]
    print(f"The provider refused {bare.rejected} bare calls and {limited.rejected} limited ones.")
    # none is the rule; one at a window's edge, on a loaded machine, is followed by a backoff
    assert limited.rejected <= 1, "the wrapped clients should not have been refused"
    print("The limited clients kept the provider's limits.")


if __name__ == "__main__":
    main()
