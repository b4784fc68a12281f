"""The timeline: one self-contained HTML page drawn from recordings (``record(path)``).

``agentdiff-coordination timeline run-*.jsonl -o timeline.html``, or
``write_timeline(paths, output)``. The page needs no network: its CSS and its few
lines of JavaScript (the details shown on hover) are inline.

A row per agent step, grouped by process (``host:pid``) and by thread or asyncio task.
In a row, each run is a grey bar (red when it failed, amber when cancelled or
interrupted); its waits for locks and limits are hatched bars coloured by resource,
and what it held is a thin strip in the resource's colour along the bottom.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.observers import SPAN_KINDS, SpanRecord

__all__ = ["load_spans", "render_timeline", "write_timeline"]

_OPTIONAL_STR = ("step", "run_id", "resource", "outcome", "error", "task")
# colour-blind-friendly first (Okabe-Ito), then more
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
    "#6A3D9A", "#1B9E77", "#B15928", "#7570B3", "#66A61E",
)


def _span_from_json(data: Any, where: str) -> SpanRecord:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a recorded span must be a JSON object, not {data!r}")
    missing = [name for name in SpanRecord.__slots__ if name not in data]
    if missing:
        raise ValueError(f"{where}: a recorded span needs {', '.join(missing)}; is this a record() file?")
    if data["kind"] not in SPAN_KINDS:
        raise ValueError(f"{where}: unknown span kind {data['kind']!r}; expected one of {', '.join(SPAN_KINDS)}")
    for name in ("start", "end"):
        if isinstance(data[name], bool) or not isinstance(data[name], (int, float)):
            raise ValueError(f"{where}: {name} must be a number of seconds, not {data[name]!r}")
    for name in ("pid", "fencing"):
        value = data[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{where}: {name} must be a whole number, not {value!r}")
    for name in _OPTIONAL_STR:
        if data[name] is not None and not isinstance(data[name], str):
            raise ValueError(f"{where}: {name} must be a string or null, not {data[name]!r}")
    return SpanRecord(**{name: data[name] for name in SpanRecord.__slots__})


def load_spans(paths: Iterable[str | os.PathLike[str]]) -> list[SpanRecord]:
    """Every span of the given recordings, in start order; a malformed line is a
    ``ValueError`` naming its file and line."""
    spans: list[SpanRecord] = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{os.fspath(path)}:{number}"
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{where}: not a JSON line ({exc})") from None
                spans.append(_span_from_json(data, where))
    spans.sort(key=lambda s: (s.start, s.end))
    return spans


# -- layout ------------------------------------------------------------------------------


@dataclass
class _Row:
    step: str
    spans: list[SpanRecord] = field(default_factory=list)


@dataclass
class _Lane:
    label: str
    rows: dict[str, _Row] = field(default_factory=dict)


@dataclass
class _Process:
    label: str
    lanes: dict[str, _Lane] = field(default_factory=dict)


def _resource_key(span: SpanRecord) -> str:
    return f"{'lock' if span.kind.startswith('lock') else 'limit'} {span.resource or '?'}"


def _row_label(span: SpanRecord) -> str:
    return span.step if span.step is not None else f"(no step) {_resource_key(span)}"


def _layout(spans: Sequence[SpanRecord]) -> list[_Process]:
    processes: dict[str, _Process] = {}
    for span in spans:  # in start order, so groups and rows appear in order of first activity
        where = f"{span.host}:{span.pid}"
        process = processes.setdefault(where, _Process(where))
        lane_label = f"task {span.task}" if span.task else f"thread {span.thread}"
        lane = process.lanes.setdefault(lane_label, _Lane(lane_label))
        step = _row_label(span)
        lane.rows.setdefault(step, _Row(step)).spans.append(span)
    return list(processes.values())


def _ticks(total: float) -> list[float]:
    """Round tick positions (seconds) over ``[0, total]``: about eight of them."""
    raw = total / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = int(total / step) + 1
    return [i * step for i in range(count)]


def _fmt(seconds: float) -> str:
    if seconds <= 0:
        return "0 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.0095 else f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


# -- rendering ---------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1f2933;background:#fff}
header{padding:14px 20px 6px}
h1{font-size:18px;margin:0 0 4px}
.meta{color:#52606d}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;padding:6px 20px 10px;border-bottom:1px solid #e4e7eb}
.legend span{display:inline-flex;align-items:center;gap:6px}
.sw{display:inline-block;width:22px;height:12px;border-radius:2px}
.timeline{padding:0 20px 20px}
.grid{display:grid;grid-template-columns:minmax(160px,22%) 1fr}
.axis{position:sticky;top:0;background:#fff;z-index:3;height:26px;border-bottom:1px solid #cbd2d9}
.tick{position:absolute;top:4px;transform:translateX(-50%);color:#52606d;font-size:11px;white-space:nowrap}
.tick:first-child{transform:none}
.process{grid-column:1/-1;font-weight:600;padding:10px 0 2px;border-bottom:1px solid #e4e7eb}
.lane{grid-column:1/-1;color:#52606d;font-size:12px;padding:4px 0 0 10px}
.label{padding:3px 8px 3px 22px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;height:26px}
.track{position:relative;height:26px;border-bottom:1px dotted #eef1f4}
.gridline{position:absolute;top:0;bottom:0;border-left:1px solid #f0f2f5;pointer-events:none}
.bar{position:absolute;min-width:2px;border-radius:2px;cursor:default}
.run{top:5px;height:16px;background:#9aa5b1;border:1px solid #7b8794}
.run.failed{background:#f29b9b;border:1px solid #c81e1e}
.run.cancelled,.run.interrupted{background:#fbd38d;border:1px dashed #b7791f}
.wait{top:5px;height:16px;opacity:.95;background-image:repeating-linear-gradient(135deg,rgba(255,255,255,.55) 0 3px,transparent 3px 7px);z-index:1}
.wait.timeout{outline:2px solid #c81e1e}
.wait.cancelled{outline:1px dashed #b7791f}
.hold{top:20px;height:4px;z-index:1}
.mark{position:absolute;top:2px;font-size:13px;font-weight:700;line-height:1;z-index:2;pointer-events:none}
.mark.failed{color:#c81e1e}.mark.cancelled,.mark.interrupted{color:#b7791f}
.empty{padding:30px 20px;color:#52606d}
#tip{position:fixed;display:none;z-index:10;max-width:460px;padding:8px 10px;border-radius:4px;background:#1f2933;
 color:#f5f7fa;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;pointer-events:none;
 box-shadow:0 2px 8px rgba(0,0,0,.25)}
table.summary{border-collapse:collapse;margin:8px 20px 4px}
.summary th,.summary td{padding:2px 12px 2px 0;text-align:left}
.summary td.n{text-align:right}
"""

