"""CPU time of each ASGI layer, and of the hot calls inside them, one request at a time.

Run with ``python -m bench.layer_costs``. For each variant (LAYER_VARIANTS, default
bare,full_jwt,full_api_key; any name from ``bench.asgi_microbench``) a
fresh child process builds the app from the variant's environment (same as
``bench.asgi_microbench``), runs the lifespan, and wraps every layer of the built middleware
stack with a timer: the CPU time (``time.process_time``, all threads) spent inside each
layer's ``__call__`` and inside the ``send`` it hands to the next layer. With one request in
flight, a layer's own cost is::

    (call time at its outer boundary - call time at its inner boundary)
  + (send time at its inner boundary - send time at its outer boundary)

so response-header work done in ``send`` wrappers is charged to the layer that owns the
wrapper, not to the endpoint that calls ``send``. Waiting on Redis is not CPU and is not
counted; Redis round trips cost only the client-side CPU they take in this process.

Hot calls are timed the same way (inclusive CPU per request): the rate limiter's
``limits`` calls, the authenticator, the access log's logger call, JWT decoding.

Per-request medians over MICRO_REQUESTS (3000) requests after MICRO_WARMUP (500).
LAYER_GC=off disables the cyclic GC in the children (its pauses land in whichever layer
happens to allocate). Each layer's number includes ~5 us of the timer's own overhead.
Writes bench/results/layer_costs.json.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.asgi_microbench import credential_headers
from bench.middleware_overhead import ROUTE, _git, machine_info

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "layer_costs.json"
VARIANTS = tuple(
    os.environ.get("LAYER_VARIANTS", "bare,full_jwt,full_api_key").replace(" ", "").split(",")
)

_clock = time.process_time
_calls: dict[str, float] = defaultdict(float)  # per-request accumulators
_sends: dict[str, float] = defaultdict(float)
_hot: dict[str, float] = defaultdict(float)


class _TimedLayer:
    def __init__(self, inner: Any, boundary: str) -> None:
        self.inner = inner
        self.boundary = boundary

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        boundary = self.boundary

        async def timed_send(message: Any) -> None:
            start = _clock()
            try:
                await send(message)
            finally:
                _sends[boundary] += _clock() - start

        start = _clock()
        try:
            await self.inner(scope, receive, timed_send)
        finally:
            _calls[boundary] += _clock() - start


def _time_async(label: str, func: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = _clock()
        try:
            return await func(*args, **kwargs)
        finally:
            _hot[label] += _clock() - start

    return wrapper


def _time_sync(label: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = _clock()
        try:
            return func(*args, **kwargs)
        finally:
            _hot[label] += _clock() - start

    return wrapper


class _TimedLogger:
    """Stands in for a module's structlog logger; times info/warning calls."""

    def __init__(self, inner: Any, label: str) -> None:
        self._inner = inner
        self._label = label

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in ("info", "warning", "debug", "error"):
            return _time_sync(self._label, attr)
        return attr


def _instrument_hot_calls(services: Any) -> None:
    import app.observability.logging as logging_setup
    import app.security.authenticator as authenticator_module

    # The access-log middleware takes this logger when the stack is built (first request).
    logging_setup._access_logger = _TimedLogger(
        logging_setup.access_logger(), "access_log: log.info (structlog, direct write)"
    )
    authenticator_module.decode_access_token = _time_sync(
        "auth: decode_access_token (python-jose)", authenticator_module.decode_access_token
    )
    authenticator = services.authenticator
    authenticator.authenticate = _time_async(
        "auth: Authenticator.authenticate (total)", authenticator.authenticate
    )
    store = authenticator._api_keys
    store.get_by_hash = _time_async("auth: ApiKeyStore.get_by_hash (Redis GET)", store.get_by_hash)
    limiter = services.rate_limiter
    limiter.check = _time_async("rate_limit: RequestRateLimiter.check (total)", limiter.check)
    strategy = limiter._limiter
    strategy.hit = _time_async("rate_limit: limits hit() (Redis script)", strategy.hit)
    strategy.get_window_stats = _time_async(
        "rate_limit: limits get_window_stats() (Redis script)", strategy.get_window_stats
    )


def _instrument_layers(app: Any) -> list[str]:
    boundaries = []
    layer = app.middleware_stack
    while True:
        inner = getattr(layer, "app", None)
        if inner is None or type(layer).__name__ in ("APIRouter", "Router"):
            break
        boundary = type(layer).__name__
        layer.app = _TimedLayer(inner, boundary)
        boundaries.append(boundary)  # boundary below `layer`, named after it
        layer = inner
    return boundaries


