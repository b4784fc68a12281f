"""Reading a timeline page back: its elements with their classes and data attributes."""

from __future__ import annotations

from html.parser import HTMLParser

_VOID = {"meta", "br", "img", "input", "link", "hr", "area", "base", "col", "source", "wbr"}


class Elements(HTMLParser):
    """Every start tag as (tag, attributes); ``with_class`` picks by CSS class. Each
    element inside a timeline row carries the row's lane and step as ``_row``."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self._open: list[tuple[str, str | None]] = []  # (tag, row key when it is a row)
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        rows = [key for _, key in self._open if key is not None]
        if rows:
            a["_row"] = rows[-1]
        self.found.append((tag, a))
        if tag not in _VOID:
            is_row = "row" in a.get("class", "").split()
            self._open.append((tag, f"{a.get('data-lane')}|{a.get('data-step')}" if is_row else None))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                return

    def with_class(self, *names: str) -> list[dict[str, str]]:
        return [a for _, a in self.found if set(names) <= set(a.get("class", "").split())]

    def tag(self, name: str) -> dict[str, str]:
        return next(a for tag, a in self.found if tag == name)