_JS = """
(function () {
  var tip = document.getElementById('tip');
  function place(e) {
    var x = e.clientX + 14, y = e.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) x = Math.max(8, e.clientX - w - 14);
    if (y + h > window.innerHeight - 8) y = Math.max(8, e.clientY - h - 14);
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  }
  document.addEventListener('mouseover', function (e) {
    var bar = e.target.closest ? e.target.closest('[data-tip]') : null;
    if (!bar) { tip.style.display = 'none'; return; }
    tip.textContent = bar.getAttribute('data-tip');
    tip.style.display = 'block';
    place(e);
  });
  document.addEventListener('mousemove', function (e) { if (tip.style.display === 'block') place(e); });
  document.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  document.body.setAttribute('data-ready', 'true');
})();
"""

_OUTCOME_MARK = {"failed": "\u2715", "cancelled": "\u2298", "interrupted": "\u2016"}


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


class _Page:
    def __init__(self, spans: Sequence[SpanRecord]) -> None:
        self.spans = spans
        self.t0 = min(s.start for s in spans)
        self.total = max(max(s.end for s in spans) - self.t0, 1e-3)
        self.colours: dict[str, str] = {}
        for span in spans:
            if span.kind != "run":
                key = _resource_key(span)
                if key not in self.colours:
                    self.colours[key] = PALETTE[len(self.colours) % len(PALETTE)]
        self.by_run: dict[str, list[SpanRecord]] = {}
        for span in spans:
            if span.run_id is not None and span.kind != "run":
                self.by_run.setdefault(span.run_id, []).append(span)

    def pos(self, span: SpanRecord) -> str:
        """The bar's ``data-duration`` (seconds) and its place as a ``style``."""
        left = (span.start - self.t0) / self.total * 100
        seconds = max(span.end - span.start, 0.0)
        return f'data-duration="{seconds:.6f}" style="left:{left:.4f}%;width:{seconds / self.total * 100:.4f}%'

    def tip(self, span: SpanRecord) -> str:
        at = f"+{_fmt(span.start - self.t0)}"
        took = _fmt(max(span.end - span.start, 0.0))
        lines: list[str] = []
        if span.kind == "run":
            lines.append(f"{span.step} \u00b7 {span.outcome or 'run'}")
            lines.append(f"run id   {span.run_id}")
            lines.append(f"started  {at}, took {took}")
            for other in self.by_run.get(span.run_id or "", ()):
                what = "waited for" if other.kind.endswith("wait") else "held"
                fencing = f" (fencing {other.fencing})" if other.fencing is not None else ""
                outcome = f", {other.outcome}" if other.kind.endswith("wait") and other.outcome != "granted" else ""
                lines.append(f"{what} {_resource_key(other)}{fencing}: {_fmt(other.end - other.start)}{outcome}")
        else:
            family, state = span.kind.split("_")
            lines.append(f"{'waiting for' if state == 'wait' else 'holding'} {family} {span.resource}")
            lines.append(f"step     {span.step or '(none)'}")
            lines.append(f"run id   {span.run_id or '(none)'}")
            lines.append(f"from     {at}, {'waited' if state == 'wait' else 'held'} {took}")
            if span.outcome:
                lines.append(f"outcome  {span.outcome}")
            if span.fencing is not None:
                lines.append(f"fencing  {span.fencing}")
        if span.error:
            lines.append(f"error    {span.error}")
        lines.append(f"where    {span.host}:{span.pid} {'task ' + span.task if span.task else 'thread ' + span.thread}")
        return "\n".join(lines)

    def bar(self, span: SpanRecord) -> str:
        tip = _attr(self.tip(span))
        if span.kind == "run":
            outcome = span.outcome or "complete"
            out = (
                f'<div class="bar run {_attr(outcome)}" data-kind="run" data-outcome="{_attr(outcome)}" '
                f'data-run="{_attr(span.run_id or "")}" {self.pos(span)}" data-tip="{tip}"></div>'
            )
            mark = _OUTCOME_MARK.get(outcome)
            if mark:
                right = (span.end - self.t0) / self.total * 100
                out += f'<span class="mark {_attr(outcome)}" style="left:calc({right:.4f}% + 3px)">{mark}</span>'
            return out
        key = _resource_key(span)
        state = span.kind.split("_")[1]
        extra = f" {_attr(span.outcome)}" if state == "wait" and span.outcome and span.outcome != "granted" else ""
        return (
            f'<div class="bar {state}{extra}" data-kind="{span.kind}" data-resource="{_attr(key)}" '
            f'{self.pos(span)};background-color:{self.colours[key]}" data-tip="{tip}"></div>'
        )

    def summary(self) -> str:
        waits: dict[str, list[SpanRecord]] = {}
        for span in self.spans:
            if span.kind.endswith("_wait"):
                waits.setdefault(_resource_key(span), []).append(span)
        if not waits:
            return ""
        rows = []
        for key, found in sorted(waits.items(), key=lambda kv: -sum(s.end - s.start for s in kv[1])):
            durations = [s.end - s.start for s in found]
            timeouts = sum(s.outcome == "timeout" for s in found)
            rows.append(
                f'<tr><td><span class="sw" style="background:{self.colours[key]}"></span> {_attr(key)}</td>'
                f'<td class="n">{len(found)}</td><td class="n">{_fmt(sum(durations))}</td>'
                f'<td class="n">{_fmt(max(durations))}</td><td class="n">{timeouts}</td></tr>'
            )
        return (
            '<table class="summary"><tr><th>waited for</th><th>waits</th><th>total</th><th>longest</th>'
            f"<th>timeouts</th></tr>{''.join(rows)}</table>"
        )

    def legend(self) -> str:
        items = [
            '<span><i class="sw" style="background:#9aa5b1;border:1px solid #7b8794"></i>running</span>',
            '<span><i class="sw" style="background:#f29b9b;border:1px solid #c81e1e"></i>failed \u2715</span>',
            '<span><i class="sw" style="background:#fbd38d;border:1px dashed #b7791f"></i>cancelled \u2298 / interrupted \u2016</span>',
        ]
        for key, colour in self.colours.items():
            items.append(
                f'<span class="resource" data-resource="{_attr(key)}"><i class="sw wait" style="position:static;'
                f'background-color:{colour}"></i>{_attr(key)}</span>'
            )
        items.append("<span>hatched: waiting \u00b7 strip below a run: holding</span>")
        return f'<div class="legend">{"".join(items)}</div>'

    def body(self) -> str:
        ticks = _ticks(self.total)
        gridlines = "".join(f'<div class="gridline" style="left:{t / self.total * 100:.4f}%"></div>' for t in ticks)
        out = ['<div class="grid"><div></div><div class="axis track">']
        out += [f'<span class="tick" style="left:{t / self.total * 100:.4f}%">+{_fmt(t) if t else "0"}</span>' for t in ticks]
        out.append("</div>")
        for process in _layout(self.spans):
            out.append(f'<div class="process" data-process="{_attr(process.label)}">process {_attr(process.label)}</div>')
            for lane in process.lanes.values():
                out.append(f'<div class="lane" data-lane="{_attr(lane.label)}">{_attr(lane.label)}</div>')
                for row in lane.rows.values():
                    out.append(
                        f'<div class="label" title="{_attr(row.step)}">{_attr(row.step)}</div>'
                        f'<div class="track row" data-step="{_attr(row.step)}" data-process="{_attr(process.label)}" '
                        f'data-lane="{_attr(lane.label)}">{gridlines}'
                    )
                    # runs first, then holds and waits on top of them
                    ordered = sorted(row.spans, key=lambda s: (s.kind != "run", s.start))
                    out += [self.bar(span) for span in ordered]
                    out.append("</div>")
        out.append("</div>")
        return "".join(out)


