"""A tiny "framework" for the plugin tests: jobs that are objects, not callables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Handoff", "Job"]


class Handoff(Exception):
    """The framework's control flow: a job hands the work to another one (not a failure)."""


class Job:
    """A named unit of work, started with ``run()``; not callable, so the core cannot wrap it."""

    def __init__(self, name: str, work: Callable[..., Any]) -> None:
        self.name = name
        self.work = work

    def run(self, *args: Any) -> Any:
        return self.work(*args)
