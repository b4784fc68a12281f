"""Helpers for the Redis tests: private redis-server processes and worker processes.

A private server runs on a free loopback port in a temporary directory, without
persistence, for the tests that kill, stop or restart it. Worker processes run
``python -m tests.redis.workers ROLE JSON`` and talk back in JSON lines on stdout;
every wait on them is bounded, so a hang fails with a message instead of hanging.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
#: how long a test waits for something that must happen before calling it a hang
HANG = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: run the tests through scripts/test.sh")
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    return found


class RedisServer:
    """A private redis-server on loopback; ``restart()`` keeps its port (and loses its data)."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.binary = redis_server_binary()
        self.port = free_port()
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + HANG
        while True:
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.5, password=self._password())
                client.ping()
                client.close()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"redis-server on port {self.port} did not start within {HANG}s") from None
                time.sleep(0.02)

    def _password(self) -> str | None:
        if "--requirepass" in self.extra:
            return self.extra[self.extra.index("--requirepass") + 1]
        return None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(HANG)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(HANG)

    def restart(self) -> None:
        self.stop()
        self.start()


class Worker:
    """A worker process (``tests/redis/workers.py``) and its JSON lines."""

    def __init__(self, role: str, **args: Any) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("AGENTDIFF_COORDINATION_BACKEND", None)
        self.role = role
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.redis.workers", role, json.dumps(args)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read(self, timeout: float = HANG) -> dict[str, Any]:
        """The next JSON line the worker printed; fails after ``timeout`` or if it died."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"worker {self.role} said nothing within {timeout}s{self._stderr()}")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"worker {self.role} exited ({self.proc.wait()}){self._stderr()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return dict(json.loads(line))

    def expect(self, what: str, timeout: float = HANG) -> dict[str, Any]:
        """Read lines until one with ``"event": what``."""
        while True:
            msg = self.read(timeout)
            if msg.get("event") == what:
                return msg

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = HANG) -> int:
        """Wait for the worker to exit; its exit code (fails on a hang)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker {self.role} did not exit within {timeout}s{self._stderr()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(HANG)

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        err = self.proc.stderr.read().decode(errors="replace")
        return f"; its stderr:\n{err[-3000:]}" if err else ""

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
