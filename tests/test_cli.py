"""The README's first command: the offline demo."""

from __future__ import annotations

import subprocess
import sys

from agentdiff_coordination.demo import run


def test_demo_command_shows_collisions_without_coordination_and_none_with_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentdiff_coordination", "demo"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    without, with_ = done.stdout.split("2. With @coordinate")
    assert "rejected for overlapping: 0 of 6" not in without  # the uncoordinated half collides
    assert "rejected for overlapping: 0 of 6" in with_
    assert "notes saved on the record:           6 of 6" in with_
    assert "No update was lost." in done.stdout
    assert done.stderr == ""


def test_demo_timeline_names_who_waited_for_the_api() -> None:
    lines: list[str] = []
    assert run(lines.append)
    waits = [line for line in lines if "holds openai_api after waiting" in line]
    assert len(waits) == 6
    assert sum("record_writer_complete: the record has" in line for line in lines) == 6


def test_cli_without_a_command_prints_help_and_fails() -> None:
    done = subprocess.run([sys.executable, "-m", "agentdiff_coordination"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "demo" in done.stdout
