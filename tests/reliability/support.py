"""Helpers of the reliability tests: worker processes and Python snippets in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..redis.support import ROOT, Worker


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in [k for k in env if k.startswith("AGENTDIFF_COORDINATION_")]:
        del env[key]
    env.update(extra)
    return env


class RelWorker(Worker):
    """A worker of ``tests/reliability/workers.py`` (reads and waits like the Redis tests' ``Worker``)."""

    def __init__(self, role: str, **args: Any) -> None:
        self.role = role
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.workers", role, json.dumps(args)],
            cwd=ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._buffer = b""


@dataclass
class Ran:
    returncode: int | None  # None: killed at the hard cap
    stdout: str
    stderr: str
    seconds: float


def run_python(code: str, *, cap: float, **env: str) -> Ran:
    """Run ``code`` in a fresh interpreter; killed (returncode None) after ``cap`` seconds."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=child_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=cap)
        code_ = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code_ = None
    return Ran(code_, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - start)


def with_prefix(url: str, prefix: str, **options: Any) -> str:
    """``url`` with our options in its query string: ``with_prefix(u, "p", lease=2)``."""
    query = "&".join(f"{k}={v}" for k, v in {"prefix": prefix, **options}.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


def figure(name: str, value: object) -> None:
    """Record a measured figure (for docs/reliability.md) when ``AGENTDIFF_FIGURES`` names a file."""
    import json
    import os

    path = os.environ.get("AGENTDIFF_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": value}) + "\n")
