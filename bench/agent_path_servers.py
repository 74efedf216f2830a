"""Servers and requests of bench/agent_path.py: ours, the bare app and the comparators, on one core.

Our server is ``agent-service serve`` (bench/middleware_overhead.py's environment and
process helpers) with production settings; the bare one is bench/bare_app.py; the
comparators are bench/naive_app.py and bench/langserve_app.py (the latter on its own
venv's python: bench/agent_path_comparators.py). All are started under
``taskset -c <server core>`` when taskset exists (else their threads are pinned with
``os.sched_setaffinity`` once they are up); the load generator pins itself to the other
core, and the private redis-server, started by it, inherits that core: the server's core
runs nothing but the servers.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.core.config import Settings
from bench import sse_load
from bench.agent_path_load import LANGSERVE_FRAMES, RUN_FRAMES, Frames
from bench.bare_app import ANSWER
from bench.middleware_overhead import FULL_ENV, BenchError, _login
from tests.support.server_process import ServerProcess

HOST = "127.0.0.1"
TOKENS = 64
INPUT = "Describe the sea in one sentence."

# Production settings (FULL_ENV: JWT auth, Redis rate limit too high to bite, metrics, JSON
# access log at INFO) and caps that stay on but cannot bite at 1,000 streams of one user.
US_ENV = {
    **FULL_ENV,
    "MAX_CONCURRENT_RUNS_PER_PRINCIPAL": "100000",
    "SERVER_LIMIT_CONCURRENCY": "2000",  # S4 holds 1,000 streams plus the bench's scrapes
}


def model_env(
    latency_ms: int, tokens_per_second: float, tokens: int = TOKENS
) -> tuple[dict[str, str], dict[str, str]]:
    """The same model (answer length and timing) for us (offline model) and the bare app."""
    rate, length = f"{tokens_per_second:g}", str(tokens)
    return (
        {
            "OFFLINE_LATENCY_MS": str(latency_ms),
            "OFFLINE_TOKENS_PER_SECOND": rate,
            "OFFLINE_RESPONSE_TOKENS": length,
        },
        {"BARE_LATENCY_MS": str(latency_ms), "BARE_TOKENS_PER_SECOND": rate, "BARE_TOKENS": length},
    )


# --- pinning --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pinning:
    server_cpu: int | None
    client_cpu: int | None
    method: str

    @classmethod
    def plan(cls) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if os.environ.get("BENCH_PIN", "1") == "0" or len(cpus) < 2:
            return cls(None, None, "none")
        method = "taskset" if shutil.which("taskset") else "sched_setaffinity"
        return cls(cpus[0], cpus[1], method)

    def pin_self(self) -> None:
        if self.client_cpu is not None:
            os.sched_setaffinity(0, {self.client_cpu})


class PinnedServer(ServerProcess):
    """A ServerProcess on one core; ``module`` runs another server (bench.bare_app), with
    ``python`` when it lives in another venv (bench.langserve_app)."""

    def __init__(
        self,
        env: dict[str, str],
        pinning: Pinning,
        module: str | None = None,
        python: Path | None = None,
    ) -> None:
        super().__init__(env=env)
        self.pinning = pinning
        self.module = module
        self.python = str(python) if python is not None else sys.executable
        # Only what ``env`` says: no setting leaks in from the caller's shell.
        for name in Settings.model_fields:
            if name not in env:
                self.env.pop(name, None)

    def command(self) -> list[str]:
        if self.module is None:
            base = super().command()
        else:
            base = [self.python, "-m", self.module, "--host", HOST, "--port", str(self.port)]
        if self.pinning.server_cpu is not None and self.pinning.method == "taskset":
            return ["taskset", "-c", str(self.pinning.server_cpu), *base]
        return base

    def start(self, timeout: float = 30) -> PinnedServer:
        super().start(timeout)
        if self.pinning.server_cpu is not None and self.pinning.method != "taskset":
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                os.sched_setaffinity(int(task.name), {self.pinning.server_cpu})
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid  # taskset execs the server: same pid


# --- requests -------------------------------------------------------------------------


OURS = ("us", "us_pooled")
COMPARATORS = ("naive", "langserve")


@dataclass(frozen=True, slots=True)
class Row:
    """One measured configuration: which server, which route, which body and cache mode."""

    key: str
    label: str
    server: str  # "bare" | "us" | "us_pooled" | "naive" | "langserve"
    kind: str  # "invoke" | "stream"
    store: bool = False
    # "hit" (same request repeated, cache on) | "bypass" (no-cache) | "none" (no cache there)
    cache: str = "hit"
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        return self.server in OURS

    @property
    def comparator(self) -> bool:
        return self.server in COMPARATORS

    @property
    def frames(self) -> Frames:
        return LANGSERVE_FRAMES if self.server == "langserve" else RUN_FRAMES

    def path(self) -> str:
        if self.server in ("bare", "naive"):
            return f"/{self.kind}"
        if self.server == "langserve":
            return f"/chat/{self.kind}"
        return f"/v1/agents/chat/{self.kind}"

    def body(self) -> dict[str, object]:
        if self.server == "langserve":
            return {"input": INPUT}  # LangServe's request: the runnable's input
        # store false: a stateless client; the default body (store true) starts a session.
        return {"input": INPUT} if self.store else {"input": INPUT, "store": False}

    def headers(self, token: str) -> dict[str, str]:
        if self.server in ("bare", "langserve"):
            return {}
        headers = {"Authorization": f"Bearer {token}"}
        if self.cache == "bypass":
            headers["Cache-Control"] = "no-cache"
        return headers

    def request(self, server: ServerProcess, token: str) -> bytes:
        return sse_load.request_bytes(
            "POST", self.path(), f"{HOST}:{server.port}", self.headers(token), self.body()
        )


def _final_json(text: str, kind: str) -> dict[str, Any]:
    if kind == "invoke":
        return dict(json.loads(text))
    last = text.strip().split("\n\n")[-1]
    if not last.startswith("event: run_completed\n"):
        raise BenchError(f"stream did not end with run_completed: {last[:200]!r}")
    data = next(line for line in last.splitlines() if line.startswith("data: "))
    return dict(json.loads(data[6:]))


def _run_problems(row: Row, response: httpx.Response) -> tuple[list[str], bool]:
    """Ours, the bare app's and the naive app's answer (their frames and fields): the
    problems, and whether the answer came from a cache."""
    final = _final_json(response.text, row.kind)
    problems = []
    if final["usage"]["completion_tokens"] != TOKENS:
        problems.append(f"{final['usage']} is not {TOKENS} tokens")
    if row.kind == "stream" and response.text.count("event: token\n") != TOKENS:
        problems.append(f"{response.text.count('event: token')} token frames")
    cached = bool(final["cached"])
    if row.ours:
        if cached != (row.cache == "hit"):
            problems.append(f"cached={cached} on a repeat, row is {row.cache}")
        if row.kind == "invoke" and (final["session_id"] is not None) != row.store:
            problems.append(f"session_id={final['session_id']} with store={row.store}")
    if row.server == "naive":
        if final["output"] != ANSWER:
            problems.append(f"not bare_app's answer: {final['output'][:80]!r}")
        if row.kind == "invoke":
            cached = response.headers.get("x-cache") == "hit"
            if cached != (row.cache == "hit"):
                problems.append(f"X-Cache {response.headers.get('x-cache')} on a repeat")
    return problems, cached


def _langserve_problems(row: Row, response: httpx.Response) -> tuple[list[str], bool]:
    """LangServe's answer: the whole of bare_app's text, in one output or one data frame
    per token (by content: LangServe's answer has no token count), ending in ``end``."""
    if row.kind == "invoke":
        text = response.json()["output"]["content"]
        return ([] if text == ANSWER else [f"output {text[:80]!r}... is not the answer"]), False
    frames = response.text.strip().split("\r\n\r\n")
    chunks = [
        json.loads(frame.split("\r\ndata: ", 1)[1])["content"]
        for frame in frames
        if frame.startswith("event: data\r\n")
    ]
    problems = []
    tokens = [chunk for chunk in chunks if chunk]
    if len(tokens) != TOKENS or "".join(tokens) != ANSWER:
        problems.append(f"{len(tokens)} chunks with text, not bare_app's {TOKENS} tokens")
    if not frames[-1].startswith("event: end"):
        problems.append(f"stream did not end with end: {frames[-1][:200]!r}")
    return problems, False


def precheck(row: Row, server: ServerProcess, token: str) -> dict[str, Any]:
    """The row's request by hand, twice (the first fills a cache): 200, the whole answer,
    the cache answer the row claims, a session exactly when it should. Returns the bytes."""
    for _ in range(2):
        response = httpx.post(
            f"{server.url}{row.path()}", json=row.body(), headers=row.headers(token), timeout=30
        )
        if response.status_code != 200:
            raise BenchError(f"{row.key}: {response.status_code} {response.text[:300]}")
    check = _langserve_problems if row.server == "langserve" else _run_problems
    problems, cached = check(row, response)
    if problems:
        raise BenchError(f"{row.key}: " + "; ".join(problems))
    return {"response_bytes": len(response.content), "cached": cached}


def login(server: ServerProcess, password: str) -> str:
    return _login(server.url, password)
