"""The timeline in a real browser: headless Chromium opens it, offline, and it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdiff_coordination.recording import record
from agentdiff_coordination.timeline import write_timeline

from .browser import chromium_or_skip, dump_dom, screenshot
from .pages import Elements
from .synthetic import demo_like_spans, emit
from .test_timeline import STEP_ROWS

# Hovers the first wait bar of Task-2's writer and copies what the tooltip shows into the DOM.
HOVER = """<script>
window.addEventListener('load', function () {
  var bar = document.querySelector('.row[data-lane="task Task-2"] .bar.wait');
  var r = bar.getBoundingClientRect();
  bar.dispatchEvent(new MouseEvent('mouseover', {bubbles: true, clientX: r.left + 2, clientY: r.top + 2}));
  var tip = document.getElementById('tip');
  document.body.setAttribute('data-hover', tip.style.display + '|' + tip.textContent);
});
</script></body>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture
def page(tmp_path: Path) -> Path:
    with record(tmp_path / "run.jsonl"):
        emit(demo_like_spans())
    write_timeline([tmp_path / "run.jsonl"], tmp_path / "timeline.html")
    return tmp_path / "timeline.html"


def test_chromium_shows_one_row_per_step_and_bars_where_runs_waited(chromium: str, page: Path) -> None:
    dom, console = dump_dom(chromium, page)
    assert console == []  # no error, no warning, nothing logged
    shown = Elements(dom)
    assert shown.tag("body").get("data-ready") == "true"  # its script ran to the end
    assert {(r["data-lane"], r["data-step"]) for r in shown.with_class("row")} == STEP_ROWS
    # a wait bar in exactly the rows of the runs that waited (the first researcher did not)
    spans = demo_like_spans()
    lane = {s.run_id: f"task {s.task}" if s.task else f"thread {s.thread}" for s in spans}
    waited = {f"{lane[s.run_id]}|{s.step}" for s in spans if s.kind.endswith("_wait") and s.end > s.start}
    bars = {bar["_row"] for bar in shown.with_class("bar", "wait") if float(bar["data-duration"]) > 0}
    assert "thread Thread-1|researcher" not in waited
    assert bars == waited
    runs = [bar["_row"] for bar in shown.with_class("bar", "run")]
    assert len(runs) == sum(s.kind == "run" for s in spans)


def test_hovering_a_wait_shows_its_run_lock_fencing_and_wait(chromium: str, page: Path) -> None:
    page.write_text(page.read_text().replace("</body>", HOVER))
    dom, console = dump_dom(chromium, page)
    assert console == []
    shown, text = Elements(dom).tag("body")["data-hover"].split("|", 1)
    assert shown == "block"
    assert "waiting for lock openai_api" in text and "run id   w3-" in text and "fencing  4" in text


def test_a_page_error_would_be_seen(chromium: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>nosuch();</script></body></html>")
    _, console = dump_dom(chromium, bad)
    assert any("nosuch is not defined" in line for line in console)


def test_a_screenshot_of_the_timeline_is_taken(chromium: str, page: Path, tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    screenshot(chromium, page, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
