"""The logs of the server and worker processes a test started, for its failure report.

Each process writes to a temporary file it deletes when it stops, so after a failure in CI
the processes' own account (a traceback, a fallback logged at start-up) was gone with them.
A failing test's report now carries the end of the log of every process still running (its
fixtures' processes are: fixtures are torn down after the report is made) or written to during
the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

TAIL_LINES = 60

_open: dict[Path, tuple[str, Callable[[], bool]]] = {}


def watch(path: Path, name: str, running: Callable[[], bool]) -> None:
    _open[path] = (name, running)


def forget(path: Path) -> None:
    _open.pop(path, None)


def tails(since: float) -> list[tuple[str, str]]:
    """(section title, last lines) for each watched log whose process still runs or was
    written to at or after ``since`` (the failing test's start: a process it stopped). What an
    earlier test's stopped process left behind is not this test's."""
    sections = []
    for path, (name, running) in list(_open.items()):
        try:
            written = path.stat().st_mtime
        except FileNotFoundError:
            forget(path)
            continue
        if not running() and written < since:
            continue
        lines = path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        sections.append((f"last {len(lines)} lines of {name}'s log", "\n".join(lines)))
    return sections
