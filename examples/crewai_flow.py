"""A CrewAI Flow whose parallel listeners update one shared state, offline.

    python examples/crewai_flow.py

Three listeners of one router branch run at once (CrewAI runs sync listeners in worker
threads, async ones as tasks) and each adds its findings to ``flow.state``: read the
list, think, write it back. Bare, their read-modify-write updates race and findings are
lost; with ``@coordinate(..., lock_name="flow_state")`` on the listeners none is lost,
the Flow still routes, and each method reports ``NAME_started`` / ``NAME_complete``.
No LLM is called; CrewAI's Flow runtime is real.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

for key, value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_STORAGE_DIR": tempfile.mkdtemp(prefix="crewai-flow-example-"),
}.items():
    os.environ.setdefault(key, value)

from crewai.flow.flow import Flow, listen, router, start  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from agentdiff_coordination import coordinate, drain, when  # noqa: E402


class Research(BaseModel):
    topic: str = "AI safety"
    findings: list[str] = []


def research_flow(locked: bool) -> Flow[Research]:
    def step(name: str) -> Callable[[Any], Any]:
        return coordinate(name, lock_name="flow_state") if locked else (lambda f: f)

    class ResearchFlow(Flow[Research]):
        @start()
        @coordinate("plan")
        def plan(self) -> str:
            return self.state.topic

        @router(plan)
        @coordinate("triage")
        def triage(self) -> str:
            return "deep"

        def _note(self, finding: str) -> None:
            notes = list(self.state.findings)   # read
            time.sleep(0.05)                     # think
            self.state.findings = [*notes, finding]  # write

        @listen("deep")
        @step("papers")
        def papers(self) -> None:
            self._note("papers")

        @listen("deep")
        @step("news")
        def news(self) -> None:
            self._note("news")

        @listen("deep")
        @step("forums")
        async def forums(self) -> None:
            notes = list(self.state.findings)
            await asyncio.sleep(0.05)
            self.state.findings = [*notes, "forums"]

    return ResearchFlow()


def main() -> None:
    bare = research_flow(locked=False)
    bare.kickoff()
    print(f"bare listeners: findings kept {sorted(bare.state.findings)} (3 written)")

    completed: list[str] = []
    for name in ("plan", "triage", "papers", "news", "forums"):
        when(f"{name}_complete")(lambda data, name=name: completed.append(name))
    locked = research_flow(locked=True)
    locked.kickoff()
    drain()
    print(f"coordinated listeners: findings kept {sorted(locked.state.findings)}")
    print(f"events: {sorted(completed)}")
    ok = len(bare.state.findings) < 3 and sorted(locked.state.findings) == ["forums", "news", "papers"] \
        and sorted(completed) == ["forums", "news", "papers", "plan", "triage"]
    print("no update lost" if ok else "CHECKS FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
