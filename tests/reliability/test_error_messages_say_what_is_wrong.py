"""Issue 10, item 10: error messages say what is wrong, once, plainly.

No message has doubled periods ("..") from joining two sentences; a server that wants a
password says that AUTH is required (not "Protocol error: unauthenticated multibulk
length"); a TLS certificate that fails verification is a configuration error raised at
once, not retried as "unreachable".
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentdiff_coordination import (
    BackendUnavailableError,
    CoordinationError,
    configure,
    emit,
    limit,
    lock,
    when,
)

from ..redis.support import HANG, RedisServer, free_port, redis_server_binary
from .support import with_prefix

DOUBLED_PERIOD = re.compile(r"(?<!\.)\.\.(?!\.)")


def error_of(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the message is what is tested
        return exc
    raise AssertionError(f"{call} raised nothing")


def take(name: str, timeout: float) -> None:
    with lock(name, timeout=timeout):
        pass


def test_bad_input_messages_have_no_doubled_periods() -> None:
    errors = [
        error_of(lambda: lock("")),
        error_of(lambda: lock("x", timeout=-1)),
        error_of(lambda: emit("")),
        error_of(lambda: limit("x", requests="ten/min")),
        error_of(lambda: configure("nope://x")),
        error_of(lambda: configure(handler_retries=-1)),
        error_of(lambda: when("x")(42)),  # type: ignore[arg-type]
    ]
    doubled = [str(e) for e in errors if DOUBLED_PERIOD.search(str(e))]
    assert not doubled, f"messages with '..': {doubled}"


@pytest.mark.redis
def test_an_unreachable_server_message_has_no_doubled_periods(prefix: str) -> None:
    configure(with_prefix(f"redis://127.0.0.1:{free_port()}/0", prefix))
    error = error_of(lambda: take("nowhere", timeout=2))
    assert isinstance(error, BackendUnavailableError), repr(error)
    assert not DOUBLED_PERIOD.search(str(error)), f"doubled period in: {error}"


@pytest.mark.redis
def test_a_server_that_wants_a_password_says_auth_is_required(
    make_private_redis: Callable[..., RedisServer], prefix: str
) -> None:
    server = make_private_redis("--requirepass", "s3cret")
    configure(with_prefix(server.url, prefix))  # no password in the URL
    error = error_of(lambda: take("guarded", timeout=3))
    message = str(error)
    assert isinstance(error, CoordinationError), repr(error)
    assert "multibulk" not in message, f"the server's protocol detail instead of the cause: {message}"
    assert re.search(r"\bAUTH\b|password", message), f"the error should say a password (AUTH) is required: {message}"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server speaking only TLS, with a self-signed certificate; yields its port."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a certificate for the TLS server")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-auth-clients", "no", "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + HANG
        while True:
            if proc.poll() is not None:
                pytest.skip("this redis-server was built without TLS")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the TLS redis-server did not start"
                time.sleep(0.02)
        yield port
    finally:
        configure("memory://")
        proc.terminate()
        proc.wait(HANG)


@pytest.mark.redis
def test_a_certificate_that_fails_verification_is_a_configuration_error_at_once(tls_redis: int, prefix: str) -> None:
    configure(with_prefix(f"rediss://127.0.0.1:{tls_redis}/0", prefix))  # self-signed: verification fails
    started = time.monotonic()
    error = error_of(lambda: take("tls", timeout=20))
    took = time.monotonic() - started
    assert not isinstance(error, BackendUnavailableError), (
        f"a certificate that fails verification was reported as unreachable: {error!r}"
    )
    assert re.search(r"certificate|verif", str(error), re.I), f"the error should name the certificate: {error}"
    assert took < 5, f"a configuration error should raise at once, not after {took:.1f}s of retries"
