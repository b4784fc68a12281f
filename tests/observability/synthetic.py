"""A synthetic recording shaped like the demo's, and a tiny emitter that feeds spans to
the registered observers as the core does (the core's own emission is tested with it)."""

from __future__ import annotations

from dataclasses import replace

from agentdiff_coordination.core.observers import SpanRecord, observers

T0 = 1_700_000_000.0
HOST = "agent-box"


def _span(kind: str, step: str | None, run_id: str | None, resource: str | None, start: float, end: float, *,
          outcome: str | None = None, fencing: int | None = None, error: str | None = None, pid: int = 4242,
          thread: str = "MainThread", task: str | None = None) -> SpanRecord:
    return SpanRecord(kind, step, run_id, resource, T0 + start, T0 + end, outcome, fencing, error, HOST, pid, thread, task)


def _run(step: str, run_id: str, start: float, wait: float, hold: float, resource: str, fencing: int, *,
         outcome: str = "complete", error: str | None = None, family: str = "lock", **where: object) -> list[SpanRecord]:
    """A coordinated run: it waits ``wait`` seconds for ``resource``, then holds it ``hold`` seconds."""
    got = start + wait
    end = got + hold
    w = dict(where)
    return [
        _span(f"{family}_wait", step, run_id, resource, start, got, outcome="granted", fencing=fencing if family == "lock" else None, **w),  # type: ignore[arg-type]
        _span(f"{family}_hold", step, run_id, resource, got, end, fencing=fencing if family == "lock" else None, **w),  # type: ignore[arg-type]
        _span("run", step, run_id, None, start, end, outcome=outcome, error=error, **w),  # type: ignore[arg-type]
    ]


def demo_like_spans() -> list[SpanRecord]:
    """Three researcher threads and three writer tasks queue for ``openai_api``, then save to
    ``customer_42``; one writer fails, a late researcher is cancelled while waiting, and a
    tokens limit holds one step back. One process; times in seconds from T0."""
    spans: list[SpanRecord] = []
    api_free = 0.0
    fencing = 1
    order = [("researcher", f"Thread-{i}", None) for i in (1, 2, 3)] + [("writer", "MainThread", f"Task-{i}") for i in (2, 3, 4)]
    saves: list[tuple[float, str, str | None, str]] = []
    for n, (step, thread, task) in enumerate(order):
        start = 0.001 * n
        wait = max(api_free - start, 0.0)
        outcome, error = ("failed", "RuntimeError: 429 Too Many Requests") if n == 4 else ("complete", None)
        run_id = f"{step[:1]}{n}-{n * 7919 % 10000:04d}"
        spans += _run(step, run_id, start, wait, 0.021, "openai_api", fencing, outcome=outcome, error=error, thread=thread, task=task)
        fencing += 1
        api_free = start + wait + 0.021
        if outcome == "complete":
            saves.append((api_free, thread if task is None else "asyncio_0", None, f"s{n}"))
    record_free = 0.0
    for at, thread, task, run_id in saves:
        wait = max(record_free - at, 0.0)
        spans += _run("record_writer", run_id, at, wait, 0.006, "customer_42", fencing, thread=thread, task=task)
        fencing += 1
        record_free = at + wait + 0.006
    spans += _run("summarizer", "z9-0001", 0.05, 0.04, 0.02, "tokens", 0, family="limit", thread="Thread-9")
    spans.append(_span("lock_wait", "researcher", "r7-0007", "openai_api", 0.02, 0.09, outcome="cancelled", thread="Thread-7"))
    spans.append(_span("run", "researcher", "r7-0007", None, 0.02, 0.09, outcome="cancelled", error="CancelledError", thread="Thread-7"))
    return sorted(spans, key=lambda s: (s.start, s.end))


def emit(spans: list[SpanRecord]) -> None:
    """Hand each span to every registered observer, as the core does when a span ends."""
    for span in spans:
        for observer in observers():
            observer.span(span)


def in_other_process(spans: list[SpanRecord], pid: int) -> list[SpanRecord]:
    return [replace(s, pid=pid) for s in spans]
