"""A stand-in LLM provider on loopback, for tests and examples: ``StandInProvider``.

A real HTTP server (stdlib ``ThreadingHTTPServer`` on a thread, a free port on
127.0.0.1) that speaks enough of OpenAI's and Anthropic's APIs for their SDKs, pointed
at it with ``base_url``, to work unchanged::

    with StandInProvider(rpm=60, tpm=6000, minute=2.0) as provider:
        client = OpenAI(api_key="test", base_url=provider.openai_url)
        client.chat.completions.create(model="m", messages=[...], max_tokens=20)
        print(provider.stats())

Endpoints: ``POST /v1/chat/completions`` (with ``stream: true`` as server-sent events,
and a last chunk with the usage when ``stream_options.include_usage``), ``POST
/v1/responses`` (streamed as ``response.*`` events, usage in ``response.completed``),
``POST /v1/embeddings`` and Anthropic's ``POST /v1/messages`` (streamed as
``message_start`` ... ``message_stop``, usage in ``message_start`` and ``message_delta``).

Limits: ``rpm`` requests, ``tpm`` tokens (input plus output), ``input_tpm`` and
``output_tpm`` per ``minute`` seconds (60 by default; 2.0 makes tests fast). Each is a
**sliding window**: a request is accepted when, counting it, no limit is exceeded in the
last ``minute`` seconds; otherwise it gets a 429 with ``retry-after`` (and
``retry-after-ms``), the time until it would fit, and is not counted. A request's
tokens are its input (text length / 4, rounded up) and its output (``max_tokens`` or
its twins, at most ``reply_tokens``), counted when it arrives. Every answer carries the
rate-limit headers: OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
(resets as durations like ``1.5s`` or ``6m0s``) on OpenAI's paths, Anthropic's
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
(resets as RFC 3339 times) on ``/v1/messages``; a reset is the time until the window is
back to its full limit (until the newest request it counts has left it).

``stats()`` counts what the server saw: accepted requests and their tokens, 429s, and
the most requests and tokens accepted in any window of ``minute`` seconds.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from . import stand_in_wire as wire
from .stand_in_wire import openai_duration, rfc3339

__all__ = ["ProviderStats", "StandInProvider", "openai_duration", "rfc3339"]

_TEXT_KEYS = ("messages", "input", "system", "instructions", "prompt")
_MAX_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass(frozen=True)
class ProviderStats:
    """What the stand-in saw: accepted requests and tokens, 429s, busiest windows."""

    requests: int
    input_tokens: int
    output_tokens: int
    rejected: int
    peak_requests: int
    peak_tokens: int
    peak_input_tokens: int
    peak_output_tokens: int
    first: float | None  # monotonic time of the first accepted request
    last: float | None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def text_tokens(body: dict[str, Any]) -> int:
    """Input tokens of a request body as the stand-in counts them: its text length / 4."""
    return math.ceil(sum(_text_length(body.get(key)) for key in _TEXT_KEYS) / 4)


def _text_length(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_length(v) for k, v in value.items() if k not in ("role", "type"))
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return 0


class _Window:
    """One sliding-window limit: (arrival, amount) pairs within the last ``period``."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.entries: deque[tuple[float, int]] = deque()
        self.used = 0

    def expire(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - self.period:
            self.used -= self.entries.popleft()[1]

    def wait_for(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` more fits (0: it fits now; inf: never)."""
        if amount > self.limit:
            return math.inf
        excess = self.used + amount - self.limit
        for at, cost in self.entries:
            if excess <= 0:
                break
            excess -= cost
            if excess <= 0:
                return at + self.period - now
        return 0.0

    def add(self, amount: int, now: float) -> None:
        if amount:
            self.entries.append((now, amount))
            self.used += amount

    def reset(self, now: float) -> float:
        """Seconds until everything counted now has left the window."""
        return self.entries[-1][0] + self.period - now if self.entries else 0.0


class StandInProvider:
    """A loopback HTTP server speaking OpenAI's and Anthropic's APIs under its own limits.

    Use it as a context manager (it starts on enter and stops on exit), or call
    ``start()`` and ``stop()``. ``latency`` seconds pass before each answer (and between
    streamed events, a tenth of it); replies are ``reply_tokens`` long unless the
    request's ``max_tokens`` (or twin) is smaller.
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        input_tpm: int | None = None,
        output_tpm: int | None = None,
        minute: float = 60.0,
        latency: float = 0.0,
        reply_tokens: int = 16,
        port: int = 0,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm), ("input_tpm", input_tpm), ("output_tpm", output_tpm)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} of StandInProvider must be a whole number >= 1 or None, not {value!r}")
        if not minute > 0:
            raise ValueError(f"minute of StandInProvider must be > 0 seconds, not {minute!r}")
        if latency < 0:
            raise ValueError(f"latency of StandInProvider must be >= 0 seconds, not {latency!r}")
        self.minute = float(minute)
        self.latency = float(latency)
        self.reply_tokens = reply_tokens
        self._windows = {
            name: _Window(value, self.minute)
            for name, value in (("requests", rpm), ("tokens", tpm), ("input_tokens", input_tpm), ("output_tokens", output_tpm))
            if value is not None
        }
        self._lock = threading.Lock()
        self._log: list[tuple[float, int, int]] = []  # accepted: (arrival, input, output)
        self._rejected = 0
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> StandInProvider:
        """Listen on 127.0.0.1 (a free port unless one was given) and serve on a thread."""
        if self._server is not None:
            return self
        handler = type("_Handler", (_Handler,), {"provider": self})
        self._server = _Server(("127.0.0.1", self._port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> StandInProvider:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stand-in provider is not started: use it as a context manager or call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: Anthropic's ``base_url``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: OpenAI's ``base_url``."""
        return self.url + "/v1"

    # -- accounting ----------------------------------------------------------------------

    def admit(self, input_tokens: int, output_tokens: int) -> tuple[float, dict[str, tuple[int, int, float]]]:
        """Count a request if it fits: (0 or the seconds to wait, each limit's (limit, remaining, reset))."""
        asks = {"requests": 1, "tokens": input_tokens + output_tokens, "input_tokens": input_tokens, "output_tokens": output_tokens}
        with self._lock:
            now = time.monotonic()
            for window in self._windows.values():
                window.expire(now)
            wait = max((w.wait_for(asks[n], now) for n, w in self._windows.items()), default=0.0)
            if wait > 0:
                self._rejected += 1
            else:
                for name, window in self._windows.items():
                    window.add(asks[name], now)
                self._log.append((now, input_tokens, output_tokens))
            state = {n: (w.limit, max(0, w.limit - w.used), w.reset(now)) for n, w in self._windows.items()}
        return wait, state

    def stats(self) -> ProviderStats:
        """A snapshot of what the server saw so far."""
        with self._lock:
            log, rejected = list(self._log), self._rejected
        peaks = [0, 0, 0, 0]
        lo = 0
        sums = [0, 0, 0, 0]
        for hi, (at, i, o) in enumerate(log):
            for k, v in enumerate((1, i + o, i, o)):
                sums[k] += v
            while log[lo][0] <= at - self.minute:
                for k, v in enumerate((1, log[lo][1] + log[lo][2], log[lo][1], log[lo][2])):
                    sums[k] -= v
                lo += 1
            peaks = [max(p, s) for p, s in zip(peaks, sums)]
        return ProviderStats(
            requests=len(log),
            input_tokens=sum(i for _, i, _ in log),
            output_tokens=sum(o for _, _, o in log),
            rejected=rejected,
            peak_requests=peaks[0],
            peak_tokens=peaks[1],
            peak_input_tokens=peaks[2],
            peak_output_tokens=peaks[3],
            first=log[0][0] if log else None,
            last=log[-1][0] if log else None,
        )

    def accepted_between(self, start: float, end: float) -> tuple[int, int]:
        """Requests and tokens accepted with ``start <= arrival < end`` (monotonic times)."""
        with self._lock:
            inside = [(i, o) for at, i, o in self._log if start <= at < end]
        return len(inside), sum(i + o for i, o in inside)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a fleet opens many connections at once: the default backlog of 5 resets some

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up is no error worth printing; anything else is."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    provider: StandInProvider
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add about 40 ms to every answer on a kept-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self._json(404, {"error": {"message": f"no route GET {self.path}", "type": "not_found_error"}}, {})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            return self._json(400, {"error": {"message": f"invalid JSON body: {exc}", "type": "invalid_request_error"}}, {})
        path = self.path.split("?", 1)[0].rstrip("/")
        kinds = {"/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/embeddings": "embeddings", "/v1/messages": "messages"}
        kind = kinds.get(path)
        if kind is None:
            return self._json(404, {"error": {"message": f"no route {path}", "type": "not_found_error"}}, {})
        provider = self.provider
        input_tokens = text_tokens(body)
        asked = next((body[k] for k in _MAX_KEYS if isinstance(body.get(k), int)), None)
        output_tokens = 0 if kind == "embeddings" else min(provider.reply_tokens, asked if asked is not None else provider.reply_tokens)
        wait, state = provider.admit(input_tokens, output_tokens)
        headers = wire.limit_headers(kind, state)
        if wait > 0:
            wait = min(wait, 3600.0) if math.isfinite(wait) else 3600.0
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            if kind != "messages":
                headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            message = "rate limit exceeded: retry after the time in retry-after"
            error = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
            if kind != "messages":
                error = {"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}}
            return self._json(429, error, headers)
        if provider.latency:
            time.sleep(provider.latency)
        model = str(body.get("model", "stand-in"))
        if body.get("stream"):
            return self._stream(wire.stream_events(kind, model, body, input_tokens, output_tokens, provider.latency / 10), headers)
        return self._json(200, wire.answer(kind, model, body, input_tokens, output_tokens), headers)

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: Iterator[tuple[str | None, str, float]], headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        for event, data, pause in events:
            if pause:
                time.sleep(pause)
            text = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
            chunk = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main(argv: list[str] | None = None) -> None:
    """``python -m agentdiff_coordination.stand_in_provider [--rpm N] [--tpm N] ...``: serve
    until interrupted; prints the base URL on the first line."""
    import argparse

    parser = argparse.ArgumentParser(description="a stand-in OpenAI/Anthropic provider on loopback")
    for name in ("rpm", "tpm", "input-tpm", "output-tpm"):
        parser.add_argument(f"--{name}", type=int, default=None)
    parser.add_argument("--minute", type=float, default=60.0, help="seconds in the provider's minute")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    provider = StandInProvider(rpm=args.rpm, tpm=args.tpm, input_tpm=args.input_tpm, output_tpm=args.output_tpm,
                               minute=args.minute, latency=args.latency, port=args.port)
    with provider:
        print(provider.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
