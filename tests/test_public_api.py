"""The public surface: exactly these names, all importable, and an import with no side effects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import agentdiff_coordination

PUBLIC_API = [
    "BackendError",
    "BackendUnavailableError",
    "CoordinationError",
    "CoordinationTimeoutError",
    "DeadLetter",
    "Event",
    "LeaseLostError",
    "LockNotHeldError",
    "configure",
    "configure_broker",
    "coordinate",
    "current_event",
    "dead_letters",
    "drain",
    "emit",
    "limit",
    "lock",
    "record",
    "status",
    "unsubscribe",
    "wait_for",
    "when",
]

#: the names DESIGN.md fixes; they may never leave the public API
FIXED = {"coordinate", "when", "emit", "lock", "wait_for", "drain", "configure", "configure_broker",
         "CoordinationError", "CoordinationTimeoutError"}


def test_all_is_pinned() -> None:
    assert sorted(agentdiff_coordination.__all__) == sorted(PUBLIC_API)
    assert len(set(agentdiff_coordination.__all__)) == len(agentdiff_coordination.__all__)


def test_the_fixed_names_are_public() -> None:
    assert FIXED <= set(agentdiff_coordination.__all__)


def test_every_public_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from agentdiff_coordination import *", namespace)
    for name in PUBLIC_API:
        assert namespace.get(name) is getattr(agentdiff_coordination, name)
        assert namespace[name] is not None


def test_the_original_products_alias_configures_like_configure() -> None:
    from agentdiff_coordination.core.backends.memory import MemoryBackend
    from agentdiff_coordination.core.runtime import get_backend, settings

    backend = MemoryBackend()
    agentdiff_coordination.configure_broker(backend, handler_retries=4)
    assert get_backend() is backend and settings().handler_retries == 4


def test_the_error_types_are_exceptions() -> None:
    for name in PUBLIC_API:
        if name.endswith("Error"):
            error = getattr(agentdiff_coordination, name)
            assert issubclass(error, agentdiff_coordination.CoordinationError)


IMPORT_PROBE = textwrap.dedent(
    """
    import json, os, sys, threading

    def fds():
        out = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                out[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass
        return out

    threads_before = threading.active_count()
    fds_before = fds()
    modules_before = set(sys.modules)
    import agentdiff_coordination
    fds_after = fds()
    print(json.dumps({
        "new_threads": threading.active_count() - threads_before,
        "new_fds": sorted(v for k, v in fds_after.items() if fds_before.get(k) != v),
        "new_modules": sorted(set(sys.modules) - modules_before),
    }))
    """
)


def _probe_import() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDIFF_")}
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_importing_starts_no_thread_and_opens_no_file_or_socket() -> None:
    probe = _probe_import()
    assert probe["new_threads"] == 0
    # the listing itself opens /proc/self/fd for a moment: ignore that one
    assert [fd for fd in probe["new_fds"] if "/proc/" not in fd] == []


def test_importing_loads_no_framework_and_no_redis_client() -> None:
    probe = _probe_import()
    heavy = {"langgraph", "langchain_core", "crewai", "autogen_agentchat", "autogen_core", "autogen_ext", "redis"}
    loaded = {name.split(".")[0] for name in probe["new_modules"]}
    assert loaded & heavy == set()
