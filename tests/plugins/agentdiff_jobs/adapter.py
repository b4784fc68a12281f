"""The working adapter for ``agentdiff_jobs``, the way a third party would write one."""

from __future__ import annotations

import sys
from typing import Any

from agentdiff_coordination.adapters.hookspecs import hookimpl
from agentdiff_coordination.core.coordinate import Coordinator


class CoordinatedJob:
    """A job whose ``run()`` takes the coordinator's locks and emits its lifecycle events."""

    def __init__(self, job: Any, coordinator: Coordinator) -> None:
        self.job = job
        self.name = job.name
        self.coordinator = coordinator

    def run(self, *args: Any) -> Any:
        return self.coordinator.call(self.job.run, *args)


def _is_job(obj: Any) -> bool:
    jobs = sys.modules.get("agentdiff_jobs")
    return jobs is not None and isinstance(obj, jobs.Job)


@hookimpl
def coordination_owns(obj: Any) -> bool | None:
    return True if _is_job(obj) else None


@hookimpl
def coordination_wrap(obj: Any, coordinator: Coordinator) -> Any:
    return CoordinatedJob(obj, coordinator) if _is_job(obj) else None


@hookimpl
def coordination_passthrough(exc: BaseException) -> bool | None:
    jobs = sys.modules.get("agentdiff_jobs")
    return True if jobs is not None and isinstance(exc, jobs.Handoff) else None
