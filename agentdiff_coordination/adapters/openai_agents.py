"""The OpenAI Agents SDK adapter (``openai-agents``): coordinated function tools and agents.

A plugin like any third party's: it is registered through the entry-point group
``agentdiff_coordination`` (``openai_agents = "agentdiff_coordination.adapters.openai_agents"``),
not built in, and uses only the plugin hooks and the core's ``Coordinator``.

- ``coordinate(NAME, lock_name=..., limit=..., timeout=...)(tool)`` on a ``FunctionTool``
  (what ``@function_tool`` makes) returns a copy of the tool (the SDK's own copy: same
  name, description, parameter schema, strictness, guardrails, timeout) whose every
  invocation, each of parallel tool calls included, takes the locks and the limit and
  emits ``NAME_started`` / ``NAME_complete`` / ``NAME_failed``. A sync tool function runs
  in a worker thread (as the SDK runs it) with its coordination inside that thread, so
  its lock is held until the function has returned, even when the SDK gives up on it
  (a tool timeout, a cancelled run).
- ``coordinate(NAME, ...)(agent)`` on an ``agents.Agent`` returns ``agent.clone(...)``
  (name, instructions, tools, handoffs, guardrails, output type kept) whose model is
  coordinated: each turn's model call, streamed or not, holds the locks and takes the
  limit (admitted at the tokens the previous call under that limit used), and reports
  the tokens its response states (``usage.total_tokens``) to the limit. ``NAME_complete`` carries the turn's ``output`` (its text), the ``tool_calls``
  it asked for, the agent it hands off to (``handoff``) and its ``tokens``.

Guardrail tripwires and ``MaxTurnsExceeded`` are the SDK's control flow: raised by the
run loop, they never pass through a coordinated call; a tripwire raised inside one (a
tool guardrail) ends it as ``NAME_interrupted``, not ``NAME_failed``.
The SDK is imported only when one of these is used; without it the error names the
extra ``openai-agents``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from ..core.coordinate import Coordinator
from ..core.extras import require
from ..core.limits import limit as _limit
from .hookspecs import hookimpl

__all__ = ["coordinated_agent", "coordinated_tool"]

EXTRA = "openai-agents"

#: the SDK's exceptions that are control flow, not failures (names in ``agents.exceptions``)
_TRIPWIRES = (
    "InputGuardrailTripwireTriggered",
    "OutputGuardrailTripwireTriggered",
    "ToolInputGuardrailTripwireTriggered",
    "ToolOutputGuardrailTripwireTriggered",
)
_SYNC_MARKER = "__agents_sync_function_tool__"  # set by the SDK on the invoker of a sync function tool


def _agents() -> Any:
    return require("agents", extra=EXTRA, feature="the OpenAI Agents SDK adapter")


def _plain(value: Any) -> Any:
    """A JSON-ready form of a tool's output for ``NAME_complete`` (text for SDK objects)."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


# -- tools ---------------------------------------------------------------------------------


def _is_sync_tool(tool: Any, invoker: Any) -> bool:
    if getattr(invoker, _SYNC_MARKER, False):
        return True
    wrapped = getattr(tool, "__wrapped__", None)  # the decorated function, on SDK versions that expose it
    return callable(wrapped) and not inspect.iscoroutinefunction(wrapped) and not inspect.isclass(wrapped)


_worker = threading.local()  # a worker thread's own event loop, made once and reused


def _run_to_the_end(invoker: Callable[..., Coroutine[Any, Any, Any]], ctx: Any, arguments: str) -> Any:
    """Run the SDK's invoker to its end on this worker thread's own loop.

    The invoker hands the sync tool function to a thread of that loop and returns only
    when the function has returned; nothing outside can cancel it, so the coordination
    around this call holds its lock until then.
    """
    loop = getattr(_worker, "loop", None)
    if loop is None or loop.is_closed():
        loop = _worker.loop = asyncio.new_event_loop()
    return loop.run_until_complete(invoker(ctx, arguments))


