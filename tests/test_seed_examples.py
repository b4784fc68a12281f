"""Every example of the original product README runs offline and does what the README says.

Each ``examples/seed_*.py`` runs in a fresh interpreter (memory backend, as a user
would run it); its output must show the promised outcome, which the example measures
itself (calls in flight at once, overlapping writes, what each handler received).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEEDS = sorted(p.name for p in EXAMPLES.glob("seed_*.py"))

#: for each example, patterns its output must contain, in this order
EXPECTED: dict[str, list[str]] = {
    # the workflow: research -> analysis -> summary through _complete events, at exit
    "seed_workflow.py": [
        r"Starting the research agent",
        r"Workflow complete: Summary: Analysis: .*Impact of AI on software development",
    ],
    "seed_quickstart.py": [
        r"customer-42 updated under the customer_database lock: \{'tier': 'gold'\}",
        r"analysis_agent received the research: Findings on AI safety",
    ],
    # the shared state: the processor never sees the updater's status mid-update
    "seed_customer_state.py": [
        r"processor updates: 75, profile updates: 75",
        r"saw another agent's status mid-update: 0\n",
    ],
    # three agents on three threads: one OpenAI call at a time
    "seed_api_queue.py": [r"18 agent runs", r"OpenAI API: 18 call\(s\), at most 1 at once"],
    "seed_event_chain.py": [
        r"researcher: gathering sources",
        r"analyzer: 12 sources on agent coordination",
        r"summarizer: condensing 'locks beat retries \(12 sources\)'",
        r"final report: TL;DR: locks beat retries \(12 sources\)",
    ],
    # the booking comes after the research, and books what the research chose
    "seed_hotel_booking.py": [
        r"research finished: compared 3 hotels, chose Hotel Miradouro",
        r"booked after the research: confirmation CONF-\d{5}",
    ],
    # the analysis sees the whole dataset, not a partial one
    "seed_data_pipeline.py": [r"analysis ran on 12 rows from 3 sources"],
    "seed_market_research.py": [r"8 researchers", r"OpenAI API: 8 call\(s\), at most 1 at once"],
    # the locked customer updates are never interleaved, and none is lost
    "seed_customer_record.py": [
        r"40 updates of customer_456",
        r"overlapping updates: 0\n",
        r"40 of 40 updates kept, lost updates: 0",
    ],
}


def test_every_seed_example_has_expectations() -> None:
    assert SEEDS, f"no examples/seed_*.py found in {EXAMPLES}"
    assert sorted(EXPECTED) == SEEDS


@pytest.mark.parametrize("example", SEEDS)
def test_seed_example_runs_offline_and_keeps_its_promise(example: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDIFF_")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES.parent,
        env=env,
    )
    assert proc.returncode == 0, f"{example} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr == "", f"{example} wrote to stderr:\n{proc.stderr}"
    position = 0
    for pattern in EXPECTED.get(example, []):
        match = re.compile(pattern).search(proc.stdout, position)
        assert match, f"{example}: expected /{pattern}/ after position {position} in:\n{proc.stdout}"
        position = match.end()
