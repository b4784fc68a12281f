"""The plugin system: built-ins and third-party adapters found through entry points.

The third-party package is ``tests/plugins/agentdiff_jobs``; each test installs it the
way pip would, as a ``*.dist-info`` folder with an ``entry_points.txt`` on ``sys.path``,
so ``importlib.metadata`` finds it exactly as it finds a real distribution.
"""

from __future__ import annotations

import importlib.metadata
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentdiff_coordination import coordinate, current_event, drain, when
from agentdiff_coordination.core import plugins as registry
from agentdiff_coordination.core.runtime import get_backend

pytestmark = pytest.mark.timeout(60)

PLUGINS_DIR = Path(__file__).resolve().parent.parent / "plugins"

#: entry points the tests can install, by name (order matters: pluggy asks the last first)
ENTRIES = {
    "jobs": "agentdiff_jobs.adapter",
    "broken_import": "agentdiff_jobs.broken_import",
    "missing": "agentdiff_jobs.no_such_module",
    "bad_spec": "agentdiff_jobs.bad_spec",
    "broken_hooks": "agentdiff_jobs.broken_hooks",
    "greedy": "agentdiff_jobs.greedy",
}


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test builds the plugin manager anew and leaves no plugin module behind."""
    monkeypatch.delenv(registry.ENV_DISABLE, raising=False)
    registry.reset_plugins()
    yield
    registry.reset_plugins()
    for name in [m for m in sys.modules if m == "agentdiff_jobs" or m.startswith("agentdiff_jobs.")]:
        del sys.modules[name]


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Install the ``agentdiff-jobs`` distribution with the named entry points."""
    dist = tmp_path / "agentdiff_jobs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: agentdiff-jobs\nVersion: 1.0\n")
    lines = ["[agentdiff_coordination]"] + [f"{name} = {ENTRIES[name]}" for name in ENTRIES if name in names]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(PLUGINS_DIR))
    monkeypatch.syspath_prepend(str(tmp_path))


#: plugins this package ships through its own entry points (once installed); tested in their own files
SHIPPED_ENTRY_POINTS = ("openai_agents",)


def plugin_names() -> list[str]:
    """The registered plugins, in order, less the package's own entry-point plugins."""
    return [
        name for name, plugin in registry.get_plugin_manager().list_name_plugin()
        if plugin is not None and name not in SHIPPED_ENTRY_POINTS
    ]


def new_job(name: str, work: Any) -> Any:
    from agentdiff_jobs import Job

    return Job(name, work)


# -- built-ins ----------------------------------------------------------------------------


def test_builtin_adapters_register_like_plugins() -> None:
    assert plugin_names() == ["langgraph", "crewai", "autogen"]


def test_an_object_nobody_owns_that_is_not_callable_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=r"cannot wrap int 42: it is not callable and no installed adapter"):
        coordinate("answer")(42)


# -- a third-party adapter, end to end ----------------------------------------------------------


def test_a_third_party_adapter_coordinates_its_objects_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    install(tmp_path, monkeypatch, "jobs")
    workers = 6
    inside, peak, contended = [0], [0], [0]
    mutex = threading.Lock()
    started = threading.Semaphore(0)

    @when("nightly_started")
    def count_started(data: Any) -> None:
        started.release()

    complete: list[Any] = []
    when("nightly_complete")(lambda data: complete.append((current_event().sender, data["result"])))

    def work(i: int) -> int:
        with mutex:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            first = inside[0] == 1 and contended[0] == 0
        if first and all(started.acquire(timeout=10) for _ in range(workers)):
            contended[0] += 1  # every run had started (and the others queued) while this one held the lock
        with mutex:
            inside[0] -= 1
        return i * i

    job = coordinate("nightly", lock_name="warehouse")(new_job("nightly", work))
    assert type(job).__name__ == "CoordinatedJob" and job.name == "nightly"
    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(job.run(i))) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [i * i for i in range(workers)]
    assert peak[0] == 1
    assert contended[0] == 1
    drain()
    assert sorted(complete) == [("nightly", i * i) for i in range(workers)]
    assert get_backend().lock_holder("warehouse") is None