def render_timeline(spans: Sequence[SpanRecord], *, title: str = "agentdiff-coordination timeline", source: str = "") -> str:
    """The HTML page for ``spans`` (a page saying so when there are none)."""
    head = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_attr(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head><body>'
    )
    if not spans:
        meta = f"no spans recorded{' in ' + _attr(source) if source else ''}"
        return f'{head}<header><h1>{_attr(title)}</h1><div class="meta">{meta}</div></header>' \
            '<div class="empty">Nothing to draw: record a run with agentdiff_coordination.record(path).</div></body></html>'
    page = _Page(spans)
    runs = [s for s in spans if s.kind == "run"]
    failed = sum(s.outcome == "failed" for s in runs)
    processes = len({(s.host, s.pid) for s in spans})
    dot = " \u00b7 "
    meta = dot.join(
        [f"{len(runs)} run(s), {failed} failed", f"{processes} process(es)", _fmt(page.total)] + ([_attr(source)] if source else [])
    )
    return (
        f'{head}<header><h1>{_attr(title)}</h1><div class="meta">{meta}</div></header>'
        f'{page.legend()}{page.summary()}<div class="timeline">{page.body()}</div>'
        f'<div id="tip" role="tooltip"></div><script>{_JS}</script></body></html>'
    )


def write_timeline(
    paths: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, title: str | None = None
) -> int:
    """Draw the recordings ``paths`` into the HTML file ``output``; the number of spans drawn."""
    if not paths:
        raise ValueError("write_timeline() needs at least one recording (a .jsonl file written by record(path))")
    spans = load_spans(paths)
    source = ", ".join(Path(p).name for p in paths)
    page = render_timeline(spans, title=title or "agentdiff-coordination timeline", source=source)
    Path(output).write_text(page, encoding="utf-8")
    return len(spans)
