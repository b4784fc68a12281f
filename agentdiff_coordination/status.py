"""``status()``: the state of every lock, limit and event stream of the backend, now.

```python
import agentdiff_coordination as ac

snapshot = ac.status()                  # a Status (typed, frozen)
for lock in snapshot.locks:
    print(lock.name, lock.holder, lock.waiting)
print(json.dumps(snapshot.to_json()))   # the JSON form documented in core.snapshots
```

On the memory backend it shows this process; on Redis, every process that shares the
key prefix. ``format_status`` draws it as text (the ``agentdiff-coordination status``
command draws it with ``rich`` when it is installed).
"""

from __future__ import annotations

import time
from typing import Any

from .core.runtime import RUNTIME
from .core.snapshots import Status

__all__ = ["format_status", "rich_status", "status", "status_heading", "status_tables"]


def status() -> Status:
    """A snapshot of the current backend: its locks, limits and events."""
    return RUNTIME.backend().snapshot()


# -- drawing -----------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def status_tables(snapshot: Status) -> list[tuple[str, list[str], list[list[str]]]]:
    """The snapshot as (title, header, rows) tables of text: locks, limits, consumers."""
    locks = [
        [
            lock.name, lock.holder.describe() if lock.holder else "free", "-" if lock.fencing is None else str(lock.fencing),
            _seconds(lock.held_for), _seconds(lock.lease_left), str(lock.waiting),
        ]
        for lock in snapshot.locks
    ]
    limits = [
        [lim.name, ", ".join(f"{r.used}/{r.limit} ({r.rate})" for r in lim.rates) or "-", str(lim.holders), str(lim.waiting)]
        for lim in snapshot.limits
    ]
    consumers = [[c.group, c.consumer, str(c.pending), _seconds(c.idle)] for c in snapshot.events.consumers]
    return [
        ("Locks", ["name", "holder", "fencing", "held for", "lease left", "waiting"], locks),
        ("Limits", ["name", "used of each rate", "holders", "waiting"], limits),
        ("Event consumers", ["group", "consumer", "pending", "idle"], consumers),
    ]


def status_heading(snapshot: Status) -> str:
    e = snapshot.events
    return (
        f"backend {snapshot.backend}  {time.strftime('%H:%M:%S')}  "
        f"locks {len(snapshot.locks)}  limits {len(snapshot.limits)}  "
        f"events pending {e.pending}  dead letters {e.dead_letters}"
    )


def format_status(snapshot: Status) -> str:
    """The snapshot as plain text tables."""
    out = [status_heading(snapshot)]
    for title, header, rows in status_tables(snapshot):
        out.append("")
        if not rows:
            out.append(f"{title}: none")
            continue
        out.append(f"{title}:")
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
        for line in [header, *rows]:
            out.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return "\n".join(out)


def rich_status(snapshot: Status) -> Any:
    """The snapshot as a ``rich`` renderable (``rich`` must be installed)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(status_heading(snapshot), style="bold")]
    for title, header, rows in status_tables(snapshot):
        if not rows:
            parts.append(Text(f"{title}: none", style="dim"))
            continue
        table = Table(title=title, title_justify="left", expand=False)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        parts.append(table)
    return Group(*parts)
