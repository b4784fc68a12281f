"""The CrewAI adapter: coordinated tasks (``coordinate(...)(task)``) and crews (``coordinate_crew``).

A coordinated task holds its locks for its whole run and emits ``NAME_started`` /
``NAME_complete`` / ``NAME_failed``, in every way CrewAI runs a task: ``kickoff``,
``async_execution=True`` threads, ``kickoff_async``, ``akickoff`` and the
``kickoff_for_each*`` family (which copy the crew).

How: every path ends in ``Task._execute_core`` (sync) or ``Task._aexecute_core``
(native async). A coordinated task's class is switched, in place, to a subclass of its
own class (one per class) that overrides those two methods, ``copy`` and pickling; the
coordination lives in a pydantic private attribute (never validated, dumped or
serialised), and the task keeps its identity. docs/adapters/crewai.md says why.
Lifecycle payloads hold only text and numbers, so they cross processes on Redis.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from typing import Any, cast

from ..core.coordinate import Coordinator, Run, coordinate
from ..core.locks import normalize_names
from ._context import outlive_thread_work, stop_tracking, track_thread_work
from .crewai_events import BRIDGED_EVENT_TYPES, install_bridge
from .hookspecs import hookimpl

__all__ = [
    "BRIDGED_EVENT_TYPES",
    "INSTALL_HINT",
    "agent_lock_name",
    "coordinate_crew",
    "coordinate_task",
    "coordinator_of",
]

logger = logging.getLogger("agentdiff_coordination")

#: what to install when crewai is missing
INSTALL_HINT = "pip install 'agentdiff-coordination[crewai]'"

#: the CrewAI events forwarded when bridging, as ``NAME_<event type>``

# Task methods the adapter overrides; checked when a task class is first coordinated,
# so a CrewAI release that renames them fails loudly instead of running uncoordinated.
_HOOKED_METHODS = ("_execute_core", "_aexecute_core", "copy")

# the pydantic private attribute of a coordinated task that holds its coordination
_SPEC_KEY = "_agentdiff_spec"


def _require_crewai() -> tuple[type[Any], type[Any]]:
    """CrewAI's ``Task`` and ``Crew`` classes, or an ImportError saying which extra to install."""
    try:
        from crewai.crew import Crew
        from crewai.task import Task
    except ImportError as exc:
        raise ImportError(
            f"the CrewAI adapter of agentdiff-coordination needs crewai, which is not installed: {INSTALL_HINT}"
        ) from exc
    return Task, Crew


def _crewai_version() -> str:
    module = sys.modules.get("crewai")
    return str(getattr(module, "__version__", "unknown"))


# -- what a coordinated task carries ------------------------------------------------


class _Spec:
    """The coordination of one task: its coordinator and options. Shared by the task's
    copies (``Task.copy``, ``model_copy``, ``deepcopy``), so it never changes after it is
    made, except for a small cache of per-agent coordinators."""

    __slots__ = ("coordinator", "agent_lock", "bridge", "_per_agent")

    def __init__(self, coordinator: Coordinator, agent_lock: bool, bridge: bool) -> None:
        self.coordinator = coordinator
        self.agent_lock = agent_lock
        self.bridge = bridge
        self._per_agent: dict[str, Coordinator] = {}

    def for_agent(self, agent: Any) -> Coordinator:
        """The coordinator of a run by ``agent``: with its agent lock when ``agent_lock`` is on."""
        c = self.coordinator
        if not self.agent_lock or agent is None:
            return c
        name = agent_lock_name(agent)
        per_agent = self._per_agent
        found = per_agent.get(name)
        if found is None:
            if len(per_agent) >= _PER_AGENT_CACHE:  # agent copies of kickoff_for_each come and go
                per_agent.clear()
            found = per_agent[name] = c.replace(locks=normalize_names((*c.locks, name)))
        return found

    def __copy__(self) -> _Spec:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Spec:
        return self

    def __repr__(self) -> str:
        c = self.coordinator
        return f"<crewai coordination {c.name!r} locks={list(c.locks)} agent_lock={self.agent_lock} bridge={self.bridge}>"


_PER_AGENT_CACHE = 256


def agent_lock_name(agent: Any) -> str:
    """The per-agent lock a coordinated task takes when ``agent_lock`` is on.

    One name per agent object (its role and id): two tasks on the same agent never run
    at once, while copies of the agent (``kickoff_for_each``) do not wait for each other.
    """
    return f"crewai-agent:{getattr(agent, 'role', '?')}:{getattr(agent, 'id', id(agent))}"


