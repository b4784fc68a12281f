"""Choosing and reaching the Redis backend: URL, options, prefixes, AUTH, TLS, errors."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from agentdiff_coordination import BackendError, BackendUnavailableError, configure, emit, lock
from agentdiff_coordination.core.backends.redis import RedisBackend
from agentdiff_coordination.core.runtime import get_backend

from .support import HANG, RedisServer, free_port, redis_server_binary

pytestmark = pytest.mark.redis


def test_a_redis_url_in_the_environment_selects_the_redis_backend(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTDIFF_COORDINATION_BACKEND", redis_url + "?prefix=from-env")
    backend = get_backend()
    assert isinstance(backend, RedisBackend) and backend.shared
    assert backend.prefix == "from-env"


def test_url_options_are_ours_and_the_rest_go_to_redis_py(redis_url: str) -> None:
    backend = RedisBackend(
        redis_url + "?prefix=app1&lease=5&max_deliveries=3&consumer_ttl=2&socket_keepalive=true"
    )
    try:
        assert (backend.prefix, backend.lease, backend.max_deliveries, backend.consumer_ttl) == ("app1", 5.0, 3, 2.0)
        assert backend.key("lock", "db") == "app1:lock:db"
        assert backend.ctx.pool.connection_kwargs["socket_keepalive"] is True
    finally:
        backend.close()
    with pytest.raises(ValueError, match="lease"):
        RedisBackend(redis_url + "?lease=never")
    with pytest.raises(ValueError, match="redis://"):
        RedisBackend("localhost:6379")


def test_the_prefix_and_lease_settings_apply_when_the_url_gives_none(redis_url: str) -> None:
    configure(redis_url, key_prefix="from-settings", lease=7.5)
    backend = get_backend()
    assert isinstance(backend, RedisBackend)
    assert backend.prefix == "from-settings" and backend.lease == 7.5


def test_apps_with_different_prefixes_share_one_redis_without_meeting(redis_url: str) -> None:
    a = RedisBackend(redis_url, key_prefix=f"app-a-{time.monotonic_ns()}")
    b = RedisBackend(redis_url, key_prefix=f"app-b-{time.monotonic_ns()}")
    try:
        ga = a.acquire_lock("db", None, timeout=0)
        gb = b.acquire_lock("db", None, timeout=0)  # the same name, another app: free
        a.release_lock(ga)
        b.release_lock(gb)
    finally:
        a.close()
        b.close()


def test_the_password_goes_in_the_url_and_a_wrong_one_is_a_clear_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auth", "--requirepass", "s3cret").start()
    try:
        configure(f"redis://:wrong@127.0.0.1:{server.port}/0", key_prefix="auth")
        with pytest.raises(BackendError) as info:
            with lock("x"):
                pass
        assert "credentials" in str(info.value) and "wrong" not in str(info.value)
        configure(f"redis://:s3cret@127.0.0.1:{server.port}/0", key_prefix="auth")
        with lock("x") as held:
            assert held.fencing
    finally:
        server.stop()


def _certificates(d: Path) -> tuple[Path, Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def test_tls_through_a_rediss_url(tmp_path: Path) -> None:
    binary = redis_server_binary()
    try:
        ca, cert, key = _certificates(tmp_path / "tls")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is not available to make test certificates")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
         "--tls-auth-clients", "no", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        deadline = time.monotonic() + HANG
        while True:
            if proc.poll() is not None:
                pytest.skip(f"this redis-server has no TLS: {proc.stdout.read().decode()[-300:] if proc.stdout else ''}")
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "the TLS redis-server never answered"
                time.sleep(0.05)
        configure(url, key_prefix="tls")
        with lock("secure") as held:
            assert held.fencing
        emit("over_tls", {"ok": True})
    finally:
        configure("memory://")
        proc.terminate()
        proc.wait(HANG)


def test_an_unreachable_redis_is_a_backend_unavailable_error_naming_it() -> None:
    port = free_port()  # nothing listens there
    configure(f"redis://:hidden@127.0.0.1:{port}/0", key_prefix="nowhere")
    with pytest.raises(BackendUnavailableError) as info:
        with lock("x"):
            pass
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "hidden" not in message and "lock 'x'" in message
    assert isinstance(info.value, ConnectionError)
