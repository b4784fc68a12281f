"""The AutoGen adapter: ``coordinate(...)(agent)`` on an autogen-agentchat agent.

``coordinate("writer", lock_name="openai_api")(agent)`` returns a ``CoordinatedAgent``:
a ``BaseChatAgent`` with the inner agent's exact name, description and
``produced_message_types``, usable in every team (``RoundRobinGroupChat``,
``SelectorGroupChat``, ``Swarm``, ``GraphFlow``, a ``SocietyOfMindAgent``'s inner team).

One turn (``on_messages_stream``; ``on_messages``, ``run`` and ``run_stream`` go
through it) holds the lock from before the inner agent starts until its stream ends,
and emits ``NAME_started`` / ``NAME_complete`` / ``NAME_failed`` / ``NAME_cancelled``
with an ``agent`` field. Every streamed item is passed on, one at a time, as the
caller asks for it. Reset, pause, resume, ``save_state``/``load_state`` and ``close``
go straight to the inner agent and take no lock.

A turn runs in the caller's task but in a ``contextvars.Context`` of its own, copied
from the caller's when the turn starts: the lock's ownership is recorded there only,
so the caller's code between two streamed items is outside the turn, and a stream
closed from elsewhere (asyncio's finalizer) still releases what the turn took. Work
started inside the turn, such as a nested team, copies the turn's context and re-enters
the same lock name instead of deadlocking. Cancelling the turn's ``CancellationToken``
while it waits for the lock ends the wait with ``CancelledError`` and leaves nothing
held; once the lock is held, the token is the inner agent's business.

Payloads are JSON-ready: ``NAME_started`` carries ``kwargs={"messages": [...]}`` and
``NAME_complete`` carries the final chat message as ``result``, both as
``message.dump()`` dicts (revive them with ``TextMessage.load(...)`` or a
``MessageFactory``).

AutoGen is imported only when an agent is wrapped; this module imports without it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from collections.abc import (
    AsyncGenerator,
    Iterable,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any

from ..core.coordinate import Coordinator, coordinate
from ._context import in_context as _in_context
from ._context import outlive_thread_work, track_thread_work
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from autogen_agentchat.base import ChatAgent

    CoordinatedAgent: type[Any]  # made on first use by the module __getattr__ below

__all__ = ["CoordinatedAgent", "coordinate_agents", "coordination_owns", "coordination_wrap", "wrap_agent"]

INSTALL_HINT = "pip install 'agentdiff-coordination[autogen]'"
PROVIDER = "agentdiff_coordination.adapters.autogen.CoordinatedAgent"


def _autogen() -> Any:
    """The ``autogen_agentchat`` package, or an ImportError that names the extra."""
    try:
        import autogen_agentchat.agents
        import autogen_agentchat.base
    except ImportError as exc:
        raise ImportError(
            f"the AutoGen adapter of agentdiff-coordination needs autogen-agentchat and autogen-ext: {INSTALL_HINT}"
        ) from exc
    return autogen_agentchat


# -- plugin hooks ----------------------------------------------------------------------


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    """True for an autogen-agentchat ``ChatAgent``; never imports AutoGen itself."""
    base = sys.modules.get("autogen_agentchat.base")
    if base is None:
        return None
    return True if isinstance(obj, base.ChatAgent) else None


@hookimpl
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    """A ``CoordinatedAgent`` around ``obj``, or None when ``obj`` is not an AutoGen agent."""
    if not coordination_owns(obj):
        return None
    return wrap_agent(obj, coordinator)


# -- public helpers --------------------------------------------------------------------


def wrap_agent(agent: ChatAgent, coordinator: Coordinator) -> Any:
    """``agent`` as a ``CoordinatedAgent`` run under ``coordinator`` (what ``coordinate(...)(agent)`` does)."""
    cls = _agent_class()
    base = sys.modules["autogen_agentchat.base"]
    if not isinstance(agent, base.ChatAgent):
        raise TypeError(f"wrap_agent() takes an autogen-agentchat ChatAgent, not {type(agent).__name__} {agent!r}")
    return cls(agent, coordinator)


def coordinate_agents(
    agents: Iterable[ChatAgent],
    locks: Mapping[str, str | Iterable[str]] | None = None,
    *,
    timeout: float | None = None,
    limit: str | None = None,
) -> list[Any]:
    """Every agent coordinated under its own name, ready to hand to a team.

    Each agent emits ``<agent name>_started`` / ``_complete`` / ``_failed`` per turn; the
    agents named in ``locks`` also hold their lock(s) for each turn; ``timeout`` and
    ``limit`` apply to every agent::

        team = RoundRobinGroupChat(coordinate_agents([a, b, c], locks={"a": "db", "c": "db"}))
    """
    agents = list(agents)
    names = [agent.name for agent in agents]
    unknown = sorted(set(locks or {}) - set(names))
    if unknown:
        raise ValueError(f"coordinate_agents(locks=...) names {unknown} but the agents are {names}")
    return [
        wrap_agent(agent, coordinate(agent.name, (locks or {}).get(agent.name), timeout=timeout, limit=limit))
        for agent in agents
    ]


def __getattr__(name: str) -> Any:
    if name == "CoordinatedAgent":
        return _agent_class()
    if name == "CoordinatedAgentConfig":
        return _config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- one turn in a context of its own --------------------------------------------------


class _Wait:
    """Links a turn's ``CancellationToken`` to its wait for the lock (and limit).

    While the turn waits, firing the token cancels the task at the future the wait is
    blocked on (``task.cancel()``: a library below that catches the cancellation, as
    ``asyncio.wait_for`` may on 3.11, cannot lose it; before it blocks, the cancellation is
    thrown in at its next step), so the wait ends with
    ``CancelledError`` and the core leaves nothing held. The task's cancellation count is
    taken back once the wait is over (``over``): the caller gets the ``CancelledError``
    but its task is not left cancelling. Once the wait is over the link lets go
    (``CancellationToken`` never forgets a callback: only this small husk stays).
    """

    __slots__ = ("blocked_on", "cancelled", "fired", "loop", "task", "waiting")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[Any] | None = None  # set when the wait starts (in_context)
        self.waiting = True
        self.cancelled = False
        self.fired = False
        self.blocked_on: Any = None

    def __call__(self) -> None:  # the token fired; maybe from another thread
        if not self.waiting:
            return
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if here:
            self.cancel()
            return
        try:
            self.loop.call_soon_threadsafe(self.cancel)
        except RuntimeError:  # that loop is closed: nothing waits any more
            pass

    def cancel(self) -> None:
        if not self.waiting or self.fired or self.cancelled:
            return
        if self.blocked_on is None or self.task is None:
            self.cancelled = True  # not blocked yet: thrown in at the wait's next step
            return
        self.fired = True
        self.blocked_on = None
        self.task.cancel()

    def over(self) -> None:
        self.waiting = False
        self.blocked_on = None
        if self.fired and self.task is not None:
            uncancel = getattr(self.task, "uncancel", None)  # 3.11+
            if uncancel is not None:
                uncancel()


def _dump(message: Any) -> Any:
    dump = getattr(message, "dump", None)
    return dump() if callable(dump) else message



def _with_agent_meta(coordinator: Coordinator, agent_name: str) -> Coordinator:
    """The coordinator with an ``agent`` field added to every lifecycle payload."""
    inner = coordinator.meta

    def meta() -> dict[str, Any]:
        extra = dict(inner()) if inner is not None else {}
        extra.setdefault("agent", agent_name)
        return extra

    return coordinator.replace(meta=meta)


# -- the proxy class, made on first use (AutoGen is imported then) ---------------------


@functools.cache
def _config_class() -> type[Any]:
    _autogen()
    from autogen_core import ComponentModel
    from pydantic import BaseModel

    class CoordinatedAgentConfig(BaseModel):
        """How to rebuild a ``CoordinatedAgent``: the inner agent's component and the coordination spec."""

        agent: ComponentModel
        name: str
        lock_names: list[str] = []
        timeout: float | None = None
        limit: str | None = None

    CoordinatedAgentConfig.__module__ = __name__
    return CoordinatedAgentConfig


