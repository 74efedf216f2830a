"""Every reference in the repository resolves inside the repository.

A reader following a link or a cited path must land on a file that exists here, not on a
document that lived beside an old checkout. Checked over every text file outside virtualenvs,
caches and build output:
  (a) relative Markdown links (and their ``#heading`` anchors) in every ``*.md``;
  (b) repository paths cited in code, comments, docstrings, docs, charts and build files
      (``app/...py``, ``docs/...md``, bare ``*.md`` names, ``app.module:attr`` entry points);
  (c) no mention of the design documents' old location outside the repository, nor of the
      seed documents the design started from (they are not part of the repository).
This file is left out of the scans: its own examples are broken on purpose.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "build",
        "dist",
    }
)
# Files whose paths are data, not citations (recorded benchmark output, lock files).
DATA_SUFFIXES = frozenset({".json", ".lock"})
CITING_SUFFIXES = frozenset(
    {".py", ".md", ".yaml", ".yml", ".toml", ".tpl", ".txt", ".cfg", ".ini", ".sh", ".conf"}
)
CITING_NAMES = frozenset({"Dockerfile", "Makefile", ".env.example", ".dockerignore", "run"})

PATH_PREFIXES = "app|tests|docs|docker|deploy|bench|clients"
EXTENSIONS = "py|md|yaml|yml|json|toml|txt|js|css|html|tpl"
# A path that starts at the repository root; the look-behind keeps it from matching the tail
# of a longer path (a path inside another project, or under site-packages).
REPO_PATH = re.compile(rf"(?<![\w./-])(?:{PATH_PREFIXES})/[\w./-]*?\w\.(?:{EXTENSIONS})(?![\w/-])")
# Any Markdown file name, with or without a directory: a bare name must exist beside the
# citing file, at the root, or in docs/.
MARKDOWN_NAME = re.compile(r"(?<![\w./-])((?:\.\./|\./)?[\w./-]*?[\w-]+\.md)(?![\w/-])")
# Entry points such as the ASGI app or a console script: ``app.package.module:attribute``.
ENTRY_POINT = re.compile(r"(?<![\w./-])(app(?:\.\w+)+):\w+")
OLD_HOMES = ("../shared", "/work/shared")
SEEDS = re.compile(r"\bseeds?/|\bseed 0\d\d\b", re.IGNORECASE)
# Benchmarks write their results here: a cited file there needs only its directory.
OUTPUT_DIRS = ("bench/results/",)
THIS_FILE = Path(__file__).resolve()

MARKDOWN_LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def _files() -> Iterator[Path]:
    for directory, dirs, names in os.walk(ROOT):
        dirs[:] = [
            d
            for d in dirs
            # .venv-langserve: the benchmark's comparator environment (bench/comparator_envs.py)
            if d not in SKIP_DIRS and not d.endswith(".egg-info") and not d.startswith(".venv")
        ]
        for name in names:
            path = Path(directory) / name
            if path != THIS_FILE:
                yield path


@cache
def _names_in_repo() -> frozenset[str]:
    return frozenset(path.name for path in _files())


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:4096]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _citing_files() -> Iterator[tuple[Path, str]]:
    for path in _files():
        if path.suffix in DATA_SUFFIXES:
            continue
        if path.suffix in CITING_SUFFIXES or path.name in CITING_NAMES:
            text = _text(path)
            if text is not None:
                yield path, text


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _where(path: Path, text: str, index: int) -> str:
    return f"{path.relative_to(ROOT)}:{_line_of(text, index)}"


def _blank(match: re.Match[str]) -> str:
    """Replace code with spaces of the same shape, so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def _prose(markdown: str) -> str:
    return INLINE_CODE.sub(_blank, FENCE.sub(_blank, markdown))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`|\*\*|__", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors_of(path: Path) -> frozenset[str]:
    text = FENCE.sub(_blank, path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for match in HEADING.finditer(text):
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


def _inside_repo(target: Path) -> bool:
    try:
        target.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return True


def _markdown_link_problems(path: Path, text: str) -> Iterator[str]:
    prose = _prose(text)
    for match in MARKDOWN_LINK.finditer(prose):
        link = match.group(1)
        if EXTERNAL.match(link):
            continue
        file_part, _, anchor = link.partition("#")
        target = (path.parent / file_part).resolve() if file_part else path
        where = _where(path, prose, match.start())
        if not _inside_repo(target) or not target.exists():
            yield f"{where}: link to {link!r}: no such file in the repository"
            continue
        if anchor and target.suffix == ".md" and anchor.lower() not in anchors_of(target):
            yield f"{where}: link to {link!r}: no heading with anchor #{anchor}"


def _markdown_name_resolves(path: Path, name: str) -> bool:
    """A path resolves beside the citing file or from the root; a bare name anywhere."""
    if "/" not in name and name in _names_in_repo():
        return True
    return any(_inside_repo(c) and c.exists() for c in (path.parent / name, ROOT / name))


def _repo_path_exists(cited: str) -> bool:
    if cited.startswith(OUTPUT_DIRS):
        return (ROOT / cited).parent.is_dir()
    return (ROOT / cited).exists()


def _module_exists(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _citation_problems(path: Path, text: str) -> Iterator[str]:
    for match in REPO_PATH.finditer(text):
        cited = match.group(0)
        if not _repo_path_exists(cited):
            yield f"{_where(path, text, match.start())}: cites {cited!r}, which does not exist"
    for match in MARKDOWN_NAME.finditer(text):
        name = match.group(1)
        if not _markdown_name_resolves(path, name):
            yield f"{_where(path, text, match.start())}: cites {name!r}, which does not exist"
    for match in ENTRY_POINT.finditer(text):
        if not _module_exists(match.group(1)):
            where = _where(path, text, match.start())
            yield f"{where}: entry point {match.group(0)!r}: no module {match.group(1)}"


def test_markdown_links_resolve_to_files_and_headings() -> None:
    problems = [
        problem
        for path in _files()
        if path.suffix == ".md"
        for problem in _markdown_link_problems(path, path.read_text(encoding="utf-8"))
    ]
    assert not problems, "\n".join(problems)


def test_cited_repository_paths_exist() -> None:
    problems = [
        problem for path, text in _citing_files() for problem in _citation_problems(path, text)
    ]
    assert not problems, "\n".join(problems)


def _outside_mentions(path: Path, text: str) -> Iterator[str]:
    for needle in OLD_HOMES:
        index = text.find(needle)
        while index != -1:
            yield f"{_where(path, text, index)}: mentions {needle!r}"
            index = text.find(needle, index + 1)
    for match in SEEDS.finditer(text):
        yield f"{_where(path, text, match.start())}: cites {match.group(0)!r} (not in the repo)"


def test_nothing_points_outside_the_repository_for_its_design() -> None:
    problems: list[str] = []
    for path in _files():
        text = _text(path)
        if text is not None:
            problems.extend(_outside_mentions(path, text))
    assert not problems, "\n".join(problems)


def test_the_design_is_in_the_repository_and_the_readme_points_at_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert (ROOT / "docs" / "architecture.md").exists()
    assert "](docs/architecture.md)" in readme


def test_the_checker_catches_what_it_is_meant_to(tmp_path: Path) -> None:
    """The regexes above are the test; prove they see a broken link, path and anchor."""
    doc = ROOT / "README.md"
    broken = "See [x](docs/nope.md), [y](README.md#no-such-heading) and [z](https://e.x)."
    problems = list(_markdown_link_problems(doc, broken))
    assert len(problems) == 2, problems
    code = "# see app/core/nope.py, docs/decisions.md, NOPE.md, app.nope:app, app.main:create_app"
    problems = list(_citation_problems(ROOT / "app" / "x.py", code))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "cites 'app/core/nope.py', which does not exist",
        "cites 'NOPE.md', which does not exist",
        "entry point 'app.nope:app': no module app.nope",
    ]
    problems = list(_outside_mentions(doc, "see ../shared/X.md and seed 002 or seeds/001"))
    assert len(problems) == 3, problems
    assert github_slug("Middleware order (outer to inner)") == "middleware-order-outer-to-inner"
    assert github_slug("`GET /v1/tasks` and friends") == "get-v1tasks-and-friends"
