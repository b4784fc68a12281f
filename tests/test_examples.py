"""Every framework and feature example runs offline and ends well (the seed README's
examples have their own checks in test_seed_examples.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# example -> a line its output must contain when it ends well
CASES = {
    "langgraph_parallel.py": "a reducer",
    "crewai_crew.py": "final output",
    "autogen_team.py": "coordinated agents: at most 1 API call at once",
    "rate_limits.py": "All limits held.",
    "multiprocess_redis.py": "all checks passed",
    "observability.py": "status showed the holder and both waiters",
    "langgraph_threads.py": "one linear history per thread",
    "crewai_flow.py": "no update lost",
    "openai_agents_tools.py": "all checks passed",
    "provider_fleet.py": "The limited clients kept the provider's limits.",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_offline_and_says_it_ended_well(name: str, tmp_path: Path) -> None:
    if name == "multiprocess_redis.py" and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert CASES[name] in done.stdout


def test_every_example_is_checked_somewhere() -> None:
    seeds = {p.name for p in EXAMPLES.glob("seed_*.py")}
    others = {p.name for p in EXAMPLES.glob("*.py")} - seeds - {"_standins.py"}
    assert others == set(CASES)
