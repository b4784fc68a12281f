"""The offline demo behind ``agentdiff-coordination demo``.

Six agents (three in threads, three as asyncio tasks) share a stand-in "LLM API" that
rejects overlapping calls, and one customer record that they read, think about and
write back. First without coordination (collisions and lost updates), then with
``@coordinate`` locks and events chaining the next step. Runs in a few seconds on the
in-memory backend; no network, no server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from .core.coordinate import coordinate
from .core.events import current_event, drain, when
from .core.events import unsubscribe as _unsubscribe


class FakeLLMAPI:
    """A stand-in LLM endpoint that allows one call at a time, like a strict rate limit."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._busy = 0
        self.rejected = 0
        self.calls = 0

    def complete(self, prompt: str) -> str:
        with self._mutex:
            self._busy += 1
            overlapping = self._busy > 1
            if overlapping:
                self.rejected += 1
        try:
            time.sleep(0.02)  # the model "thinks"
            if overlapping:
                return "429 Too Many Requests"
            with self._mutex:
                self.calls += 1
            return f"insight about {prompt}"
        finally:
            with self._mutex:
                self._busy -= 1


class CustomerRecord:
    """A record updated read-modify-write, as agents do with a database row or a file."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def read(self) -> list[str]:
        return list(self.notes)

    def write(self, notes: list[str]) -> None:
        self.notes = notes


class Timeline:
    def __init__(self, printer: Callable[[str], None]) -> None:
        self._t0 = time.perf_counter()
        self._print = printer
        self._mutex = threading.Lock()

    def say(self, who: str, what: str) -> None:
        with self._mutex:
            self._print(f"  +{(time.perf_counter() - self._t0) * 1000:6.0f} ms  {who:<12} {what}")


def _run_agents(sync_agent: Callable[[str], Any], async_agent: Callable[[str], Any]) -> None:
    threads = [threading.Thread(target=sync_agent, args=(f"researcher-{i}",)) for i in (1, 2, 3)]
    for t in threads:
        t.start()

    async def writers() -> None:
        await asyncio.gather(*(async_agent(f"writer-{i}") for i in (1, 2, 3)))

    asyncio.run(writers())
    for t in threads:
        t.join()


def run(printer: Callable[[str], None] = print) -> bool:
    """Run the demo; True when the coordinated half had no collision and lost nothing."""
    printer("agentdiff-coordination demo: 6 agents (3 threads, 3 asyncio tasks), one LLM API, one record\n")

    # -- without coordination ------------------------------------------------------
    api, record = FakeLLMAPI(), CustomerRecord()

    def plain_researcher(who: str) -> None:
        answer = api.complete(who)
        notes = record.read()
        time.sleep(0.005)
        record.write(notes + [f"{who}: {answer}"])

    async def plain_writer(who: str) -> None:
        answer = await asyncio.to_thread(api.complete, who)
        notes = record.read()
        await asyncio.sleep(0.005)
        record.write(notes + [f"{who}: {answer}"])

    _run_agents(plain_researcher, plain_writer)
    printer("1. Without coordination")
    printer(f"   LLM calls rejected for overlapping: {api.rejected} of 6")
    printer(f"   notes saved on the record:           {len(record.notes)} of 6 (the rest were overwritten)\n")

    # -- with coordination ---------------------------------------------------------
    api, record = FakeLLMAPI(), CustomerRecord()
    timeline = Timeline(printer)
    printer("2. With @coordinate (lock 'openai_api' for the API, 'customer_42' for the record)")

    asked: dict[str, float] = {}

    def waited(who: str) -> str:
        return f"after waiting {(time.perf_counter() - asked[who]) * 1000:.0f} ms"

    @coordinate("researcher", lock_name="openai_api")
    def ask_model(who: str) -> str:
        timeline.say(who, f"holds openai_api {waited(who)}")
        return api.complete(who)

    @coordinate("record_writer", lock_name="customer_42")
    def save_note(who: str, answer: str) -> int:
        notes = record.read()
        time.sleep(0.005)
        record.write(notes + [f"{who}: {answer}"])
        return len(record.notes)

    def researcher(who: str) -> None:
        timeline.say(who, "asks for openai_api")
        asked[who] = time.perf_counter()
        save_note(who, ask_model(who))

    @coordinate("writer", lock_name="openai_api")
    async def writer_model(who: str) -> str:
        timeline.say(who, f"holds openai_api {waited(who)}")
        return await asyncio.to_thread(api.complete, who)

    async def writer(who: str) -> None:
        timeline.say(who, "asks for openai_api")
        asked[who] = time.perf_counter()
        answer = await writer_model(who)
        await asyncio.to_thread(save_note, who, answer)

    saved: list[int] = []

    @when("record_writer_complete")
    def on_saved(data: dict[str, Any]) -> None:
        saved.append(data["result"])
        timeline.say("handler", f"record_writer_complete: the record has {data['result']} note(s)")

    @when("*_failed")
    def on_failure(data: dict[str, Any]) -> None:
        event = current_event()
        timeline.say("handler", f"saw {event.name if event else '?'}: {data['error']}")

    try:
        _run_agents(researcher, writer)
        drain(5)
    finally:
        _unsubscribe(on_saved)
        _unsubscribe(on_failure)

    ok = api.rejected == 0 and len(record.notes) == 6
    printer("")
    printer(f"   LLM calls rejected for overlapping: {api.rejected} of 6")
    printer(f"   notes saved on the record:           {len(record.notes)} of 6")
    printer(f"   'record_writer_complete' events handled: {len(saved)} (record size after each: {sorted(saved)})")
    printer("")
    printer("No update was lost." if ok else "Something went wrong: please report it.")
    return ok
