"""Headless Chromium (the Debian package ``chromium``) without network: dump a page's DOM
after its scripts ran, collect what it logged to the console, take screenshots."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_CONSOLE = re.compile(r":CONSOLE(?::\d+)?\] (.*)")


def chromium_or_skip() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing under CI: scripts/test.sh installs it (apt-get install chromium)")
        pytest.skip("no chromium: apt-get install chromium (scripts/test.sh does)")
    return found


def _run(chromium: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
                "--enable-logging=stderr", "--v=0", *extra, url,
            ],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )


def dump_dom(chromium: str, page: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and every console message it logged."""
    done = _run(chromium, page.resolve().as_uri(), "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, _CONSOLE.findall(done.stderr)


def screenshot(chromium: str, page: Path, png: Path, size: str = "1400,800") -> None:
    done = _run(chromium, page.resolve().as_uri(), f"--screenshot={png.resolve()}", f"--window-size={size}", "--hide-scrollbars")
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