# The run in progress in this context: (event name to bridge to or None, task, agent).
# Payload fields and CrewAI's bridged events read it, so one coordinator per task serves
# every run, and handlers CrewAI runs on copied contexts know which task they serve.
_current: ContextVar[tuple[str | None, Any, Any] | None] = ContextVar("agentdiff_crewai_run", default=None)


def _with_run_fields(outer: Callable[[], dict[str, Any]] | None) -> Callable[[], dict[str, Any]]:
    """A ``Coordinator.meta`` adding ``task`` (name or description) and ``agent`` (role)."""

    def meta() -> dict[str, Any]:
        data = dict(outer()) if outer is not None else {}
        current = _current.get()
        if current is not None:
            _, task, agent = current
            data.setdefault("task", task.name or task.description)
            data.setdefault("agent", getattr(agent, "role", None))
        return data

    meta.__agentdiff_crewai__ = True  # type: ignore[attr-defined]
    return meta


def _begin(task: Any, spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Run, Token[Any]]:
    """The run of one ``_execute_core`` / ``_aexecute_core`` call, and the context it set."""
    agent = (args[0] if args else kwargs.get("agent")) or task.agent
    context = args[1] if len(args) > 1 else kwargs.get("context")
    run = spec.for_agent(agent).run((), {"agent": getattr(agent, "role", None), "context": context})
    return run, _current.set((spec.coordinator.name if spec.bridge else None, task, agent))


def _own_spec(task: Any) -> _Spec | None:
    """The spec of a coordinated task, read straight from its pydantic private storage
    (attribute access to a private attribute goes through pydantic's slow ``__getattr__``)."""
    private = task.__pydantic_private__
    return private.get(_SPEC_KEY) if private else None


def _raw(output: Any) -> Any:
    """What ``NAME_complete`` reports as ``result``: the output's raw text."""
    return getattr(output, "raw", output)


