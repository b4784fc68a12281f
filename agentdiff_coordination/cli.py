"""The ``agentdiff-coordination`` command.

```
agentdiff-coordination demo [--html timeline.html]
agentdiff-coordination status [--url URL] [--json] [--watch SECONDS]
agentdiff-coordination dead-letters [--url URL] [--json] [--replay | --purge]
agentdiff-coordination timeline RUN.jsonl [...] -o timeline.html
```

The backend URL comes from ``--url``, else ``AGENTDIFF_COORDINATION_BACKEND``, else ``memory://``.
A memory backend lives inside one process, so from the command line it shows nothing of
your program's: call ``status()`` or ``dead_letters()`` there, or share state on Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .core.version import __version__

if TYPE_CHECKING:
    from .core.backends.base import Backend

ENV_BACKEND = "AGENTDIFF_COORDINATION_BACKEND"
MEMORY_NOTE = (
    "note: memory:// lives inside one process; this command sees only its own state. Call "
    "agentdiff_coordination.{api}() in your program, or configure a Redis URL to see every process."
)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--watch needs a number of seconds, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--watch needs a positive number of seconds, not {text!r}")
    return value


def _url(args: argparse.Namespace) -> str:
    return args.url or os.environ.get(ENV_BACKEND) or "memory://"


def _is_memory(url: str) -> bool:
    return url.lower().startswith("memory:")


class _Opened:
    """The backend for ``url``: this process's own one for ``memory://`` (so ``main()``
    called inside a program sees that program), else a new one, closed on exit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: Backend | None = None

    def __enter__(self) -> Backend:
        from .core.runtime import backend_from_url, get_backend

        if _is_memory(self.url) and _is_memory(os.environ.get(ENV_BACKEND) or "memory://"):
            current = get_backend()  # memory unless the program configured another
            if _is_memory(current.url):
                return current
        self.made = backend_from_url(self.url)
        return self.made

    def __exit__(self, *exc: object) -> None:
        if self.made is not None:
            self.made.close()


# -- status ------------------------------------------------------------------------------


def _status(args: argparse.Namespace, out: TextIO) -> int:
    from .status import format_status

    url = _url(args)
    if _is_memory(url):
        print(MEMORY_NOTE.format(api="status"), file=sys.stderr)
    with _Opened(url) as backend:
        if args.json:
            print(json.dumps(backend.snapshot().to_json(), indent=2), file=out)
            return 0
        if args.watch is None:
            print(_draw(format_status, backend.snapshot()), file=out)
            return 0
        _watch(lambda: backend.snapshot(), args.watch, args.watch_count, out)
    return 0


def _rich() -> Any:
    try:
        import rich.console
    except ImportError:
        return None
    return rich.console


def _draw(plain: Callable[[Any], str], snapshot: Any) -> str:
    console_module = _rich()
    if console_module is None:
        return plain(snapshot)
    from .status import rich_status

    console = console_module.Console(record=True, file=open(os.devnull, "w"), width=max(100, _columns()))  # noqa: SIM115
    console.print(rich_status(snapshot))
    console.file.close()
    text = str(console.export_text(styles=sys.stdout.isatty()))
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _columns() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 120


def _watch(take: Callable[[], Any], seconds: float, count: int | None, out: TextIO) -> None:
    """Redraw the snapshot in place every ``seconds`` until interrupted (or ``count`` times)."""
    from .status import format_status

    shown = 0
    try:
        while count is None or shown < count:
            text = _draw(format_status, take())
            clear = "\x1b[H\x1b[2J" if out.isatty() else ("\n" if shown else "")
            out.write(f"{clear}{text}\n(refreshing every {seconds:g}s; Ctrl-C to stop)\n")
            out.flush()
            shown += 1
            if count is None or shown < count:
                time.sleep(seconds)
    except KeyboardInterrupt:
        pass


# -- dead letters ------------------------------------------------------------------------


def _dead_letter_json(letter: Any) -> dict[str, Any]:
    if isinstance(letter, Mapping):
        return dict(letter)
    event, error = letter.event, letter.error
    return {
        "id": event.id, "event": event.name, "data": event.data, "sender": event.sender, "timestamp": event.timestamp,
        "handler": letter.handler, "error": f"{type(error).__name__}: {error}", "attempts": letter.attempts,
    }


def list_dead_letters(backend: Backend) -> list[dict[str, Any]]:
    """The dead letters of ``backend`` as JSON objects (memory: this process's)."""
    if _is_memory(backend.url):
        from .core.events import dead_letters

        return [_dead_letter_json(d) for d in dead_letters()]
    return [_dead_letter_json(d) for d in _method(backend, "dead_letters")()]


def replay_dead_letters(backend: Backend) -> int:
    """Hand every dead letter again to the handler that failed it; how many were sent."""
    if not _is_memory(backend.url):
        return int(_method(backend, "replay_dead_letters")())
    from .core.runtime import RUNTIME

    return RUNTIME.bus.replay_dead_letters()


