"""Recording: every coordinated run, wait and hold as one JSON line.

```python
import agentdiff_coordination as ac

with ac.record("run-{pid}.jsonl"):       # or @ac.record(...) on a function, sync or async
    crew.kickoff()
# then: agentdiff-coordination timeline run-*.jsonl -o timeline.html
```

Each line is one finished span (see ``core.observers.SpanRecord``): its ``kind``
(``run``, ``lock_wait``, ``lock_hold``, ``limit_wait``, ``limit_hold``), ``step``,
``run_id``, ``resource``, ``start`` and ``end`` (Unix seconds), ``outcome``,
``fencing``, ``error`` and where it happened (``host``, ``pid``, ``thread``, ``task``).
Lines from every thread and task of the process go to one file, whole and in the order
spans end; the file is line-buffered, so a crash loses at most the line being written.

Several processes: put ``{pid}`` in the path and each process writes its own file
(a process forked while recording starts its own file at its first span); pass all the
files to ``agentdiff-coordination timeline``. Without ``{pid}``, processes append to one
file, which works on a local disk but not on every network file system.
The file is opened for appending: remove it first for a fresh recording.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, TypeVar

from .core.observers import SpanRecord, add_observer, remove_observer
from .core.runtime import RUNTIME
from .core.settings import Settings

__all__ = ["Recording", "record", "start_recording", "stop_recording"]

logger = logging.getLogger("agentdiff_coordination")

F = TypeVar("F", bound=Callable[..., Any])
_FIELDS = SpanRecord.__slots__


def span_to_json(record: SpanRecord) -> dict[str, Any]:
    """A span as the JSON object of one recorded line."""
    return {name: getattr(record, name) for name in _FIELDS}


def _check_path(path: object) -> str:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise TypeError(f"record path must be a non-empty file path such as 'run-{{pid}}.jsonl', not {path!r}")
    return path


class _Writer:
    """The observer: writes each span as a line to this process's file."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._mutex = threading.Lock()
        self._file: IO[str] | None = None
        self._pid = -1
        self._failed = False
        self._open()

    def _open(self) -> None:
        pid = os.getpid()
        path = self.template.replace("{pid}", str(pid))
        if self._file is not None:  # the parent's file, in a forked child: nothing is buffered
            self._file.close()
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._pid = pid
        self.path = path

    def span(self, record: SpanRecord) -> None:
        line = json.dumps(span_to_json(record), separators=(",", ":"), default=str) + "\n"
        with self._mutex:
            try:
                if self._pid != os.getpid() and "{pid}" in self.template:
                    self._open()  # a forked child writes its own file
                if self._file is not None:
                    self._file.write(line)
            except (OSError, ValueError) as exc:
                if not self._failed:
                    self._failed = True
                    logger.warning("recording to %s failed; later spans are lost: %s", self.template, exc)

    def close(self) -> None:
        with self._mutex:
            f, self._file = self._file, None
        if f is not None:
            try:
                f.flush()
            finally:
                f.close()


class Recording:
    """``record(path)``: a context manager and a decorator (sync and async functions)
    that writes every span to ``path`` while it is entered. Entering it again while it
    is entered (nested, or a decorated function running in two threads) shares the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = _check_path(path)
        self._mutex = threading.Lock()
        self._users = 0
        self._writer: _Writer | None = None

    def start(self) -> Recording:
        with self._mutex:
            if self._users == 0:
                self._writer = _Writer(self.path)
                add_observer(self._writer)
            self._users += 1
        return self

    def stop(self) -> None:
        with self._mutex:
            if self._users == 0:
                return
            self._users -= 1
            if self._users:
                return
            writer, self._writer = self._writer, None
        if writer is not None:
            remove_observer(writer)
            writer.close()

    @property
    def active(self) -> bool:
        return self._users > 0

    def __enter__(self) -> Recording:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def arecorded(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await fn(*args, **kwargs)

            return arecorded  # type: ignore[return-value]

        @functools.wraps(fn)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return recorded  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"record({self.path!r}){' (recording)' if self.active else ''}"


def record(path: str | os.PathLike[str]) -> Recording:
    """Write every coordinated run, wait and hold to the JSON Lines file ``path`` while
    entered (``with record(path):``) or while a decorated function runs. ``{pid}`` in
    ``path`` is replaced by the process id: one file per process."""
    return Recording(path)


_global_mutex = threading.Lock()
_global: Recording | None = None


def start_recording(path: str | os.PathLike[str]) -> Recording:
    """Record from now until ``stop_recording()`` (``configure(record=path)``); a
    recording already started this way is stopped first."""
    global _global
    made = Recording(path)
    with _global_mutex:
        old, _global = _global, made
        made.start()
    if old is not None:
        old.stop()
    return made


def stop_recording() -> None:
    """Stop the recording ``start_recording`` started (nothing if none); its file is flushed and closed."""
    global _global
    with _global_mutex:
        old, _global = _global, None
    if old is not None:
        old.stop()


def _follow(settings: Settings) -> None:
    """``configure(record=path)`` starts the recording, ``configure(record=None)`` stops it."""
    current = _global.path if _global is not None else None
    if settings.record != current:
        if settings.record:
            start_recording(settings.record)
        else:
            stop_recording()


RUNTIME.on_settings(_follow)
