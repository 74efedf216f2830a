"""Where the full middleware chain spends its time: py-spy on the server under wrk load.

Run with ``python -m bench.profile_full_chain`` (needs ``pip install py-spy`` and wrk).
Starts the same servers as ``bench.middleware_overhead`` (bare and/or full chain with a
private redis-server), puts wrk load on ``GET /v1/auth/me`` while ``py-spy record`` samples
the server process, then attributes every sample to the innermost ``app/`` function on its
stack and the library that function was calling, and converts sample shares into CPU
microseconds per request (server CPU time from /proc / requests served).

Caveats: against the live server py-spy runs --nonblocking (a paused server would distort the
load), so a few stacks are torn, and samples without Python frames (C code in uvloop) are
left out; treat single rows as +-5 points. ``bench.layer_costs`` gives exact per-layer CPU.

PROFILE_MODE=asgi profiles ``bench.asgi_microbench``'s in-process child instead (no server,
no wrk, blocking py-spy so stacks are exact); PROFILE_SCENARIOS then names its variants
(e.g. full_jwt) and PROFILE_REQUESTS sets the request count (20000).

Environment knobs: PROFILE_SCENARIOS (bare,full_jwt,full_api_key), PROFILE_SECONDS (15),
PROFILE_RATE (py-spy samples/s, 250), BENCH_CONNECTIONS (32), PROFILE_OUT
(bench/results/profile_full_chain.json). Raw collapsed stacks are kept next to it
(``profile_<scenario>.txt``) for flame graphs (e.g. speedscope accepts them).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.middleware_overhead import (
    BARE_ENV,
    FULL_ENV,
    ROUTE,
    BenchError,
    Config,
    _common_env,
    _create_api_key,
    _login,
    _make_server,
    parse_wrk,
    run_wrk,
)
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = str(ROOT / "app") + os.sep
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")

# What an innermost app function + the library below it mean, most specific first.
_MIDDLEWARE_LABELS = {
    "request_context": "request context (X-Request-ID, contextvars)",
    "access_log": "access log (structlog + logging + file write)",
    "metrics": "metrics (prometheus_client)",
    "security_headers": "security headers",
    "body_limit": "body limit",
    "authentication": "authentication middleware",
    "rate_limit": "rate limit middleware",
    "routing": "route template lookup",
}


@dataclass(frozen=True, slots=True)
class Frame:
    func: str
    file: str

    # py-spy names files relative to their sys.path entry: "app/entrypoints/cli.py",
    # "uvicorn/main.py", "asyncio/runners.py"; absolute paths appear only for files outside
    # sys.path.
    @property
    def in_app(self) -> bool:
        # app/entrypoints/cli.py only starts uvicorn: time under it alone is the server's own.
        return self.file.startswith(("app/", APP_DIR)) and not self.file.endswith(
            "app/entrypoints/cli.py"
        )

    @property
    def short_func(self) -> str:
        return self.func.rsplit(".", 1)[-1]

    @property
    def app_name(self) -> str:
        rel = self.file.removeprefix(APP_DIR).removeprefix("app/")
        return f"app/{rel.removesuffix('.py')}:{self.func}"

    @property
    def package(self) -> str:
        marker = f"{os.sep}site-packages{os.sep}"
        path = self.file.split(marker, 1)[1] if marker in self.file else self.file
        return path.split("/", 1)[0].removesuffix(".py")


def parse_frames(stack: str) -> list[Frame]:
    frames = []
    for part in stack.split(";"):
        match = _FRAME.match(part.strip())
        if match is None:
            frames.append(Frame(part.strip(), "?"))
        else:
            frames.append(Frame(match.group("func"), match.group("file")))
    return frames


def _leaf_calls(frames: list[Frame], depth: int = 2) -> str:
    return " > ".join(f"{f.package}:{f.func}" for f in frames[-depth:])


def classify(frames: list[Frame]) -> tuple[str, str]:
    """(category, detail) for one sampled stack, root first."""
    app_index = max((i for i, f in enumerate(frames) if f.in_app), default=None)
    packages = {f.package for f in frames}
    if app_index is None:
        if "redis" in packages:
            # redis-py wraps every send in asyncio.wait_for(socket_timeout), which on Python
            # 3.11 runs it as a task of its own: the calling app frame is not on the stack.
            return "redis-py command send (own task via asyncio.wait_for)", _leaf_calls(frames)
        if frames and frames[-1].func == "Runner.run":
            return "event loop (uvloop C code: I/O, callbacks, task switches)", "uvloop"
        if packages & {"starlette", "fastapi", "pydantic", "pydantic_core"}:
            below = next(
                (
                    f.package
                    for f in frames
                    if f.package in ("starlette", "fastapi", "pydantic", "pydantic_core")
                ),
                "?",
            )
            return "framework (starlette/fastapi, outside app code)", below
        leaf = frames[-1] if frames else Frame("?", "?")
        return "server (uvicorn/httptools/asyncio)", f"{leaf.package}:{leaf.func}"
    owner = frames[app_index]
    below = frames[app_index + 1] if app_index + 1 < len(frames) else None
    below_pkg = below.package if below else "self"
    calls = " > ".join(f"{f.package}:{f.func}" for f in frames[app_index + 1 : app_index + 3])
    detail = f"{owner.app_name} -> {calls or 'self'}"
    module = owner.app_name.split(":", 1)[0]
    name = module.rsplit("/", 1)[-1]
    if owner.short_func.startswith("send_") and below_pkg in ("uvicorn", "h11", "httptools"):
        return "server send (uvicorn, under the send wrappers)", detail
    if module.startswith("app/middleware/"):
        if owner.short_func == "__call__" and below_pkg in ("starlette", "fastapi", "anyio"):
            return "framework (routing, dependencies, endpoint, response)", detail
        return _MIDDLEWARE_LABELS.get(name, module), detail
    if module.startswith("app/security/tokens"):
        return "auth: JWT decode (python-jose)", detail
    if module.startswith("app/security") or module.startswith("app/store/api_keys"):
        return "auth: credentials / API key lookup (Redis)", detail
    if module.startswith("app/store/rate_limits") or module.startswith("app/store/circuit"):
        return "rate limit: limits.aio + redis-py", detail
    if module.startswith("app/observability/redaction"):
        return "access log (structlog + logging + file write)", detail
    if module.startswith("app/observability"):
        return "observability (other)", detail
    if module.startswith("app/api") or module.startswith("app/problems"):
        return "framework (routing, dependencies, endpoint, response)", detail
    return module, detail


def analyze(raw_path: Path, keep: Callable[[str], bool]) -> tuple[Counter[str], Counter[str], int]:
    """Category and innermost-app-frame counts over the kept samples of a raw py-spy file."""
    categories: Counter[str] = Counter()
    details: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or not keep(stack):
            continue
        frames = parse_frames(stack)
        category, detail = classify(frames)
        categories[category] += int(count)
        details[detail] += int(count)
        total += int(count)
    return categories, details, total


def _shares(counter: Counter[str], total: int, us: float, top: int = 40) -> dict[str, Any]:
    return {
        key: {"share": round(n / total, 4), "us_per_request": round(n / total * us, 1)}
        for key, n in counter.most_common(top)
    }


_SETUP_MARKERS = ("_find_and_load", "LifespanManager", "ASGITransport", "AsyncClient.post")


def _asgi_sample(stack: str) -> bool:
    """In-process run: drop import / lifespan / login samples and idle pool threads."""
    if any(marker in stack for marker in _SETUP_MARKERS):
        return False
    return "Condition.wait (threading.py" not in stack


def profile_asgi(name: str, requests: int, rate: int, out_dir: Path) -> dict[str, Any]:
    """py-spy (blocking: exact stacks) over bench.asgi_microbench's child for one variant."""
    from bench.asgi_microbench import _variants, child_env

    variant = next((v for v in _variants() if v.name == name), None)
    if variant is None:
        raise BenchError(f"unknown variant {name!r}")
    redis = RedisServer()
    raw_path = out_dir / f"profile_asgi_{name}.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        redis.start()
        env, log_path = child_env(variant, _common_env(secrets.token_urlsafe(18)), redis.url)
        env["MICRO_REQUESTS"] = str(requests)
        done = subprocess.run(
            [
                spy,
                "record",
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(raw_path),
                "--",
                sys.executable,
                "-m",
                "bench.asgi_microbench",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        Path(log_path).unlink(missing_ok=True)
    finally:
        redis.close()
    if done.returncode != 0:
        raise BenchError(f"py-spy / child failed: {done.stdout}\n{done.stderr}")
    measured = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    us = float(measured["cpu_us_per_request"])  # under the profiler: read shares, not this
    categories, details, total = analyze(raw_path, _asgi_sample)
    return {
        "scenario": f"asgi:{name}",
        "requests": requests,
        "cpu_us_per_request_under_profiler": round(us, 1),
        "samples": total,
        "categories": _shares(categories, total, us),
        "top_app_frames": _shares(details, total, us),
        "raw_stacks": str(raw_path),
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_one(
    name: str,
    url: str,
    headers: dict[str, str],
    pid: int,
    redis_pid: int | None,
    cfg: Config,
    seconds: int,
    rate: int,
    out_dir: Path,
) -> dict[str, Any]:
    run_wrk(cfg, url, headers, 2)  # warm-up
    # 1) No profiler: throughput and CPU per request (server and redis-server).
    cpu_before = _cpu_seconds(pid)
    redis_before = _cpu_seconds(redis_pid) if redis_pid else 0.0
    plain = run_wrk(cfg, url, headers, seconds)
    cpu_used = _cpu_seconds(pid) - cpu_before
    redis_used = (_cpu_seconds(redis_pid) - redis_before) if redis_pid else 0.0
    if plain.non_2xx_3xx or any(plain.socket_errors.values()):
        raise BenchError(f"{name}: non-2xx responses or socket errors: {plain}")
    # 2) py-spy (non-blocking, so the server is not paused) for where the time goes.
    raw_path = out_dir / f"profile_{name}.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    recorder = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    measured = run_wrk(cfg, url, headers, seconds)
    _, err = recorder.communicate(timeout=seconds + 60)
    if recorder.returncode != 0 or not raw_path.exists():
        raise BenchError(f"py-spy failed ({recorder.returncode}): {err}")
    if measured.non_2xx_3xx:
        raise BenchError(f"{name}: {measured.non_2xx_3xx} non-2xx responses under profiling")

    categories, details, total = analyze(
        raw_path, lambda stack: "(app/entrypoints/cli.py:" in stack
    )
    # Server CPU per request (both on and off the sampled thread) split by sample share.
    us_per_request = cpu_used / max(plain.requests, 1) * 1e6
    result = {
        "scenario": name,
        "requests_per_sec": plain.requests_per_sec,
        "requests_per_sec_under_profiler": measured.requests_per_sec,
        "requests": plain.requests,
        "server_cpu_seconds": round(cpu_used, 3),
        "server_cpu_us_per_request": round(us_per_request, 1),
        "redis_cpu_us_per_request": round(redis_used / max(measured.requests, 1) * 1e6, 1),
        "samples": total,
        "categories": {
            category: {
                "share": round(n / total, 4),
                "us_per_request": round(n / total * us_per_request, 1),
            }
            for category, n in categories.most_common()
        },
        "top_app_frames": {
            detail: {
                "share": round(n / total, 4),
                "us_per_request": round(n / total * us_per_request, 1),
            }
            for detail, n in details.most_common(40)
        },
        "raw_stacks": str(raw_path),
    }
    return result


def print_profile(result: dict[str, Any]) -> None:
    if "requests_per_sec" in result:
        print(
            f"\n== {result['scenario']}: {result['requests_per_sec']:.0f} req/s "
            f"({result['requests_per_sec_under_profiler']:.0f} under py-spy), server CPU "
            f"{result['server_cpu_us_per_request']:.0f} us/request, redis "
            f"{result['redis_cpu_us_per_request']:.0f} us/request, {result['samples']} samples"
        )
    else:
        print(
            f"\n== {result['scenario']}: {result['cpu_us_per_request_under_profiler']:.0f} us "
            f"CPU/request under py-spy, {result['samples']} samples"
        )
    for category, data in result["categories"].items():
        print(f"  {data['share']:6.1%} {data['us_per_request']:7.1f} us  {category}")
    print("  top innermost app frames -> library called:")
    for detail, data in list(result["top_app_frames"].items())[:25]:
        print(f"    {data['share']:6.1%} {data['us_per_request']:7.1f} us  {detail}")


def main() -> int:
    os.environ.setdefault("BENCH_TOOL", "wrk")
    cfg = Config.from_env()
    scenarios = os.environ.get("PROFILE_SCENARIOS", "bare,full_jwt,full_api_key").split(",")
    seconds = int(os.environ.get("PROFILE_SECONDS", "15"))
    rate = int(os.environ.get("PROFILE_RATE", "250"))
    out = Path(os.environ.get("PROFILE_OUT", ROOT / "bench/results/profile_full_chain.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    _ = parse_wrk  # re-exported for callers that want to parse their own runs

    if os.environ.get("PROFILE_MODE", "server") == "asgi":
        requests = int(os.environ.get("PROFILE_REQUESTS", "20000"))
        try:
            results = [profile_asgi(name.strip(), requests, rate, out.parent) for name in scenarios]
        except BenchError as exc:
            print(f"PROFILE FAILED: {exc}", file=sys.stderr)
            return 1
        for result in results:
            print_profile(result)
        out.write_text(json.dumps({"mode": "asgi", "profiles": results}, indent=2) + "\n")
        print(f"\nwrote {out}")
        return 0

    admin_password = secrets.token_urlsafe(18)
    common = _common_env(admin_password)
    redis = RedisServer()
    bare = _make_server({**common, **BARE_ENV})
    full = _make_server({**common, **FULL_ENV, "REDIS_URL": redis.url})
    results = []
    try:
        redis.start()
        bare.start()
        full.start()
        token = _login(full.url, admin_password)
        api_key = _create_api_key(full.url, token)
        assert bare.process is not None and full.process is not None
        assert redis.process is not None
        plan = {
            "bare": (bare.url, {}, bare.process.pid, None),
            "full_jwt": (
                full.url,
                {"Authorization": f"Bearer {token}"},
                full.process.pid,
                redis.process.pid,
            ),
            "full_api_key": (full.url, {"X-API-Key": api_key}, full.process.pid, redis.process.pid),
        }
        for name in scenarios:
            base, headers, pid, redis_pid = plan[name.strip()]
            result = profile_one(
                name.strip(),
                f"{base}{ROUTE}",
                headers,
                pid,
                redis_pid,
                cfg,
                seconds,
                rate,
                out.parent,
            )
            print_profile(result)
            results.append(result)
    except BenchError as exc:
        print(f"PROFILE FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in (full, bare):
            with contextlib.suppress(Exception):
                server.stop()
            server.log_path.unlink(missing_ok=True)
        redis.close()
    out.write_text(
        json.dumps(
            {"route": f"GET {ROUTE}", "seconds": seconds, "rate": rate, "profiles": results},
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
