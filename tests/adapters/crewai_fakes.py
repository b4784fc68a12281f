"""Offline CrewAI stand-ins for the adapter tests: a scripted LLM and an overlap probe.

Importing this module sets CrewAI's offline switches (no telemetry, tracing or version
check; storage in a private temporary directory) and then imports crewai.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

_storage = tempfile.mkdtemp(prefix="agentdiff-crewai-")
atexit.register(shutil.rmtree, _storage, True)
os.environ.update(
    CREWAI_DISABLE_TELEMETRY="true",
    OTEL_SDK_DISABLED="true",
    CREWAI_TRACING_ENABLED="false",
    CREWAI_DISABLE_VERSION_CHECK="true",
    CREWAI_STORAGE_DIR=_storage,
)

from crewai import Agent, Crew, Task  # noqa: E402
from crewai.llms.base_llm import BaseLLM  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402

from agentdiff_coordination.core.runtime import get_backend  # noqa: E402

WAIT_LIMIT = 10.0  # seconds a probe waits for a sign of contention before giving up


def lock_waiters() -> int:
    """How many callers wait for any lock now (0 when the backend does not say)."""
    return int(get_backend().statistics().lock_waiters)


class Probe:
    """Counts task bodies in flight, overall and per agent, and the worst overlap seen.

    A body enters when its agent first calls the LLM and leaves in the task's callback,
    the last user code of a CrewAI task run. ``parallel`` bodies are launched together;
    ``watch`` says what counts as overlap: any two bodies (``"all"``) or two bodies of
    one agent (``"agent"``). On entering, a body waits until the question "can another
    body run at the same time?" is answered: another watched body entered (overlap),
    someone queues for a lock (the others are held off), all ``parallel`` bodies have
    entered, or ``abort`` was called. So overlap, when it can happen, is always seen,
    without sleeps.
    """

    def __init__(self, parallel: int, watch: str = "all") -> None:
        self.parallel = parallel
        self.watch = watch
        self.entered = 0
        self.aborted = False
        self.active: Counter[str] = Counter()
        self.worst: Counter[str] = Counter()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_probes: list[bool] = []  # True: the event loop answered while a body waited
        self.threads: list[tuple[str, int]] = []  # (task name, thread id) of each LLM call
        self._cond = threading.Condition()

    def enter(self, task: str, agent: str) -> None:
        keys = ("all", f"agent:{agent}")
        watched = keys[0] if self.watch == "all" else keys[1]
        with self._cond:
            self.entered += 1
            for key in keys:
                self.active[key] += 1
                self.worst[key] = max(self.worst[key], self.active[key])
            self._cond.notify_all()
            deadline = time.monotonic() + WAIT_LIMIT
            while not (
                self.active[watched] >= 2 or lock_waiters() > 0 or self.entered >= self.parallel or self.aborted
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.01))
        if self.loop is not None and lock_waiters() > 0:
            self._probe_loop()

    def abort(self) -> None:
        """Stop waiting: a body that was expected failed before it could enter."""
        with self._cond:
            self.aborted = True
            self._cond.notify_all()

    def leave(self, agent: str) -> None:
        with self._cond:
            self.active["all"] -= 1
            self.active[f"agent:{agent}"] -= 1
            self._cond.notify_all()

    def _probe_loop(self) -> None:
        """While another task waits for a lock, check the event loop still runs other work."""
        loop = self.loop
        assert loop is not None
        if getattr(loop, "_thread_id", None) == threading.get_ident():
            return  # called on the loop itself: nothing to probe
        future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop)
        try:
            future.result(timeout=5)
            self.loop_probes.append(True)
        except Exception:
            future.cancel()
            self.loop_probes.append(False)

    def on_output(self, output: Any) -> None:
        """A task callback: the body of the task whose output this is has ended."""
        self.leave(output.agent)


class FakeLLM(BaseLLM):
    """A model-free LLM answering in CrewAI's ReAct format.

    With a probe, each task's first call enters it. ``before`` runs first in every call
    (inside the task's run, on whatever thread CrewAI picked). A task with tools gets
    one ``Action`` for the first tool, then its final answer.
    """

    model: str = "fake-llm"
    _probe: Probe | None = PrivateAttr(default=None)
    _before: Callable[[Any], None] | None = PrivateAttr(default=None)
    _fail: str | None = PrivateAttr(default=None)

    @classmethod
    def make(
        cls, probe: Probe | None = None, before: Callable[[Any], None] | None = None, fail: str | None = None
    ) -> FakeLLM:
        llm = cls(model="fake-llm")
        llm._probe, llm._before, llm._fail = probe, before, fail
        return llm

    def supports_function_calling(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 100_000

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        return len(str(messages)) // 4

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        name = getattr(from_task, "name", None) or "?"
        if self._before is not None:
            self._before(from_task)
        first = isinstance(messages, str) or not any(
            isinstance(m, dict) and m.get("role") == "assistant" for m in messages
        )
        if self._probe is not None and first:
            self._probe.threads.append((name, threading.get_ident()))
            self._probe.enter(name, getattr(from_agent, "role", "?"))
        if self._fail is not None and self._fail == name:
            raise RuntimeError(f"model down for {name}")
        task_tools = getattr(from_task, "tools", None) or getattr(from_agent, "tools", None) or []
        if first and task_tools:
            return f'Thought: I need a tool\nAction: {task_tools[0].name}\nAction Input: {{"query": "{name}"}}'
        return f"Thought: done\nFinal Answer: answer of {name}"

    async def acall(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.call, *args, **kwargs)


def make_crew(
    llm: FakeLLM,
    task_agents: list[int],
    *,
    async_tasks: int = 0,
    probe: Probe | None = None,
    tools: list[Any] | None = None,
    names: list[str | None] | None = None,
) -> Crew:
    """A crew with one task per entry of ``task_agents`` (the index of its agent).

    The first ``async_tasks`` tasks run with ``async_execution=True``; CrewAI requires the
    last task to be synchronous, so a final sync task is added when all would be async.
    """
    agents = [
        Agent(role=f"agent{i}", goal="answer", backstory="offline", llm=llm, verbose=False, tools=tools or [])
        for i in range(max(task_agents) + 1)
    ]
    names = names or [f"t{i}" for i in range(len(task_agents))]
    tasks = [
        Task(
            name=names[i],
            description=f"work item {i}",
            expected_output="an answer",
            agent=agents[agent],
            async_execution=i < async_tasks,
            callback=probe.on_output if probe is not None else None,
        )
        for i, agent in enumerate(task_agents)
    ]
    if async_tasks >= len(tasks):
        raise ValueError("CrewAI needs the last task to be synchronous")
    return Crew(agents=agents, tasks=tasks, memory=False, verbose=False)


class EventLog:
    """Every event seen, as ``(event name, data)``, through a ``@when("*")`` handler."""

    def __init__(self) -> None:
        from agentdiff_coordination import current_event, when

        self._mutex = threading.Lock()
        self.events: list[tuple[str, Any]] = []

        @when("*")
        def record(data: Any) -> None:
            event = current_event()
            assert event is not None
            with self._mutex:
                self.events.append((event.name, data))

    def named(self, prefix: str) -> list[tuple[str, Any]]:
        """The events whose name starts with ``prefix``, in arrival order."""
        with self._mutex:
            return [(name, data) for name, data in self.events if name.startswith(prefix)]

    def names(self) -> set[str]:
        with self._mutex:
            return {name for name, _ in self.events}
