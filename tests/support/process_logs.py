"""The logs of the server and worker processes a test started, for its failure report.

Each process writes to a temporary file it deletes when it stops, so after a failure in CI
the processes' own account (a traceback, a fallback logged at start-up) was gone with them.
A failing test's report now carries the end of every log still open: the test's processes
are alive then, since fixtures are torn down after the report is made.
"""

from __future__ import annotations

from pathlib import Path

TAIL_LINES = 60

_open: dict[Path, str] = {}


def watch(path: Path, name: str) -> None:
    _open[path] = name


def forget(path: Path) -> None:
    _open.pop(path, None)


def tails() -> list[tuple[str, str]]:
    """(section title, last lines) for each watched log that still exists."""
    sections = []
    for path, name in list(_open.items()):
        if not path.exists():
            forget(path)
            continue
        lines = path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        sections.append((f"last {len(lines)} lines of {name}'s log", "\n".join(lines)))
    return sections
