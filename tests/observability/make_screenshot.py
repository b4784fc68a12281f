"""Regenerate the screenshot in the docs: ``python -m tests.observability.make_screenshot [RUN.jsonl ...]``.

Without recordings it draws the synthetic demo-shaped recording of these tests."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from agentdiff_coordination.recording import record
from agentdiff_coordination.timeline import write_timeline

from .browser import chromium_or_skip, screenshot
from .synthetic import demo_like_spans, emit

ROOT = Path(__file__).resolve().parents[2]


def main(recordings: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if not recordings:
            recordings = [f"{folder}/demo.jsonl"]
            with record(recordings[0]):
                emit(demo_like_spans())
        page = Path(folder) / "timeline.html"
        write_timeline(recordings, page, title="agentdiff-coordination demo")
        screenshot(chromium_or_skip(), page, ROOT / "docs" / "images" / "timeline.png")


if __name__ == "__main__":
    main(sys.argv[1:])