@functools.cache
def _agent_class() -> type[Any]:
    _autogen()
    from autogen_agentchat.agents import BaseChatAgent
    from autogen_agentchat.base import ChatAgent, Response
    from autogen_core import CancellationToken, Component

    config_class = _config_class()

    class CoordinatedAgent(BaseChatAgent, Component[config_class]):  # type: ignore[valid-type]
        """An AutoGen agent whose every turn runs under a ``Coordinator`` (lock, events).

        Made by ``coordinate(name, lock_name=...)(agent)``. ``inner`` is the wrapped agent,
        ``coordinator`` the spec; anything else not defined here is read from ``inner``.
        """

        component_config_schema = config_class
        component_provider_override = PROVIDER

        def __init__(self, agent: ChatAgent, coordinator: Coordinator) -> None:
            super().__init__(agent.name, agent.description)
            self._inner = agent
            self._coordinator = _with_agent_meta(coordinator, agent.name)
            self._spec = coordinator

        # -- identity: exactly the inner agent's ----------------------------------
        @property
        def name(self) -> str:
            return self._inner.name

        @property
        def description(self) -> str:
            return self._inner.description

        @property
        def produced_message_types(self) -> Sequence[type[Any]]:
            return self._inner.produced_message_types

        @property
        def inner(self) -> ChatAgent:
            """The wrapped agent."""
            return self._inner

        @property
        def coordinator(self) -> Coordinator:
            """The coordination spec each turn runs under."""
            return self._spec

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__") or name in ("_inner", "_coordinator", "_spec"):
                raise AttributeError(name)
            return getattr(self._inner, name)

        def __repr__(self) -> str:
            c = self._spec
            return f"<CoordinatedAgent {self.name!r} as {c.name!r} locks={list(c.locks)} inner={self._inner!r}>"

        # -- a turn ------------------------------------------------------------------
        async def on_messages(self, messages: Sequence[Any], cancellation_token: CancellationToken) -> Any:
            """One turn through ``on_messages_stream``; returns its final ``Response``."""
            response = None
            async for item in self.on_messages_stream(messages, cancellation_token):
                if isinstance(item, Response):
                    response = item
            if response is None:
                raise RuntimeError(
                    f"agent {self.name!r} ended its turn without a Response: check its on_messages_stream"
                )
            return response

        async def on_messages_stream(
            self, messages: Sequence[Any], cancellation_token: CancellationToken
        ) -> AsyncGenerator[Any, None]:
            """One turn of the inner agent under the lock; every streamed item passes through."""
            ctx = contextvars.copy_context()  # the turn's own: what it holds is recorded here only
            run = self._coordinator.run((), self._payload(messages))
            wait = _Wait()
            cancellation_token.add_callback(wait)
            try:
                await _in_context(ctx, run.__aenter__(), wait)
            finally:
                wait.over()
            response = None
            pending, _ = ctx.run(track_thread_work)  # sync tools the turn hands to threads
            stream = ctx.run(self._inner.on_messages_stream, messages, cancellation_token)
            try:
                while True:
                    try:
                        item = await _in_context(ctx, stream.__anext__())
                    except StopAsyncIteration:
                        break
                    if isinstance(item, Response):
                        response = item
                    yield item
            except BaseException as exc:  # failed, cancelled, or the caller closed the stream
                try:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await _in_context(ctx, aclose())
                finally:
                    try:  # the lock outlives the tool threads the turn leaves running
                        await outlive_thread_work(pending)
                    finally:
                        await _in_context(ctx, run.__aexit__(type(exc), exc, exc.__traceback__))
                raise
            run.result = self._result(response)
            await _in_context(ctx, run.__aexit__(None, None, None))

        def _payload(self, messages: Sequence[Any]) -> dict[str, Any]:
            if not self._coordinator.listened(self._coordinator.started):
                return {}
            return {"messages": [_dump(m) for m in messages]}

        def _result(self, response: Any) -> Any:
            if response is None or not self._coordinator.listened(self._coordinator.complete):
                return None
            return _dump(response.chat_message)

        # -- forwarded as they are ---------------------------------------------------
        async def on_reset(self, cancellation_token: CancellationToken) -> None:
            await self._inner.on_reset(cancellation_token)

        async def on_pause(self, cancellation_token: CancellationToken) -> None:
            await self._inner.on_pause(cancellation_token)

        async def on_resume(self, cancellation_token: CancellationToken) -> None:
            await self._inner.on_resume(cancellation_token)

        async def save_state(self) -> Mapping[str, Any]:
            return await self._inner.save_state()

        async def load_state(self, state: Mapping[str, Any]) -> None:
            await self._inner.load_state(state)

        async def close(self) -> None:
            await self._inner.close()

        # -- component config: the inner agent's, plus the spec ----------------------
        def _to_config(self) -> Any:
            c = self._spec
            return config_class(
                agent=self._inner.dump_component(), name=c.name, lock_names=list(c.locks),
                timeout=c.timeout, limit=c.limit,
            )

        @classmethod
        def _from_config(cls, config: Any) -> CoordinatedAgent:
            inner = ChatAgent.load_component(config.agent)
            spec = coordinate(config.name, config.lock_names or None, timeout=config.timeout, limit=config.limit)
            return cls(inner, spec)

    CoordinatedAgent.__module__ = __name__
    CoordinatedAgent.__qualname__ = "CoordinatedAgent"
    return CoordinatedAgent