class _CoordinatedTask:
    """Mixed in front of a Task class: runs ``_execute_core`` / ``_aexecute_core`` coordinated."""

    __slots__ = ()
    __agentdiff_coordinated__ = True
    __pydantic_private__: dict[str, Any] | None

    def _execute_core(self, *args: Any, **kwargs: Any) -> Any:
        spec = _own_spec(self)
        if spec is None:
            return super()._execute_core(*args, **kwargs)  # type: ignore[misc]
        run, token = _begin(self, spec, args, kwargs)
        try:
            with run:
                output = super()._execute_core(*args, **kwargs)  # type: ignore[misc]
                run.result = _raw(output)
        finally:
            _current.reset(token)
        return output

    async def _aexecute_core(self, *args: Any, **kwargs: Any) -> Any:
        spec = _own_spec(self)
        if spec is None:
            return await super()._aexecute_core(*args, **kwargs)  # type: ignore[misc]
        run, token = _begin(self, spec, args, kwargs)
        pending, tracking = track_thread_work()  # what CrewAI hands to threads (sync tools)
        try:
            async with run:
                try:
                    output = await super()._aexecute_core(*args, **kwargs)  # type: ignore[misc]
                except BaseException:
                    await outlive_thread_work(pending)  # cancelled or failed: the lock outlives the threads
                    raise
                run.result = _raw(output)
        finally:
            stop_tracking(tracking)
            _current.reset(token)
        return output

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        """CrewAI's ``Task.copy``, keeping the coordination on the copy."""
        clone = super().copy(*args, **kwargs)  # type: ignore[misc]
        spec = _own_spec(self)
        if spec is not None and clone is not self:
            _attach(clone, spec)
        return clone

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the original task class plus what rebuilds the coordination."""
        state: dict[str, Any] = dict(cast(Any, self).__getstate__())
        private = dict(state.get("__pydantic_private__") or {})
        spec = private.pop(_SPEC_KEY, None)
        state["__pydantic_private__"] = private
        params = None
        if isinstance(spec, _Spec):
            c = spec.coordinator
            params = (c.name, c.locks, c.timeout, c.limit, spec.agent_lock, spec.bridge)
        return (_unpickle, (type(self).__agentdiff_base__, state, params))  # type: ignore[attr-defined]


def _unpickle(base: type[Any], state: dict[str, Any], params: tuple[Any, ...] | None) -> Any:
    """A task from its pickled state, coordinated again as it was."""
    task = cast(Any, base).__new__(base)
    task.__setstate__(state)
    if params is not None:
        name, locks, timeout, limit, agent_lock, bridge = params
        _coordinate(task, coordinate(name, locks or None, timeout=timeout, limit=limit),
                    agent_lock=agent_lock, bridge=bridge)
    return task


_classes: dict[type, type] = {}
_classes_lock = threading.Lock()


def _coordinated_class(base: type) -> type:
    """The coordinated subclass of ``base`` (made once per class)."""
    if getattr(base, "__agentdiff_coordinated__", False):
        return base
    cls = _classes.get(base)
    if cls is not None:
        return cls
    with _classes_lock:
        cls = _classes.get(base)
        if cls is None:
            missing = [m for m in _HOOKED_METHODS if not callable(getattr(base, m, None))]
            if missing:
                raise RuntimeError(
                    f"cannot coordinate {base.__qualname__}: it has no {', '.join(missing)}, which the CrewAI "
                    f"adapter overrides (crewai {_crewai_version()}); check that this agentdiff-coordination "
                    "release supports your crewai version"
                )
            from pydantic import PrivateAttr

            namespace = {
                "__module__": __name__,
                "__qualname__": base.__qualname__,
                "__doc__": base.__doc__,
                "__slots__": (),
                "__agentdiff_base__": base,
                _SPEC_KEY: PrivateAttr(default=None),
            }
            cls = type(base)(base.__name__, (_CoordinatedTask, base), namespace)
            _classes[base] = cls
    return cls


def _attach(task: Any, spec: _Spec) -> None:
    """Make ``task`` (in place) run under ``spec``."""
    cls = _coordinated_class(type(task))
    if type(task) is not cls:
        object.__setattr__(task, "__class__", cls)
    private = task.__pydantic_private__
    if private is None:
        object.__setattr__(task, "__pydantic_private__", {_SPEC_KEY: spec})
    else:
        private[_SPEC_KEY] = spec


def coordinator_of(task: Any) -> Coordinator | None:
    """The coordinator a task runs under, or None if it is not coordinated."""
    spec = _spec_of(task)
    return spec.coordinator if spec is not None else None


def _spec_of(task: Any) -> _Spec | None:
    if not getattr(type(task), "__agentdiff_coordinated__", False):
        return None
    private = getattr(task, "__pydantic_private__", None) or {}
    spec = private.get(_SPEC_KEY)
    return spec if isinstance(spec, _Spec) else None


def _passthrough() -> tuple[type[BaseException], ...]:
    """CrewAI's control-flow exceptions: a run they end is ``NAME_interrupted``, not failed."""
    found: list[type[BaseException]] = []
    for module_name, attr in (
        ("crewai.hooks.dispatch", "HookAborted"),
        ("crewai.flow.async_feedback.types", "HumanFeedbackPending"),
    ):
        try:
            exc = getattr(importlib.import_module(module_name), attr, None)
        except ImportError:  # an older or newer crewai without it
            continue
        if isinstance(exc, type) and issubclass(exc, BaseException):
            found.append(exc)
    return tuple(found)


def coordinate_task(
    task: Any,
    name: str | None = None,
    lock_name: str | Iterable[str] | None = None,
    *,
    timeout: float | None = None,
    agent_lock: bool = False,
    bridge_events: bool = False,
) -> Any:
    """Coordinate one CrewAI task in place and return it.

    ``name`` (default: the task's ``name``) names the lifecycle events; ``lock_name``
    (one name or several) is held for the task's whole run, waiting at most ``timeout``
    seconds. ``agent_lock`` also takes the lock of the agent running the task
    (``agent_lock_name``), so two tasks on one agent never overlap. ``bridge_events``
    forwards CrewAI's tool and LLM events of the run as ``NAME_<crewai event type>``.
    Coordinating a task again replaces its coordination.
    """
    task_class, _ = _require_crewai()
    if not isinstance(task, task_class):
        raise TypeError(f"coordinate_task expects a crewai Task, got {type(task).__name__} {task!r}")
    if name is None:
        name = task.name
        if not name:
            raise ValueError(
                f"task {task.description[:60]!r} has no name: pass name=... to coordinate_task or set Task(name=...)"
            )
    c = coordinate(name, lock_name, timeout=timeout)
    return _coordinate(task, c, agent_lock=agent_lock, bridge=bridge_events)


