"""Where every benchmark leaves its result: bench/results/<name>.json and <name>.md, each
written to a temporary file first and renamed, so an interrupted run never leaves half a file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"


def save_results(name: str, result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write both files; their paths relative to the repository root."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{name}.json"
    md_path = RESULTS_DIR / f"{name}.md"
    for path, text in ((json_path, json.dumps(result, indent=2) + "\n"), (md_path, markdown)):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return json_path.relative_to(ROOT), md_path.relative_to(ROOT)


def report(
    name: str, produce: Callable[[], dict[str, Any]], render: Callable[[dict[str, Any]], str]
) -> int:
    """Run a benchmark, save its result and print its table: the exit status (1, and why on
    stderr, when it raised RuntimeError)."""
    try:
        result = produce()
    except RuntimeError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        return 1
    markdown = render(result)
    save_results(name, result, markdown)
    print(markdown)
    return 0