def purge_dead_letters(backend: Backend) -> int:
    """Drop every dead letter; how many were dropped."""
    if not _is_memory(backend.url):
        return int(_method(backend, "purge_dead_letters")())
    from .core.events import dead_letters

    return len(dead_letters(clear=True))


def _shown(backend: Backend) -> str:
    """The backend's URL without its password."""
    return str(getattr(backend, "safe_url", None) or backend.url)


def _method(backend: Backend, name: str) -> Callable[[], Any]:
    method = getattr(backend, name, None)
    if not callable(method):
        raise NotImplementedError(f"{type(backend).__name__} ({backend.url}) has no {name}() yet")
    return method  # type: ignore[no-any-return]


def _dead_letters(args: argparse.Namespace, out: TextIO) -> int:
    url = _url(args)
    if _is_memory(url):
        print(MEMORY_NOTE.format(api="dead_letters"), file=sys.stderr)
    with _Opened(url) as backend:
        if args.replay or args.purge:
            done = replay_dead_letters(backend) if args.replay else purge_dead_letters(backend)
            verb = "replayed" if args.replay else "purged"
            print(json.dumps({verb: done}) if args.json else f"{verb} {done} dead letter(s) on {_shown(backend)}", file=out)
            return 0
        letters = list_dead_letters(backend)
        shown = _shown(backend)
    if args.json:
        print(json.dumps(letters, indent=2, default=repr), file=out)
        return 0
    print(f"{len(letters)} dead letter(s) on {shown}", file=out)
    for n, d in enumerate(letters, 1):
        print(f"  #{n} {d.get('event')} (id {d.get('id')}) handler {d.get('handler')}, "
              f"{d.get('attempts', '?')} attempt(s)", file=out)
        print(f"     {d.get('error')}", file=out)
        print(f"     data: {json.dumps(d.get('data'), default=repr)[:200]}", file=out)
    return 0


# -- timeline and demo -------------------------------------------------------------------


def _timeline(args: argparse.Namespace, out: TextIO) -> int:
    from .timeline import write_timeline

    missing = [p for p in args.recordings if not os.path.isfile(p)]
    if missing:
        print(f"agentdiff-coordination timeline: no such recording: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        spans = write_timeline(args.recordings, args.output, title=args.title)
    except ValueError as exc:
        print(f"agentdiff-coordination timeline: {exc}", file=sys.stderr)
        return 1
    if not spans:
        print("warning: the recordings hold no spans; the page says so", file=sys.stderr)
    print(f"wrote {args.output}: {spans} span(s) from {len(args.recordings)} recording(s)", file=out)
    return 0


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from .demo import run

    if args.html is None:
        return 0 if run() else 1
    from .recording import record
    from .timeline import write_timeline

    with tempfile.TemporaryDirectory() as folder:
        recording = os.path.join(folder, "demo.jsonl")
        with record(recording):
            ok = run()
        spans = write_timeline([recording], args.html, title="agentdiff-coordination demo")
    print(f"\ntimeline of the demo ({spans} span(s)) written to {args.html}", file=out)
    return 0 if ok else 1


# -- the parser --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentdiff-coordination", description="Locks, limits and events for AI agents.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="run an offline demo: agents contending for an API and a record")
    demo.add_argument("--html", metavar="PATH", help="also record the demo and draw its timeline into this HTML file")

    url_help = f"backend URL (default: ${ENV_BACKEND}, else memory://)"
    status = commands.add_parser("status", help="who holds each lock, who waits, how full each limit is, events pending")
    status.add_argument("--url", help=url_help)
    status.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    status.add_argument("--watch", type=_positive_seconds, metavar="SECONDS", help="redraw in place every SECONDS")
    status.add_argument("--watch-count", type=int, default=None, help=argparse.SUPPRESS)

    dead = commands.add_parser("dead-letters", help="list events whose handlers failed, send them again, or drop them")
    dead.add_argument("--url", help=url_help)
    dead.add_argument("--json", action="store_true", help="print JSON")
    action = dead.add_mutually_exclusive_group()
    action.add_argument("--replay", action="store_true", help="hand every dead letter to its handler again")
    action.add_argument("--purge", action="store_true", help="drop every dead letter")

    timeline = commands.add_parser("timeline", help="draw recordings (record(path)) as one self-contained HTML page")
    timeline.add_argument("recordings", nargs="+", metavar="RUN.jsonl", help="files written by record(path)")
    timeline.add_argument("-o", "--output", default="timeline.html", help="the HTML file to write (default: timeline.html)")
    timeline.add_argument("--title", default=None, help="the page's title")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "demo": _demo, "status": _status, "dead-letters": _dead_letters, "timeline": _timeline,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = _COMMANDS.get(args.command or "")
    if command is None:
        parser.print_help()
        return 2
    try:
        return command(args, sys.stdout)
    except (NotImplementedError, LookupError, ValueError, ImportError) as exc:
        print(f"agentdiff-coordination {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
