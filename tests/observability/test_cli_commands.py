"""The status and dead-letters commands (memory here; Redis where the backend reports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentdiff_coordination as ac
from agentdiff_coordination import cli
from agentdiff_coordination.cli import main
from agentdiff_coordination.core.snapshots import Status

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def held() -> Iterator[None]:
    """'openai_api' held by the step 'researcher' in a thread, with one waiter."""
    holding, release = threading.Event(), threading.Event()

    @ac.coordinate("researcher", lock_name="openai_api")
    def research() -> None:
        holding.set()
        release.wait(10)

    def wait() -> None:
        with ac.lock("openai_api", timeout=10):
            pass

    threads = [threading.Thread(target=research, name="researcher-1"), threading.Thread(target=wait)]
    threads[0].start()
    assert holding.wait(10)
    threads[1].start()
    from agentdiff_coordination.status import status

    while not status().locks[0].waiting:
        threading.Event().wait(0.002)
    yield
    release.set()
    for t in threads:
        t.join()


def test_status_draws_the_holder_and_the_waiters(held: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    out = capsys.readouterr()
    assert "openai_api" in out.out and "researcher on" in out.out and "thread researcher-1" in out.out
    assert "memory:// lives inside one process" in out.err


def test_status_draws_plain_text_without_rich(held: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_rich", lambda: None)
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("backend memory://")
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["name", "holder"])
    assert lines[header + 1].split()[0] == "openai_api" and lines[header + 1].split()[-1] == "1"


def test_status_json_is_the_documented_snapshot(held: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json"]) == 0
    snapshot = Status.from_json(json.loads(capsys.readouterr().out))
    (lock,) = snapshot.locks
    assert (lock.name, lock.waiting) == ("openai_api", 1)
    assert lock.holder is not None and lock.holder.step == "researcher" and lock.holder.pid == os.getpid()


def test_status_watch_redraws(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--watch", "0.01", "--watch-count", "3"]) == 0
    assert capsys.readouterr().out.count("refreshing every 0.01s") == 3


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_status_watch_needs_positive_seconds(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["status", "--watch", value])
    assert exited.value.code == 2
    assert f"--watch needs a" in capsys.readouterr().err


def test_the_url_comes_from_the_option_before_the_environment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTDIFF_COORDINATION_BACKEND", "carrier-pigeon://loft")
    assert main(["status", "--url", "memory://"]) == 0
    assert main(["status"]) == 1
    assert "unknown backend URL 'carrier-pigeon://loft'" in capsys.readouterr().err


def test_the_status_command_runs_as_a_program() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENTDIFF_COORDINATION_BACKEND": "memory://"}
    done = subprocess.run([sys.executable, "-m", "agentdiff_coordination", "status", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Status.from_json(json.loads(done.stdout)) == Status("memory://")


# -- dead letters ------------------------------------------------------------------------


@pytest.fixture
def failing() -> dict[str, bool]:
    """A handler of 'order_placed' that fails until ``state["fixed"]``; two dead letters."""
    ac.configure(handler_retries=0)
    state = {"fixed": False, "handled": 0}

    @ac.when("order_placed")
    def ship(data: dict[str, int]) -> None:
        if not state["fixed"]:
            raise ValueError(f"no address for order {data['id']}")
        state["handled"] += 1

    ac.emit("order_placed", {"id": 1})
    ac.emit("order_placed", {"id": 2})
    assert ac.drain(5)
    return state


def test_dead_letters_lists_each_failed_event_with_its_error(failing: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dead-letters"]) == 0
    out = capsys.readouterr().out
    assert "2 dead letter(s) on memory://" in out
    assert "ValueError: no address for order 1" in out and "ValueError: no address for order 2" in out


def test_dead_letters_json(failing: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dead-letters", "--json"]) == 0
    letters = json.loads(capsys.readouterr().out)
    assert [(d["event"], d["data"], d["error"]) for d in letters] == [
        ("order_placed", {"id": 1}, "ValueError: no address for order 1"),
        ("order_placed", {"id": 2}, "ValueError: no address for order 2"),
    ]
    assert letters[0]["handler"].endswith("ship:order_placed") and letters[0]["attempts"] == 1


def test_replay_hands_them_to_the_handler_again(failing: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    failing["fixed"] = True
    assert main(["dead-letters", "--replay", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"replayed": 2}
    assert ac.drain(5)
    assert failing["handled"] == 2 and ac.dead_letters() == []


def test_replay_refuses_when_the_handler_is_gone(failing: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    for sub in list(ac.core.runtime.RUNTIME.bus.subscriptions()):
        ac.unsubscribe(sub)
    assert main(["dead-letters", "--replay"]) == 1
    assert "no handler is subscribed for" in capsys.readouterr().err
    assert len(ac.dead_letters()) == 2  # nothing lost


def test_purge_drops_them(failing: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dead-letters", "--purge"]) == 0
    assert "purged 2 dead letter(s)" in capsys.readouterr().out
    assert ac.dead_letters() == []


def test_replay_and_purge_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dead-letters", "--replay", "--purge"])
    assert "not allowed with" in capsys.readouterr().err


# -- Redis: holders in other processes --------------------------------------------------


HOLDER = textwrap.dedent(
    """
    import sys, time
    import agentdiff_coordination as ac
    ac.configure(sys.argv[1])

    @ac.coordinate("researcher", lock_name="openai_api")
    def research():
        print("holding", flush=True)
        time.sleep(60)

    research()
    """
)


@pytest.mark.redis
def test_status_on_redis_shows_a_holder_in_another_process(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from agentdiff_coordination.core.backends.redis import RedisBackend

    if not hasattr(RedisBackend, "snapshot"):
        pytest.skip("RedisBackend.snapshot() is not there yet (the Redis side of status())")
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix=cli-{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert main(["status", "--url", url, "--json"]) == 0
        (lock,) = Status.from_json(json.loads(capsys.readouterr().out)).locks
        assert lock.name == "openai_api" and lock.holder is not None
        assert lock.holder.pid == holder.pid and lock.holder.step == "researcher"
        assert lock.lease_left is not None and lock.lease_left > 0
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.redis
def test_dead_letters_on_redis_lists_replays_and_purges(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from agentdiff_coordination.core.backends.redis import RedisBackend

    if not all(hasattr(RedisBackend, m) for m in ("dead_letters", "replay_dead_letters", "purge_dead_letters")):
        pytest.skip("RedisBackend.dead_letters/replay_dead_letters/purge_dead_letters are not there yet")
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix=dl-{os.getpid()}"
    ac.configure(url, handler_retries=0)
    state = {"fixed": False}

    @ac.when("order_placed")
    def ship(data: dict[str, int]) -> None:
        if not state["fixed"]:
            raise ValueError("no address")

    ac.emit("order_placed", {"id": 1})
    assert ac.drain(10)
    assert main(["dead-letters", "--url", url, "--json"]) == 0
    (letter,) = json.loads(capsys.readouterr().out)
    assert letter["event"] == "order_placed" and "no address" in letter["error"]
    state["fixed"] = True
    assert main(["dead-letters", "--url", url, "--replay", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"replayed": 1}
    assert ac.drain(10)
    assert main(["dead-letters", "--url", url, "--purge", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"purged": 0}