def test_a_plugin_can_declare_its_control_flow_exceptions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, "jobs")
    from agentdiff_jobs import Handoff

    seen: list[str] = []
    when("hand_*")(lambda data: seen.append(current_event().name))

    def hand_over() -> None:
        raise Handoff("to the night shift")

    job = coordinate("hand_job")(new_job("hand_job", hand_over))
    plain = coordinate("hand_fn")(hand_over)  # a plain function: the core asks the plugins too
    for step in (job.run, plain):
        with pytest.raises(Handoff):
            step()

    drain()
    assert sorted(seen) == ["hand_fn_interrupted", "hand_fn_started", "hand_job_interrupted", "hand_job_started"]


def test_entry_points_load_lazily_and_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, "jobs")
    real = importlib.metadata.entry_points
    calls: list[Any] = []

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    job = new_job("lazy", lambda: "done")
    assert "agentdiff_jobs.adapter" not in sys.modules

    for _ in range(3):
        assert coordinate("lazy")(job).run() == "done"
    coordinate("plain")(lambda: None)()

    assert calls == [{"group": "agentdiff_coordination"}]
    assert "agentdiff_jobs.adapter" in sys.modules


# -- broken plugins ---------------------------------------------------------------------------


def test_plugins_that_fail_to_load_are_warned_about_and_the_others_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "broken_import", "missing", "bad_spec", "jobs")

    with pytest.warns(RuntimeWarning) as caught:
        names = plugin_names()

    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert "'bad_spec'" in messages[0] and "PluginValidationError" in messages[0]
    assert "'broken_import'" in messages[1] and "broken on purpose" in messages[1]
    assert "'missing'" in messages[2] and "ModuleNotFoundError" in messages[2]
    assert names == ["langgraph", "crewai", "autogen", "jobs"]
    assert coordinate("still")(new_job("still", lambda: 7)).run() == 7


def test_a_plugin_whose_hooks_raise_is_warned_about_once_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "jobs", "broken_hooks")
    from agentdiff_jobs import Handoff

    seen: list[str] = []
    when("shaky_*")(lambda data: seen.append(current_event().name))

    with pytest.warns(RuntimeWarning, match=r"'broken_hooks' raised in coordination_owns\(\)"):
        job = coordinate("shaky")(new_job("shaky", lambda: 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once: no second warning
        assert coordinate("shaky")(new_job("shaky", lambda: 2)).run() == 2
        assert coordinate("shaky_fn")(lambda: 3)() == 3
    assert job.run() == 1

    def hand_over() -> None:
        raise Handoff("x")

    passthrough_warning = pytest.warns(RuntimeWarning, match=r"'broken_hooks' raised in coordination_passthrough\(\)")
    with passthrough_warning, pytest.raises(Handoff):
        coordinate("shaky_handoff")(hand_over)()
    drain()
    assert "shaky_handoff_interrupted" in seen  # the working plugin still answered


def test_only_the_plugin_that_owns_an_object_is_asked_to_wrap_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "jobs", "greedy")
    assert plugin_names()[-2:] == ["jobs", "greedy"]  # greedy is asked first

    assert type(coordinate("owned")(new_job("owned", lambda: 1))).__name__ == "CoordinatedJob"
    assert coordinate("plain")(lambda: 2)() == 2


# -- disabling plugins ----------------------------------------------------------------------------


def test_the_environment_variable_disables_every_third_party_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "jobs", "broken_import")
    monkeypatch.setenv(registry.ENV_DISABLE, "1")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is not even loaded
        assert plugin_names() == ["langgraph", "crewai", "autogen"]
    with pytest.raises(TypeError, match="no installed adapter recognises it"):
        coordinate("orphan")(new_job("orphan", lambda: 1))
    assert "agentdiff_jobs.broken_import" not in sys.modules


def test_the_environment_variable_disables_plugins_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, "jobs", "broken_import")
    monkeypatch.setenv(registry.ENV_DISABLE, "broken_import, crewai")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plugin_names() == ["langgraph", "autogen", "jobs"]
    assert coordinate("named")(new_job("named", lambda: 5)).run() == 5