def coordinated_tool(tool: Any, coordinator: Coordinator) -> Any:
    """A copy of the ``FunctionTool`` ``tool`` whose every invocation runs under ``coordinator``."""
    agents = _agents()
    if not isinstance(tool, agents.FunctionTool):
        raise TypeError(f"coordinated_tool() takes an agents.FunctionTool, not {type(tool).__name__} {tool!r}")
    clone = copy.copy(tool)  # the SDK's copy rebinds its invoker to the clone
    invoker = clone.on_invoke_tool
    c = coordinator

    if _is_sync_tool(tool, invoker):

        def in_thread(ctx: Any, arguments: str) -> Any:
            with c.run((), {"tool": clone.name, "arguments": arguments}) as run:
                result = _run_to_the_end(invoker, ctx, arguments)
                run.result = _plain(result)
            return result

        async def on_invoke_tool(ctx: Any, arguments: str) -> Any:
            return await asyncio.to_thread(in_thread, ctx, arguments)

        setattr(on_invoke_tool, _SYNC_MARKER, True)
    else:

        async def on_invoke_tool(ctx: Any, arguments: str) -> Any:
            async with c.run((), {"tool": clone.name, "arguments": arguments}) as run:
                result = await invoker(ctx, arguments)
                run.result = _plain(result)
            return result

    on_invoke_tool.__agentdiff_coordinator__ = c  # type: ignore[attr-defined]
    clone.on_invoke_tool = on_invoke_tool
    return clone


# -- agents: a coordinated model -------------------------------------------------------------


def _turn(response: Any, handoffs: Any) -> dict[str, Any]:
    """What ``NAME_complete`` says about a turn: its text, tool calls, handoff and tokens."""
    targets = {getattr(h, "tool_name", None): getattr(h, "agent_name", None) for h in handoffs or ()}
    calls = [item.name for item in response.output if getattr(item, "type", None) == "function_call"]
    handoff = next((targets[name] for name in calls if name in targets), None)
    usage = getattr(response, "usage", None)
    return {
        "output": "".join(
            getattr(part, "text", "") for item in response.output if getattr(item, "type", None) == "message"
            for part in item.content
        ) or None,
        "tool_calls": [name for name in calls if name not in targets],
        "handoff": handoff,
        "tokens": getattr(usage, "total_tokens", None),
    }


#: per limit name, the tokens the last model call under it used: the cost the next call is
#: admitted at (then corrected to what its response states), so a shared budget is not
#: overshot by calls admitted at a cost of 1
_estimates: dict[str, int] = {}


def _admission_cost(limit_name: str) -> int:
    return _estimates.get(limit_name, 1)


def _spent(limit_name: str, response: Any) -> int | None:
    """The tokens ``response`` states it used (remembered as the next estimate), or None."""
    tokens = getattr(getattr(response, "usage", None), "total_tokens", None)
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
        _estimates[limit_name] = tokens
        return tokens
    return None


def _handoffs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return kwargs["handoffs"] if "handoffs" in kwargs else (args[5] if len(args) > 5 else ())


