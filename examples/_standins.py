"""Offline stand-ins for the external services the original README's examples call.

``openai``, ``anthropic``, the customer ``database``/``db`` and the travel and
scraping services answer instantly from canned data after a short simulated
latency, and count how many calls were in flight at once, so an example can show
what its lock did. Nothing here talks to the network.

Only the external clients are replaced; the examples' own code (the decorators,
the calls, the handlers) is the README's.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

__all__ = [
    "anthropic",
    "book_hotel",
    "database",
    "db",
    "openai",
    "scrape_multiple_sources",
    "search_hotels",
]

#: seconds each simulated remote call takes: long enough for calls to overlap without a lock
LATENCY = 0.02


class Meter:
    """Counts calls to one service and the most that were in flight at the same time."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._mutex = threading.Lock()
        self.in_flight = 0
        self.most_at_once = 0
        self.calls = 0

    def __enter__(self) -> Meter:
        with self._mutex:
            self.calls += 1
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            self.in_flight -= 1

    def report(self) -> str:
        return f"{self.service}: {self.calls} call(s), at most {self.most_at_once} at once"


# -- OpenAI -------------------------------------------------------------------------------


@dataclass
class _Message:
    role: str
    content: str


@dataclass
class _Choice:
    index: int
    message: _Message
    finish_reason: str = "stop"


@dataclass
class ChatCompletion:
    """The shape of ``openai``'s chat completion: ``response.choices[0].message.content``."""

    model: str
    choices: list[_Choice]

    def __str__(self) -> str:
        return self.choices[0].message.content


def _answer(prompt: str) -> str:
    topic = prompt.split(":", 1)[-1].strip() or prompt
    return f"Findings on {topic}: adoption is rising, quality gates matter, humans stay in the loop."


class _Completions:
    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def create(self, *, model: str = "gpt-4o", messages: list[dict[str, str]] | None = None, **_: Any) -> ChatCompletion:
        prompt = (messages or [{"content": ""}])[-1]["content"]
        with self._meter:
            time.sleep(LATENCY)
        return ChatCompletion(model, [_Choice(0, _Message("assistant", _answer(prompt)))])


class _OpenAIClient:
    """``openai.OpenAI()``: ``client.chat.completions.create(model=..., messages=...)``."""

    def __init__(self, **_: Any) -> None:
        self.chat = SimpleNamespace(completions=_Completions(openai.meter))


openai = SimpleNamespace(OpenAI=_OpenAIClient, meter=Meter("OpenAI API"))
openai.chat = SimpleNamespace(completions=_Completions(openai.meter))  # module-level calls


# -- Anthropic ----------------------------------------------------------------------------


@dataclass
class _TextBlock:
    text: str
    type: str = "text"


@dataclass
class AnthropicMessage:
    """The shape of ``anthropic``'s message: ``response.content[0].text``."""

    model: str
    content: list[_TextBlock]


class _Messages:
    def create(self, *, model: str, max_tokens: int, messages: list[dict[str, str]], **_: Any) -> AnthropicMessage:
        prompt = messages[-1]["content"]
        with anthropic.meter:
            time.sleep(LATENCY)
        subject = prompt.split(":", 1)[-1].strip()
        text = f"Analysis: the research says '{subject[:60]}' and the evidence supports it."
        return AnthropicMessage(model, [_TextBlock(text[:max_tokens])])


class _AnthropicClient:
    """``anthropic.Anthropic()``: ``client.messages.create(model=..., max_tokens=..., messages=...)``."""

    def __init__(self, **_: Any) -> None:
        self.messages = _Messages()


anthropic = SimpleNamespace(Anthropic=_AnthropicClient, meter=Meter("Anthropic API"))


# -- a customer database ----------------------------------------------------------------------


@dataclass
class CustomerDatabase:
    """A customer table whose writes take a while; it notices writes that overlap on one customer."""

    records: dict[str, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    writes: int = 0
    overlapping: int = 0
    _busy: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def _write(self, customer_id: str, section: str, data: dict[str, Any]) -> dict[str, Any]:
        with self._mutex:
            self.writes += 1
            self._busy[customer_id] += 1
            if self._busy[customer_id] > 1:
                self.overlapping += 1
        try:
            # read, modify, write back later: an overlapping write would be lost
            record = dict(self.records[customer_id])
            time.sleep(LATENCY / 4)
            record.setdefault(section, {}).update(data)
            record["version"] = record.get("version", 0) + 1
            self.records[customer_id] = record
            return record
        finally:
            with self._mutex:
                self._busy[customer_id] -= 1

    def update_customer(self, customer_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return self._write(customer_id, "profile", data)

    def update_preferences(self, customer_id: str, preferences: dict[str, Any]) -> dict[str, Any]:
        return self._write(customer_id, "preferences", preferences)


database = CustomerDatabase()
db = database


# -- travel and scraping services -------------------------------------------------------------------

_HOTELS = [
    {"name": "Casa do Rio", "price": 180, "rating": 4.4},
    {"name": "Hotel Miradouro", "price": 140, "rating": 4.6},
    {"name": "Alfama Suites", "price": 210, "rating": 4.8},
]


def search_hotels(destination: str, dates: tuple[str, str]) -> list[dict[str, Any]]:
    """Hotels with a room in ``destination`` for ``dates``."""
    time.sleep(LATENCY)
    return [dict(h, city=destination, dates=dates) for h in _HOTELS]


def book_hotel(hotel: dict[str, Any]) -> str:
    """Book a room; returns the confirmation code."""
    time.sleep(LATENCY)
    return f"CONF-{abs(hash(hotel['name'])) % 100000:05d}"


def scrape_multiple_sources() -> list[dict[str, Any]]:
    """Customer records from three sources, fetched one after another."""
    rows: list[dict[str, Any]] = []
    for source in ("crm", "support_tickets", "web_analytics"):
        time.sleep(LATENCY)
        rows.extend({"source": source, "customer": f"c{i}", "spend": 10 * i} for i in range(1, 5))
    return rows
