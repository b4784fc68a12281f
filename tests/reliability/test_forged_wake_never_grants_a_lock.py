"""Issue 10, item 4: a forged wake message never lets a waiter in.

A client that can only PUBLISH must not make a waiter enter while another process holds
the lock: the wake message is a hint, a waiter enters only on a grant Redis confirmed.

The forger here knows as much as anyone who can read the server: the wake channels and
the waiters' tokens. Where they live is written once, in ``WakeLayout`` below (from
``agentdiff_coordination/core/backends/redis_lease.py`` and ``redis_lua.py``): update it
when the layout changes.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from agentdiff_coordination import configure, lock

from .support import RelWorker, with_prefix

pytestmark = pytest.mark.redis


class WakeLayout:
    """Where a release's hand-off is published, and what it says."""

    #: every process's wake channel (``redis_lease.WakeListener.channel``)
    CHANNELS = "{prefix}:wake:*"
    #: the waiters of one lock, in arrival order (``redis_lua``: ``P:lockq:NAME``)
    QUEUE = "{prefix}:lockq:{name}"

    @staticmethod
    def messages(token: str) -> list[str]:
        """Forged hand-offs for the waiter ``token`` (``redis_lua.hand_on``: "TOKEN FENCING")."""
        return [f"{token} 1", f"{token} 999999999999999999", token]


def forge_wakes(client: redis.Redis, prefix: str, name: str) -> int:
    """Publish every forged hand-off to every wake channel of ``prefix``; how many were read."""
    channels = client.pubsub_channels(WakeLayout.CHANNELS.format(prefix=prefix))
    tokens = [t.decode() for t in client.zrange(WakeLayout.QUEUE.format(prefix=prefix, name=name), 0, -1)]
    assert channels and tokens, (
        f"no wake channel ({channels}) or no waiter ({tokens}) found: update WakeLayout to the current key layout"
    )
    receivers = 0
    for channel in channels:
        for token in tokens:
            for message in WakeLayout.messages(token):
                receivers += int(client.publish(channel, message))
    return receivers


def test_a_forged_wake_never_lets_a_waiter_in_while_another_process_holds(redis_url: str, prefix: str) -> None:
    url = with_prefix(redis_url, prefix)
    client = redis.Redis.from_url(redis_url)
    entered: list[float] = []
    errors: list[BaseException] = []
    with RelWorker("hold", url=url, name="guarded") as holder:
        holder.expect("holding")
        configure(url)

        def waiter() -> None:
            try:
                with lock("guarded", timeout=20):
                    entered.append(time.time())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 10
        while not client.zcard(WakeLayout.QUEUE.format(prefix=prefix, name="guarded")):
            assert time.monotonic() < deadline, "the waiter never queued: update WakeLayout.QUEUE"
            time.sleep(0.01)
        assert forge_wakes(client, prefix, "guarded"), "nobody listened to the forged wakes"
        time.sleep(1.0)  # a waiter fooled by the forgery enters now
        holder.tell("release")
        released_at = holder.expect("released")["at"]
        thread.join(20)
    client.close()
    assert entered, f"the waiter never entered after the real release: {errors}"
    assert entered[0] >= released_at, (
        f"a forged wake let the waiter in {released_at - entered[0]:.2f}s before the holder released"
    )