async def _child(credentials: str, warmup: int, requests: int) -> dict[str, Any]:
    import httpx
    from asgi_lifespan import LifespanManager

    from app.core.settings_loader import load_settings
    from app.main import create_app
    from app.services import build_services

    services = build_services(load_settings())  # from this process's environment
    app = create_app(services.settings, services=services)
    password = os.environ["ADMIN_PASSWORD"]
    async with LifespanManager(app) as manager:
        asgi = manager.app
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.get("/health/live")  # builds the middleware stack
            headers = await credential_headers(client, credentials, password)
        boundaries = _instrument_layers(app)
        _instrument_hot_calls(services)
        outer = app.middleware_stack

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        per_request: dict[str, list[float]] = defaultdict(list)
        statuses: dict[int, int] = {}
        for index in range(warmup + requests):
            _calls.clear()
            _sends.clear()
            _hot.clear()
            status = 0

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            scope = {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.4"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": ROUTE,
                "raw_path": ROUTE.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": list(headers),
                "client": ("127.0.0.1", 40000),
                "server": ("127.0.0.1", 8000),
                "state": {},
                "app": app,
            }
            start = _clock()
            await outer(scope, receive, send)
            total = _clock() - start
            if index < warmup:
                continue
            statuses[status] = statuses.get(status, 0) + 1
            per_request["total (whole stack)"].append(total)
            names = ["ServerErrorMiddleware (outermost)"] + boundaries[1:]
            for i, boundary in enumerate(boundaries):
                outer_call = total if i == 0 else _calls[boundaries[i - 1]]
                outer_send = 0.0 if i == 0 else _sends[boundaries[i - 1]]
                own = (outer_call - _calls[boundary]) + (_sends[boundary] - outer_send)
                per_request[f"layer: {names[i]}"].append(own)
            last = boundaries[-1]
            per_request[f"layer: router + endpoint (below {last})"].append(
                _calls[last] - _sends[last]
            )
            for label, value in _hot.items():
                per_request[label].append(value)
    if set(statuses) != {200}:
        raise RuntimeError(f"statuses other than 200: {statuses}")
    return {
        name: {
            "median_us": round(statistics.median(values) * 1e6, 1),
            "mean_us": round(statistics.fmean(values) * 1e6, 1),
        }
        for name, values in per_request.items()
    }


def child_main() -> int:
    result_out = os.fdopen(os.dup(1), "w")
    log = open(os.environ["MICRO_LOG"], "a")  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    sys.stdout = log
    import uvloop

    if os.environ.get("LAYER_GC") == "off":  # attribution check: GC pauses land anywhere
        import gc

        gc.disable()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(
            _child(
                os.environ["MICRO_CREDENTIALS"],
                int(os.environ["MICRO_WARMUP"]),
                int(os.environ["MICRO_REQUESTS"]),
            )
        )
    result_out.write(json.dumps(result) + "\n")
    result_out.flush()
    return 0


def parent_main() -> int:
    from bench.asgi_microbench import _variants, child_env
    from bench.middleware_overhead import _common_env
    from tests.support.redis_server import RedisServer

    os.environ.setdefault("MICRO_REQUESTS", "3000")
    os.environ.setdefault("MICRO_WARMUP", "500")
    variants = {v.name: v for v in _variants()}
    common = _common_env(secrets.token_urlsafe(18))
    common.pop("WORKERS", None)
    redis = RedisServer()
    results: dict[str, Any] = {}
    try:
        redis.start()
        for name in VARIANTS:
            env, log_path = child_env(variants[name], common, redis.url)
            env["MICRO_CHILD"] = "layers"
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "bench.layer_costs"],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
                log_tail = Path(log_path).read_text(errors="replace")[-3000:]
            finally:
                Path(log_path).unlink(missing_ok=True)
            if done.returncode != 0:
                print(f"{name} failed:\n{done.stderr}\n{log_tail}", file=sys.stderr)
                return 1
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        redis.close()
    for name, rows in results.items():
        print(f"\n== {name} (median CPU us per request, one request in flight)")
        for label, data in rows.items():
            print(f"  {data['median_us']:8.1f}  {label}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "benchmark": "layer_costs",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": _git("rev-parse", "HEAD"),
                "machine": machine_info(),
                "route": f"GET {ROUTE}",
                "method": "per-layer process CPU time, in-process ASGI, concurrency 1",
                "requests": int(os.environ["MICRO_REQUESTS"]),
                "variants": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(child_main() if os.environ.get("MICRO_CHILD") == "layers" else parent_main())
