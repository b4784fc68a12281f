"""Model-free AutoGen agents and probes for the AutoGen adapter tests (offline, no LLM)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import Response
from autogen_agentchat.messages import (
    BaseChatMessage,
    HandoffMessage,
    TextMessage,
    ThoughtEvent,
)
from autogen_core import CancellationToken

from agentdiff_coordination import current_event, when
from agentdiff_coordination.core.runtime import get_backend


def lock_waiters() -> int | None:
    """How many callers wait for any lock now (None when the backend does not say)."""
    value = get_backend().statistics().lock_waiters
    return None if value is None else int(value)


def holder_of(name: str) -> str | None:
    """Who holds lock ``name`` now, as the backend describes it (None when free)."""
    return get_backend().lock_holder(name)


class EventLog:
    """Every lifecycle event seen, as ``(event name, data)``, collected by a ``@when("*")`` handler."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.events: list[tuple[str, Any]] = []

        @when("*")
        def record(data: Any) -> None:
            event = current_event()
            assert event is not None
            with self._mutex:
                self.events.append((event.name, data))

    def names(self) -> list[str]:
        with self._mutex:
            return [name for name, _ in self.events]

    def of(self, name: str) -> list[Any]:
        with self._mutex:
            return [data for event, data in self.events if event == name]


class Overlap:
    """Counts how many agent turns touch one shared resource at the same time.

    A visitor stays inside until ``ready()`` says its partner has shown up (inside the
    resource, or queued on the lock), or ``patience`` seconds passed: without a lock the
    partners meet inside (overlap), with one the partner is seen waiting for it.
    """

    def __init__(self, expected: int, lock_name: str | None = None, patience: float = 5.0) -> None:
        self.expected = expected
        self.lock_name = lock_name
        self.patience = patience
        self.active = 0
        self.max_active = 0
        self.entered = 0
        self.saw_waiter = 0
        self.violations = 0
        self.visitors: list[str] = []

    def _partner_present(self) -> bool:
        if self.active >= 2:
            return True
        if self.entered >= self.expected:  # nobody else will come
            return True
        if self.lock_name is not None:
            waiting = lock_waiters()
            if waiting:
                self.saw_waiter += 1
                return True
        return False

    async def visit(self, name: str) -> None:
        self.active += 1
        self.entered += 1
        self.visitors.append(name)
        self.max_active = max(self.max_active, self.active)
        if self.active > 1:
            self.violations += 1
        try:
            deadline = time.monotonic() + self.patience
            while not self._partner_present() and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
        finally:
            self.active -= 1


class ScriptedAgent(BaseChatAgent):
    """Streams ``thoughts`` inner events, then answers ``reply``; may visit an ``Overlap`` probe.

    ``on_turn`` (if given) runs at the start of every turn, inside the turn.
    """

    def __init__(
        self,
        name: str,
        reply: str = "done",
        *,
        description: str | None = None,
        thoughts: int = 0,
        probe: Overlap | None = None,
        produced: Sequence[type[BaseChatMessage]] = (TextMessage,),
        on_turn: Callable[[ScriptedAgent], Any] | None = None,
    ) -> None:
        super().__init__(name, description or f"scripted agent {name}")
        self.reply = reply
        self.thoughts = thoughts
        self.probe = probe
        self.produced = tuple(produced)
        self.on_turn = on_turn
        self.turns = 0
        self.pulled = 0  # items handed out so far in the current turn
        self.received: list[list[str]] = []

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return self.produced

    def answer(self) -> BaseChatMessage:
        return TextMessage(content=self.reply, source=self.name)

    async def on_messages(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken) -> Response:
        response: Response | None = None
        async for item in self.on_messages_stream(messages, cancellation_token):
            if isinstance(item, Response):
                response = item
        assert response is not None
        return response

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[Any, None]:
        self.turns += 1
        self.pulled = 0
        self.received.append([m.to_text() for m in messages])
        if self.on_turn is not None:
            result = self.on_turn(self)
            if asyncio.iscoroutine(result):
                await result
        if self.probe is not None:
            await self.probe.visit(self.name)
        inner = []
        for i in range(self.thoughts):
            thought = ThoughtEvent(content=f"{self.name} thought {i}", source=self.name)
            inner.append(thought)
            self.pulled += 1
            yield thought
        self.pulled += 1
        yield Response(chat_message=self.answer(), inner_messages=inner)

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        self.turns = 0


class HandoffAgent(ScriptedAgent):
    """Hands the conversation to ``target`` (for Swarm); answers plainly when ``target`` is None."""

    def __init__(self, name: str, target: str | None, **kwargs: Any) -> None:
        super().__init__(name, produced=(HandoffMessage, TextMessage), **kwargs)
        self.target = target

    def answer(self) -> BaseChatMessage:
        if self.target is None:
            return TextMessage(content=f"{self.name} finished", source=self.name)
        return HandoffMessage(content=f"over to {self.target}", target=self.target, source=self.name)


class RecorderAgent(ScriptedAgent):
    """Records every lifecycle call that should reach it through a proxy."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls: list[str] = []
        self.state: dict[str, Any] = {"type": "RecorderState", "version": "1.0.0", "n": 0}

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        self.calls.append("reset")

    async def on_pause(self, cancellation_token: CancellationToken) -> None:
        self.calls.append("pause")

    async def on_resume(self, cancellation_token: CancellationToken) -> None:
        self.calls.append("resume")

    async def save_state(self) -> Mapping[str, Any]:
        self.calls.append("save_state")
        return dict(self.state)

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.calls.append("load_state")
        self.state = dict(state)

    async def close(self) -> None:
        self.calls.append("close")
