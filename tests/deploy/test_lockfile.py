"""requirements/*.txt (written by `make lock`) agree with pyproject.toml.

Read as text, never re-resolved (that needs the network and takes a while): a dependency added
to or changed in pyproject.toml without `make lock` fails here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.support import ROOT

LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def _expanded(lines: list[str]) -> list[Requirement]:
    """Requirements, the project's own extras (``agent-service[langgraph]``) replaced by
    theirs: the dev extra takes in the framework extras that way."""
    own = canonicalize_name(PYPROJECT["project"]["name"])
    out: list[Requirement] = []
    for line in lines:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == own:
            for extra in sorted(requirement.extras):
                out.extend(_expanded(EXTRAS[extra]))
        else:
            out.append(requirement)
    return out


DEV = _expanded(EXTRAS["dev"])
BUILD = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
# The image's interpreter: the lock must hold a pin for every package it installs there.
IMAGE = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies(self, extra: str = "") -> bool:
        env = {**IMAGE, "extra": extra}
        return self.marker is None or self.marker.evaluate(env)


def parse_lock(path: Path) -> list[Pin]:
    """Each `name==version ; marker --hash=...` entry, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        hashes = tuple(re.findall(r"--hash=(\S+)", line))
        requirement = Requirement(re.sub(r"--hash=\S+", "", line).strip())
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {line[:80]}"
        pins.append(
            Pin(
                canonicalize_name(requirement.name),
                Version(specs[0].version),
                requirement.marker,
                hashes,
            )
        )
    return pins


@pytest.fixture(scope="module")
def runtime_lock() -> list[Pin]:
    return parse_lock(LOCKS / "runtime.txt")


@pytest.fixture(scope="module")
def dev_lock() -> list[Pin]:
    return parse_lock(LOCKS / "dev.txt")


@pytest.fixture(scope="module")
def build_lock() -> list[Pin]:
    return parse_lock(LOCKS / "build.txt")


def pins_for(lock: list[Pin], name: str) -> list[Pin]:
    return [pin for pin in lock if pin.name == canonicalize_name(name) and pin.applies()]


def disagreements(requirements: list[Requirement], lock: list[Pin]) -> list[str]:
    """Each requirement (and what its extras pull in) pinned, within its range."""
    problems = []
    for requirement in requirements:
        pins = pins_for(lock, requirement.name)
        if not pins:
            problems.append(f"{requirement} is not in the lock")
        for pin in pins:
            if not requirement.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{requirement} but the lock pins {pin.version}")
        for extra in sorted(requirement.extras):
            for needed in extra_requirements(requirement.name, extra):
                if not pins_for(lock, needed):
                    problems.append(f"{requirement.name}[{extra}] needs {needed}, not locked")
    return problems


def installed_requires(name: str) -> list[str]:
    """Requires-Dist of the installed `name`; none when it is not installed (yet: the install
    stamp reinstalls after `make lock`, so under `make test` everything locked is there)."""
    try:
        return metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []


def extra_requirements(name: str, extra: str) -> list[str]:
    """What `name[extra]` adds, from the installed distribution's metadata (the locked one)."""
    needed = []
    for line in installed_requires(name):
        requirement = Requirement(line)
        if requirement.marker and "extra" in str(requirement.marker):
            if requirement.marker.evaluate({**IMAGE, "extra": extra}):
                needed.append(requirement.name)
    return needed


def runtime_closure() -> set[str]:
    """Every package the runtime dependencies pull in on the image, per installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in RUNTIME]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in installed_requires(name):
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({**IMAGE, "extra": e}) for e in {"", *extras}):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen}


def test_every_runtime_dependency_is_locked_within_its_range(runtime_lock: list[Pin]) -> None:
    problems = disagreements(RUNTIME, runtime_lock)
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_the_runtime_lock_holds_no_dev_tool(runtime_lock: list[Pin]) -> None:
    locked = {pin.name for pin in runtime_lock}
    # A dev extra package may ship only when a runtime package needs it (pyyaml: uvicorn).
    tools = {canonicalize_name(r.name) for r in DEV} - runtime_closure()
    assert {"pytest", "mypy", "ruff", "playwright"} <= tools
    assert not locked & tools, "run `make lock`: " + ", ".join(sorted(locked & tools))


def test_every_dev_and_runtime_dependency_is_in_the_dev_lock(dev_lock: list[Pin]) -> None:
    problems = disagreements(RUNTIME + DEV, dev_lock)
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_dev_lock_pins_the_runtime_packages_as_the_runtime_lock_does(
    runtime_lock: list[Pin], dev_lock: list[Pin]
) -> None:
    # Tests run against the versions the image ships. The dev lock may install a package on
    # more platforms than the runtime lock (no marker where runtime has one: a dev tool needs
    # it everywhere), never another version or on fewer platforms.
    dev = {(pin.name, pin.version): pin.marker for pin in dev_lock}
    missing = [
        (pin.name, pin.version, str(pin.marker))
        for pin in runtime_lock
        if (pin.name, pin.version) not in dev
        or dev[(pin.name, pin.version)] not in (None, pin.marker)
    ]
    assert not missing, missing


def test_build_lock_pins_pip_and_the_build_backend(build_lock: list[Pin]) -> None:
    problems = disagreements([*BUILD, Requirement("pip")], build_lock)
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", ["build.txt", "runtime.txt", "dev.txt"])
def test_every_pin_is_exact_and_hashed(name: str) -> None:
    text = (LOCKS / name).read_text()
    # The header names the one command that refreshes it.
    assert text.startswith("# This file was autogenerated by uv via the following command:\n")
    assert text.splitlines()[1] == "#    make lock"
    pins = parse_lock(LOCKS / name)
    assert pins
    for pin in pins:
        assert pin.hashes, f"{name}: {pin.name} has no hash"
        assert all(h.startswith("sha256:") and len(h) == 7 + 64 for h in pin.hashes), pin.name
    # Nothing that pip would install without checking a hash.
    assert not re.search(r"^\s*(-e|--editable|-r|-c|--index-url|--extra-index-url)\b", text, re.M)
    assert "://" not in text
