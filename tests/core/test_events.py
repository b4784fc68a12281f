"""Events in one process: logging and stderr for failures, the drain at exit, where
handlers run. Backend-independent event semantics are in ``tests/conformance``."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from agentdiff_coordination import dead_letters, drain, emit, unsubscribe, when
from agentdiff_coordination.core.runtime import RUNTIME

from ..conformance.support import HANG, LoopThread


def run_script(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter on the memory backend; its completed process."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDIFF_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


def test_a_failing_handler_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agentdiff_coordination")

    @when("logged", retries=1, retry_delay=0)
    def exploding_handler(data: Any) -> None:
        raise ZeroDivisionError("boom in handler")

    event_id = emit("logged", 1)
    assert drain(timeout=HANG)
    records = [r for r in caplog.records if r.name == "agentdiff_coordination"]
    retry = [r for r in records if r.levelno == logging.WARNING]
    final = [r for r in records if r.levelno == logging.ERROR]
    assert len(retry) == 1 and "retrying" in retry[0].getMessage()
    assert len(final) == 1
    message = final[0].getMessage()
    assert "exploding_handler" in message and "'logged'" in message and event_id in message
    assert "Traceback" in message and "ZeroDivisionError: boom in handler" in message


def test_a_failing_handler_shows_on_stderr_when_no_logging_is_configured() -> None:
    proc = run_script(
        """
        from agentdiff_coordination import emit, when

        @when("job_done")
        def broken(data):
            raise ValueError("no logging configured, still visible")

        emit("job_done", {})
        print("emitter carried on")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "emitter carried on" in proc.stdout
    assert "ValueError: no logging configured, still visible" in proc.stderr
    assert "Traceback" in proc.stderr


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_script_that_emits_and_exits_still_runs_its_handlers(kind: str) -> None:
    # the handler finishes only after the script's last line: it runs in the exit drain
    wait = "main_done.wait(30)" if kind == "sync" else "while not main_done.is_set(): await asyncio.sleep(0.001)"
    header = "def handler(data):" if kind == "sync" else "async def handler(data):"
    proc = run_script(
        "import asyncio, threading\n"
        "from agentdiff_coordination import emit, when\n"
        "main_done = threading.Event()\n"
        "@when('last_words')\n"
        f"{header}\n"
        f"    {wait}\n"
        "    print('handled', data, 'after main:', main_done.is_set(), flush=True)\n"
        "emit('last_words', 42)\n"
        "print('main done', flush=True)\n"
        "main_done.set()\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["main done", "handled 42 after main: True"]


def test_an_async_handler_may_hand_blocking_work_to_a_thread_during_the_exit_drain() -> None:
    proc = run_script(
        """
        import asyncio, threading
        from agentdiff_coordination import emit, when

        main_done = threading.Event()

        @when("save_report")
        async def save(data):
            # blocking work handed to a thread, after the script's last line
            await asyncio.to_thread(main_done.wait, 30)
            print("saved", data, flush=True)

        emit("save_report", "r1")
        main_done.set()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "saved r1", proc.stderr


def test_a_chain_of_handlers_finishes_at_exit() -> None:
    proc = run_script(
        """
        from agentdiff_coordination import emit, when

        @when("step_1")
        def one(data):
            emit("step_2", data + 1)

        @when("step_2")
        async def two(data):
            emit("step_3", data + 1)

        @when("step_3")
        def three(data):
            print("end of chain", data, flush=True)

        emit("step_1", 1)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "end of chain 3"


def test_the_exit_drain_is_bounded_and_says_what_it_left() -> None:
    proc = run_script(
        """
        import threading
        from agentdiff_coordination import emit, when

        @when("forever")
        def stuck(data):
            threading.Event().wait()

        emit("forever")
        """,
        AGENTDIFF_COORDINATION_EXIT_DRAIN="0.2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "pending" in proc.stderr and "AGENTDIFF_COORDINATION_EXIT_DRAIN" in proc.stderr


def test_handlers_of_different_subscriptions_run_in_parallel() -> None:
    both_inside = threading.Barrier(2, timeout=HANG)  # breaks unless both handlers run at once
    met: list[str] = []

    @when("fan_out")
    def left(data: Any) -> None:
        both_inside.wait()
        met.append("left")

    @when("fan_out")
    def right(data: Any) -> None:
        both_inside.wait()
        met.append("right")

    emit("fan_out")
    assert drain(timeout=HANG)
    assert sorted(met) == ["left", "right"]
    assert dead_letters() == []


def test_async_handlers_registered_inside_a_loop_run_on_that_loop() -> None:
    with LoopThread("handler-home") as home:
        ran_on: list[asyncio.AbstractEventLoop] = []

        async def subscribe() -> None:
            @when("home_loop")
            async def handler(data: Any) -> None:
                ran_on.append(asyncio.get_running_loop())

        home.submit(subscribe()).result(HANG)
        emit("home_loop")
        assert drain(timeout=HANG)
        assert ran_on == [home.loop]


def test_dead_letters_can_be_cleared() -> None:
    @when("to_clear", retries=0)
    def handler(data: Any) -> None:
        raise RuntimeError("x")

    emit("to_clear")
    assert drain(timeout=HANG)
    assert len(dead_letters(clear=True)) == 1
    assert dead_letters() == []


def test_unsubscribe_by_subscription_and_by_handler_with_several_patterns() -> None:
    seen: list[str] = []

    @when("multi_a")
    @when("multi_b")
    def handler(data: Any) -> None:
        seen.append(data)

    subs = handler.__agentdiff_subscriptions__  # type: ignore[attr-defined]
    assert len(subs) == 2
    assert unsubscribe(subs[0]) == 1
    emit("multi_a", "a")
    emit("multi_b", "b")
    assert drain(timeout=HANG)
    assert seen == ["a"]  # the "multi_b" subscription (applied first) was stopped
    assert unsubscribe(handler) == 1
    emit("multi_a", "a2")
    assert drain(timeout=HANG)
    assert seen == ["a"]


def test_emit_with_no_subscriber_is_cheap_and_starts_no_thread() -> None:
    before = threading.active_count()
    for i in range(1000):
        emit("nobody_listens", i)
    assert threading.active_count() == before
    assert RUNTIME.bus.pending == 0