def _coordinate(task: Any, c: Coordinator, *, agent_lock: bool, bridge: bool) -> Any:
    changes: dict[str, Any] = {}
    if not c.passthrough:
        changes["passthrough"] = _passthrough()
    if not getattr(c.meta, "__agentdiff_crewai__", False):
        changes["meta"] = _with_run_fields(c.meta)
    if changes:
        c = c.replace(**changes)
    if bridge:
        install_bridge(_current)
    _attach(task, _Spec(c, agent_lock, bridge))
    return task


def _task_names(tasks: list[Any]) -> list[str]:
    """The event name of each task: its ``name``, else ``task_<position>`` (from 1)."""
    return [task.name or f"task_{i}" for i, task in enumerate(tasks, 1)]


def coordinate_crew(
    crew: Any,
    locks: Mapping[str, str | Iterable[str]] | None = None,
    *,
    timeout: float | None = None,
    agent_locks: bool = False,
    bridge_events: bool = False,
) -> Any:
    """Coordinate every task of ``crew`` in place and return the crew.

    Each task emits events named after it (its ``name``; an unnamed task is
    ``task_<position>``, counting from 1). The tasks named in ``locks`` also hold
    those locks (one name or a list, all or none) for their whole run, waiting at most
    ``timeout`` seconds. A task already coordinated keeps its own name and locks and
    gains the ones given here. ``agent_locks`` gives every agent a lock of its own, so
    two tasks on one agent never run at once (CrewAI's executor is not safe for that).
    ``bridge_events`` forwards CrewAI's tool and LLM events as ``TASK_<event type>``.
    """
    _, crew_class = _require_crewai()
    if not isinstance(crew, crew_class):
        raise TypeError(f"coordinate_crew expects a crewai Crew, got {type(crew).__name__} {crew!r}")
    tasks = list(crew.tasks)
    names = _task_names(tasks)
    wanted = dict(locks or {})
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(
            f"coordinate_crew: locks names tasks {unknown} that this crew does not have; its tasks are {names}"
        )
    specs = [(task, name, wanted.get(name)) for task, name in zip(tasks, names)]
    for _, _, lock_names in specs:  # validate everything before changing anything
        if lock_names is not None:
            normalize_names(lock_names)
    for task, name, lock_names in specs:
        existing = _spec_of(task)
        if existing is not None:
            c = existing.coordinator
            if lock_names is not None:
                c = c.replace(locks=normalize_names((*c.locks, *normalize_names(lock_names))))
            if timeout is not None and c.timeout is None:
                c = c.replace(timeout=timeout)
            _coordinate(task, c, agent_lock=existing.agent_lock or agent_locks,
                        bridge=existing.bridge or bridge_events)
        else:
            _coordinate(task, coordinate(name, lock_names, timeout=timeout), agent_lock=agent_locks,
                        bridge=bridge_events)
    return crew


# -- CrewAI's event bus, bridged (observation only) -----------------------------------

# -- the plugin ------------------------------------------------------------------------


def _crewai_types() -> tuple[type | None, type | None]:
    """(Task, Crew) if the user has imported crewai; never imports it."""
    task_module = sys.modules.get("crewai.task")
    crew_module = sys.modules.get("crewai.crew")
    task_cls = getattr(task_module, "Task", None) if task_module is not None else None
    crew_cls = getattr(crew_module, "Crew", None) if crew_module is not None else None
    return task_cls, crew_cls


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    """True for a CrewAI ``Task`` or ``Crew`` (only when crewai is already imported)."""
    task_cls, crew_cls = _crewai_types()
    if (task_cls is not None and isinstance(obj, task_cls)) or (crew_cls is not None and isinstance(obj, crew_cls)):
        return True
    return None


@hookimpl
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    """``coordinate(...)(task)``: the same task, coordinated in place."""
    task_cls, crew_cls = _crewai_types()
    if crew_cls is not None and isinstance(obj, crew_cls):
        raise TypeError(
            f"coordinate({coordinator.name!r}) applies to one CrewAI Task, not a Crew: use "
            "agentdiff_coordination.adapters.crewai.coordinate_crew(crew, locks={task_name: lock_name})"
        )
    if task_cls is None or not isinstance(obj, task_cls):
        return None
    return _coordinate(obj, coordinator, agent_lock=False, bridge=False)
