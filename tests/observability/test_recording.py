"""record(path): one JSON line per span, from every thread, task and process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agentdiff_coordination.core.observers import SpanRecord, observers
from agentdiff_coordination.recording import record, span_to_json, start_recording, stop_recording
from agentdiff_coordination.timeline import load_spans

from .synthetic import demo_like_spans, emit

ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_span_is_one_json_line_with_every_field(tmp_path: Path) -> None:
    spans = demo_like_spans()
    path = tmp_path / "run.jsonl"
    with record(path):
        emit(spans)
    assert observers() == ()
    assert lines(path) == [span_to_json(s) for s in spans]
    assert load_spans([path]) == spans


def test_spans_from_many_threads_arrive_whole(tmp_path: Path) -> None:
    spans = demo_like_spans()
    path = tmp_path / "run.jsonl"
    start = threading.Barrier(8)

    def burst() -> None:
        start.wait()
        for _ in range(50):
            emit(spans)

    with record(path):
        threads = [threading.Thread(target=burst) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(lines(path)) == 8 * 50 * len(spans)  # every line parses: none interleaved


def test_pid_in_the_path_names_this_process_file(tmp_path: Path) -> None:
    with record(tmp_path / "run-{pid}.jsonl"):
        emit(demo_like_spans()[:2])
    assert [p.name for p in tmp_path.iterdir()] == [f"run-{os.getpid()}.jsonl"]


def test_the_file_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    for _ in range(2):
        with record(path):
            emit(demo_like_spans()[:1])
    assert len(lines(path)) == 2


def test_a_recording_entered_twice_writes_each_span_once(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    recording = record(path)
    with recording, recording:
        assert len(observers()) == 1
        emit(demo_like_spans()[:1])
    assert len(lines(path)) == 1 and not recording.active


def test_record_decorates_sync_and_async_functions(tmp_path: Path) -> None:
    spans = demo_like_spans()
    path = tmp_path / "run.jsonl"

    @record(path)
    def sync_run() -> int:
        emit(spans[:1])
        return len(observers())

    @record(path)
    async def async_run() -> int:
        await asyncio.sleep(0)
        emit(spans[1:2])
        return len(observers())

    assert sync_run() == 1
    assert asyncio.run(async_run()) == 1
    assert observers() == ()
    assert load_spans([path]) == spans[:2]


def test_start_recording_records_until_stopped(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    start_recording(first)
    emit(demo_like_spans()[:1])
    start_recording(second)  # replaces the first
    emit(demo_like_spans()[:2])
    stop_recording()
    stop_recording()
    emit(demo_like_spans())
    assert (len(lines(first)), len(lines(second))) == (1, 2)
    assert observers() == ()


def test_a_bad_path_is_refused_where_it_is_given() -> None:
    with pytest.raises(TypeError, match="record path"):
        record("")
    with pytest.raises(TypeError, match="record path"):
        record(42)  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    spans = demo_like_spans()
    with record(tmp_path / "run-{pid}.jsonl"):
        emit(spans[:1])
        pid = os.fork()
        if pid == 0:  # the child
            try:
                emit(spans[1:3])
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        emit(spans[3:4])
    assert len(lines(tmp_path / f"run-{os.getpid()}.jsonl")) == 2
    assert len(lines(tmp_path / f"run-{pid}.jsonl")) == 2


def test_processes_write_one_file_each_and_the_timeline_reads_them_all(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from agentdiff_coordination.recording import record
        from tests.observability.synthetic import demo_like_spans, emit
        with record({str(tmp_path / "run-{pid}.jsonl")!r}):
            emit(demo_like_spans())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    files = sorted(tmp_path.glob("run-*.jsonl"))
    assert len(files) == 3
    spans: list[SpanRecord] = load_spans(files)
    assert len(spans) == 3 * len(demo_like_spans())