@functools.cache
def _model_class() -> type[Any]:
    """``CoordinatedModel``, made on first use (the SDK is imported then)."""
    agents = _agents()
    from agents.models.interface import Model

    class CoordinatedModel(Model):
        """The model of a coordinated agent: each call is one coordinated turn.

        ``get_response`` and ``stream_response`` run the inner model's call under the
        coordinator: locks first, then the limit, admitted at the tokens the last call
        under that limit used (1 at first) and corrected to the response's
        ``usage.total_tokens``. A stream holds them until it ends or is closed.
        Everything else is the inner model's.
        """

        def __init__(self, inner: Any, coordinator: Coordinator, limit_name: str | None) -> None:
            self._inner = inner
            self._resolved: Any = inner if isinstance(inner, Model) else None
            self._coordinator = coordinator
            self._limit = limit_name

        @property
        def inner(self) -> Any:
            return self._inner

        def _model(self) -> Any:
            if self._resolved is None:  # a model name: resolved as the SDK's default provider does
                from agents.models.multi_provider import MultiProvider

                self._resolved = MultiProvider().get_model(self._inner)
            return self._resolved

        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            c = self._coordinator
            async with c.run() as run:
                if self._limit is None:
                    response = await self._model().get_response(*args, **kwargs)
                else:
                    async with _limit(self._limit)(cost=_admission_cost(self._limit), timeout=c.timeout) as permit:
                        response = await self._model().get_response(*args, **kwargs)
                        tokens = _spent(self._limit, response)
                        if tokens is not None:
                            await permit.report_async(tokens)
                run.result = _turn(response, _handoffs(args, kwargs))
            return response

        async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            c = self._coordinator
            async with c.run() as run:
                permit_use = None if self._limit is None else _limit(self._limit)(
                    cost=_admission_cost(self._limit), timeout=c.timeout)
                permit = None if permit_use is None else await permit_use.__aenter__()
                try:
                    async for event in self._model().stream_response(*args, **kwargs):
                        if getattr(event, "type", None) == "response.completed":
                            response = event.response
                            tokens = None if self._limit is None else _spent(self._limit, response)
                            if permit is not None and tokens is not None:
                                await permit.report_async(tokens)
                            run.result = _turn(response, _handoffs(args, kwargs))
                        yield event
                except BaseException as exc:
                    if permit_use is not None:
                        await permit_use.__aexit__(type(exc), exc, exc.__traceback__)
                    raise
                if permit_use is not None:
                    await permit_use.__aexit__(None, None, None)

        def get_retry_advice(self, request: Any) -> Any:
            return self._model().get_retry_advice(request)

        async def close(self) -> None:
            if self._resolved is not None:
                await self._resolved.close()

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__") or name in ("_inner", "_resolved"):
                raise AttributeError(name)
            return getattr(self._model(), name)

        def __repr__(self) -> str:
            return f"CoordinatedModel({self._coordinator.name!r}, locks={list(self._coordinator.locks)}, inner={self._inner!r})"

    CoordinatedModel.__module__ = __name__
    del agents
    return CoordinatedModel


def coordinated_agent(agent: Any, coordinator: Coordinator) -> Any:
    """``agent.clone(...)`` with its model run under ``coordinator`` (see the module doc)."""
    agents = _agents()
    if not isinstance(agent, agents.Agent):
        raise TypeError(f"coordinated_agent() takes an agents.Agent, not {type(agent).__name__} {agent!r}")
    inner = agent.model
    if isinstance(inner, _model_class()):  # coordinated before: replace, not stack
        inner = inner.inner
    model = _model_class()(inner, coordinator.replace(limit=None), coordinator.limit)
    return agent.clone(model=model, model_settings=agent.model_settings)


# -- plugin hooks ---------------------------------------------------------------------------


def _sdk_types() -> tuple[type | None, type | None]:
    """(FunctionTool, Agent) if the user imported the SDK; never imports it."""
    tool_module, agent_module = sys.modules.get("agents.tool"), sys.modules.get("agents.agent")
    return getattr(tool_module, "FunctionTool", None), getattr(agent_module, "Agent", None)


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    """A ``FunctionTool`` or an ``Agent`` of the OpenAI Agents SDK."""
    tool_cls, agent_cls = _sdk_types()
    if (tool_cls is not None and isinstance(obj, tool_cls)) or (agent_cls is not None and isinstance(obj, agent_cls)):
        return True
    return None


@hookimpl
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    """A coordinated copy of the tool or agent."""
    tool_cls, _ = _sdk_types()
    if tool_cls is not None and isinstance(obj, tool_cls):
        return coordinated_tool(obj, coordinator)
    return coordinated_agent(obj, coordinator)


@hookimpl
def coordination_passthrough(exc: BaseException) -> bool | None:
    """Guardrail tripwires are the SDK's control flow: ``NAME_interrupted``, not ``NAME_failed``."""
    errors = sys.modules.get("agents.exceptions")
    if errors is None:
        return None
    if any(isinstance(exc, t) for t in (getattr(errors, name, None) for name in _TRIPWIRES) if isinstance(t, type)):
        return True
    return None
