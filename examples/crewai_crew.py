"""A CrewAI crew whose two research tasks share one notes file, offline.

    python examples/crewai_crew.py

Two research tasks run at once (``async_execution=True``) and both append to the same
notes file. Run bare, their writes interleave; with ``coordinate_crew`` they take the
lock ``notes_file`` for their whole run, and a ``@when`` handler hears about each
finished piece of research through events named after the tasks. The agents' LLM is a scripted
stand-in (no network, no API key); CrewAI itself is real.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

# CrewAI offline: no telemetry, tracing or version check; storage in a temporary directory
for key, value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_STORAGE_DIR": tempfile.mkdtemp(prefix="crewai-example-"),
}.items():
    os.environ.setdefault(key, value)

from crewai import Agent, Crew, CrewOutput, Task  # noqa: E402
from crewai.llms.base_llm import BaseLLM  # noqa: E402

from agentdiff_coordination import drain, when  # noqa: E402
from agentdiff_coordination.adapters.crewai import coordinate_crew  # noqa: E402


class NotesFile:
    """A file that must be written by one task at a time; counts writers that overlap."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.lines: list[str] = []
        self.writers = 0
        self.most_writers = 0

    def write(self, author: str, text: str) -> None:
        with self._mutex:
            self.writers += 1
            self.most_writers = max(self.most_writers, self.writers)
        for part in ("## " + author, text):  # a write in two steps: another writer can slip in between
            time.sleep(0.15)
            self.lines.append(part)
        with self._mutex:
            self.writers -= 1


notes = NotesFile()


class ScriptedLLM(BaseLLM):
    """Answers as a model following CrewAI's format would; writes the notes on the way."""

    def call(self, messages: Any, tools: Any = None, callbacks: Any = None, available_functions: Any = None,
             from_task: Any = None, from_agent: Any = None, response_model: Any = None) -> str:
        topic = from_task.name if from_task is not None else "?"
        if topic.startswith("research"):
            notes.write(topic, f"findings on {topic.removeprefix('research_')}")
        return f"Thought: I have it\nFinal Answer: summary of {topic}"

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        return len(str(messages)) // 4


def build_crew() -> Crew:
    llm = ScriptedLLM(model="scripted")
    researcher = Agent(role="Researcher", goal="find facts", backstory="careful", llm=llm, verbose=False)
    analyst = Agent(role="Analyst", goal="find trends", backstory="curious", llm=llm, verbose=False)
    editor = Agent(role="Editor", goal="write the brief", backstory="concise", llm=llm, verbose=False)
    tasks = [
        Task(name="research_safety", description="Research AI safety.", expected_output="notes",
             agent=researcher, async_execution=True),
        Task(name="research_markets", description="Research AI markets.", expected_output="notes",
             agent=analyst, async_execution=True),
        Task(name="edit", description="Write a brief from the notes.", expected_output="a brief", agent=editor),
    ]
    return Crew(agents=[researcher, analyst, editor], tasks=tasks, memory=False, verbose=False)


def main() -> None:
    crew = build_crew()
    crew.kickoff()
    print(f"bare crew:        {notes.most_writers} tasks wrote the notes at once; lines: {notes.lines}")

    notes.clear()
    coordinate_crew(crew, locks={"research_safety": "notes_file", "research_markets": "notes_file"})

    @when("research_*_complete")
    def research_done(data: dict[str, Any]) -> None:
        print(f"  event: {data['task']} done by {data['agent']} in {data['duration'] * 1000:.0f} ms")

    result = crew.kickoff()
    drain(10)
    print(f"coordinated crew: {notes.most_writers} task wrote the notes at a time; lines: {notes.lines}")
    print(f"final output: {result.tasks_output[-1].raw if isinstance(result, CrewOutput) else result}")


if __name__ == "__main__":
    main()
