"""The other stacks of bench/agent_path.py (issue 11): which are measured, and their servers.

- ``naive``: the naive design (bench/naive_app.py): FastAPI, JWT decoded on every
  request, a Redis cache, no middleware. Runs in .venv on the run's private redis-server
  with a secret of its own; the bench mints its token (no login route).
- ``langserve``: LangServe (bench/langserve_app.py) in its own venv, .venv-langserve, made
  or refreshed here from bench/langserve-requirements.txt (bench/comparator_envs.py). If it
  cannot be made, its rows are skipped, the reason printed and kept in the results.

Both answer with bench/bare_app.py's model: its answer, latency and pacing, from the same
environment (BARE_*), so every row of a scenario sees the same model.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from jose import jwt

from bench.agent_path_servers import COMPARATORS, PinnedServer, Pinning
from bench.comparator_envs import EnvUnavailable, langserve_python
from bench.middleware_overhead import BenchError

NAIVE_CACHE_TTL_S = 3600


def selected() -> list[str]:
    """BENCH_COMPARATORS: comma-separated, default all; empty: none."""
    raw = os.environ.get("BENCH_COMPARATORS", ",".join(COMPARATORS))
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPARATORS]
    if unknown:
        raise BenchError(f"BENCH_COMPARATORS: unknown {unknown}; choose from {list(COMPARATORS)}")
    return names


@dataclass(slots=True)
class Comparators:
    """The comparators of one run: those that run, those skipped and why, what they need."""

    measured: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why its rows are left out
    langserve_python: Path | None = None
    naive_secret: str = field(default_factory=lambda: secrets.token_hex(32))

    @classmethod
    def plan(cls) -> Comparators:
        plan = cls()
        wanted = selected()
        for name in COMPARATORS:
            if name not in wanted:
                plan.skipped[name] = "not in BENCH_COMPARATORS"
            elif name == "langserve":
                try:
                    plan.langserve_python = langserve_python()
                except EnvUnavailable as exc:
                    plan.skipped[name] = f"its venv could not be made: {exc}"
                else:
                    plan.measured.append(name)
            else:
                plan.measured.append(name)
        for name, reason in plan.skipped.items():
            print(f"comparator {name}: rows skipped, {reason}", flush=True)
        return plan

    def server(
        self, name: str, bare_model: dict[str, str], pinning: Pinning, redis_url: str
    ) -> PinnedServer:
        """The comparator's server with the scenario's model (bare_app's environment)."""
        if name == "naive":
            env = {
                **bare_model,
                "NAIVE_SECRET_KEY": self.naive_secret,
                "NAIVE_REDIS_URL": redis_url,
                "NAIVE_CACHE_TTL": str(NAIVE_CACHE_TTL_S),
            }
            return PinnedServer(env, pinning, module="bench.naive_app")
        if name == "langserve":
            assert self.langserve_python is not None
            # No tracing to anywhere, whatever the caller's shell says.
            env = {**bare_model, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}
            return PinnedServer(
                env, pinning, module="bench.langserve_app", python=self.langserve_python
            )
        raise BenchError(f"no comparator {name!r}")

    def naive_token(self) -> str:
        """What the naive design's login would hand out: HS256, a subject and an expiry."""
        claims = {"sub": "bench", "exp": int(time.time()) + 24 * 3600}
        return str(jwt.encode(claims, self.naive_secret, algorithm="HS256"))

    def summary(self) -> dict[str, dict[str, str]]:
        """For the results: each comparator measured or skipped, and why."""
        out = {name: {"status": "measured"} for name in self.measured}
        out |= {name: {"status": "skipped", "reason": why} for name, why in self.skipped.items()}
        return out
