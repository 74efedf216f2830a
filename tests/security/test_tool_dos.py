"""Finding 1: a 26-character question froze the whole process through the calculator tool.

``What is (((9**99)**99)**99)**5?`` to ``assistant`` (the offline model passes arithmetic
straight to the calculator; a real model can be prompt-injected into it) held the GIL for
seconds in one big-int ``**``, so ``/health/live`` stopped answering, and the result, over
4,300 digits, raised ``ValueError`` and ended the run with a 500. The calculator now bounds
its work before doing it, and every tool error is a failure the agent sees.

Against a real server process: hostile towers are evaluated while a second thread polls
``/health/live`` over one persistent connection; every probe must answer within 50 ms, and
each run must end 200 with the tool's failure in the agent's answer.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.security.conftest import bearer, login
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.xdist_group("tool-dos")  # one server for the module

LIVENESS_BUDGET_SECONDS = 0.050  # what 95 % of probes must meet while hostile input runs
# The slowest single probe may exceed the budget only by what a shared 2-core CI machine
# costs in scheduling (another test worker is busy beside us); a frozen loop costs seconds
# (4-7 s measured on the old calculator), far past this.
STALL_SECONDS = 0.250
PROBE_PAUSE_SECONDS = 0.005  # between probes: continuous, without hogging the shared CPUs
TAIL_PROBES = 20
HOSTILE = [
    "What is (((9**99)**99)**99)**5?",  # the review's input: ~15 million bits
    "What is 9**9**9**9?",  # right-associative: an exponent with 370 million digits
    "What is ((2**4000)*(2**4000))*((2**4000)*(2**4000))*(2**4000)?",  # a product tower
    "What is (10**4300)*(10**4300)?",  # past the 4,300 digits str() allows
    "What is 99999**99999**9 % 7?",  # a huge power hidden under a cheap-looking modulo
    "What is -(7**7**7)//3?",  # under a unary minus and a floor division
]


@dataclass
class Prober:
    """Polls /health/live on one keep-alive connection and records each round trip."""

    url: str
    samples: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            client.get("/health/live")  # open the connection before measuring
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = client.get("/health/live").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                self.samples.append((started, time.perf_counter() - started))
                if status != 200:
                    self.failures.append(f"status {status}")
                time.sleep(PROBE_PAUSE_SECONDS)

    def stop(self) -> None:
        self._stop.set()

    def during(self, start: float, end: float) -> list[float]:
        return [took for began, took in self.samples if start <= began <= end]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # One uvicorn process: a frozen event loop (or a held GIL) shows directly.
    with ServerProcess() as running:
        yield running


@pytest.fixture
def prober(server: ServerProcess) -> Iterator[Prober]:
    probe = Prober(server.url)
    thread = threading.Thread(target=probe.run, name="liveness-prober", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while len(probe.samples) < 10 and time.monotonic() < deadline:  # warmed up, measuring
        time.sleep(0.01)
    try:
        yield probe
    finally:
        probe.stop()
        thread.join(timeout=15)


def test_hostile_arithmetic_is_refused_while_liveness_keeps_answering(
    server: ServerProcess, prober: Prober
) -> None:
    headers = bearer(login(server.url))
    windows: list[tuple[str, float, float]] = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        # Warm-up (first-request imports), so the windows below measure the hostile inputs.
        assert client.post("/v1/agents/assistant/invoke", json={"input": "1+1"}).is_success
        for question in HOSTILE:
            started = time.perf_counter()
            response = client.post("/v1/agents/assistant/invoke", json={"input": question})
            windows.append((question, started, time.perf_counter()))
            # The run survives: 200, and the agent's answer reports the tool's failure.
            assert response.status_code == 200, (question, response.status_code, response.text)
            output = response.json()["output"]
            assert output.startswith("The calculator tool failed: error:"), (question, output)
        # Ordinary arithmetic still works after the hostile ones.
        fine = client.post("/v1/agents/assistant/invoke", json={"input": "What is 2**100?"})
        assert fine.json()["output"] == f"The result is {2**100}."
    # Work left running after a run ended (a tool thread past its timeout still holds the
    # GIL) would show after the last window: keep probing a little longer.
    last_end = windows[-1][2]
    deadline = time.monotonic() + 5
    while len(prober.during(last_end, math.inf)) < TAIL_PROBES and time.monotonic() < deadline:
        time.sleep(0.01)
    prober.stop()
    assert prober.failures == []
    during: list[float] = []
    for question, start, end in windows:
        probes = prober.during(start, end)
        assert probes, f"no liveness probe ran while {question!r} was evaluated"
        assert max(probes) <= STALL_SECONDS, (
            f"/health/live stalled {max(probes) * 1000:.0f} ms while {question!r} was evaluated"
        )
        during.extend(probes)
    p95 = sorted(during)[int(len(during) * 0.95)]
    assert p95 <= LIVENESS_BUDGET_SECONDS, f"/health/live p95 {p95 * 1000:.0f} ms"
    after = prober.during(last_end, math.inf)
    assert len(after) >= TAIL_PROBES
    assert max(after) <= STALL_SECONDS, (
        f"/health/live stalled {max(after) * 1000:.0f} ms after the hostile runs ended"
    )
