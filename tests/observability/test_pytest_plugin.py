"""The pytest plugin, run on users' tests through pytester."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

USERS_TESTS = '''
import threading
import pytest
import agentdiff_coordination as ac
from agentdiff_coordination.core.runtime import get_backend

seen_handlers = []

@ac.coordinate("researcher", lock_name="openai_api")
def research(topic):
    return f"notes on {topic}"

def test_events_are_recorded(coordination, coordination_events):
    @ac.when("researcher_complete")
    def on_done(data):
        seen_handlers.append(data["result"])
    research("agents")
    coordination_events.wait_for_count(2)   # on Redis, events come back through the stream
    assert coordination_events.names() == ["researcher_started", "researcher_complete"]
    assert ac.drain(5)

def test_the_next_test_starts_clean(coordination, coordination_events):
    assert seen_handlers == ["notes on agents"]
    ac.emit("researcher_complete", {"result": "again"})   # the last test's handler is gone
    assert ac.drain(5)
    assert seen_handlers == ["notes on agents"]
    assert [e.name for e in coordination_events.wait_for_count(1)] == ["researcher_complete"]

def test_runs_on_the_backend_asked_for(coordination, coordination_backend_url):
    assert get_backend().url == coordination
    assert coordination.startswith(coordination_backend_url)
'''


LEAKED_LOCK = '''
import agentdiff_coordination as ac

def test_a_lock_left_held(coordination):
    ac.lock("db").__enter__()   # never released

def test_after_it_the_lock_is_free(coordination):
    with ac.lock("db", timeout=0):
        pass
'''


def plugin_args() -> list[str]:
    """``-p`` the plugin unless its entry point already loads it."""
    installed = any(ep.value == "agentdiff_coordination.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "agentdiff_coordination.pytest_plugin"]


def test_fixtures_give_each_test_a_clean_state_and_an_event_recorder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_users=USERS_TESTS)
    result = pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)


def test_a_lock_a_test_left_held_does_not_leak_into_the_next(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_leak=LEAKED_LOCK)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # in a process of its own: the leak stays there
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


def test_the_option_is_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*plugin_args(), "--help")
    result.stdout.fnmatch_lines(["*agentdiff-coordination*", "*--coordination-backend=URL*"])


def test_the_ini_option_names_the_backend(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncoordination_backend = memory://from-ini\n")
    pytester.makepyfile(test_ini="def test_url(coordination):\n    assert coordination == 'memory://from-ini'\n")
    pytester.runpytest(*plugin_args(), "-q").assert_outcomes(passed=1)


@pytest.mark.redis
def test_on_redis_each_test_gets_a_key_prefix_of_its_own(pytester: pytest.Pytester, redis_url: str) -> None:
    pytester.makepyfile(test_users=USERS_TESTS + '''
def test_a_prefix_of_its_own(coordination):
    assert "prefix=pytest-" in coordination
    assert get_backend().shared
''')
    result = pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider", "-q", "--coordination-backend", redis_url)
    result.assert_outcomes(passed=4)


def test_the_entry_point_is_declared() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"agentdiff_coordination": "agentdiff_coordination.pytest_plugin"}
