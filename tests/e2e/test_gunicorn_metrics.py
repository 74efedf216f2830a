"""The real server under gunicorn with 2 uvicorn workers: /metrics adds up across workers."""

from __future__ import annotations

import re

import httpx

from tests.support.server_process import ServerProcess

REQUESTS = 120


def _total(metrics_text: str, route: str, status: str) -> float:
    pattern = re.compile(
        r'^http_requests_total\{method="GET",route="'
        + re.escape(route)
        + r'",status="'
        + status
        + r'"\} ([0-9.e+]+)$',
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(metrics_text))


def test_metrics_total_adds_up_across_two_workers() -> None:
    with ServerProcess(gunicorn=True, workers=2) as server:
        # A new connection per request so the kernel spreads them over both workers.
        for i in range(REQUESTS):
            with httpx.Client(base_url=server.url) as client:
                assert client.get(f"/v1/nowhere/{i}").status_code == 404
        served_by = {line["pid"] for line in server.json_lines() if line.get("event") == "request"}
        assert len(served_by) == 2, "both workers must have served requests"
        # Whichever worker answers the scrape, it reports the sum over both.
        for _ in range(6):
            with httpx.Client(base_url=server.url) as client:
                text = client.get("/metrics").text
            assert _total(text, "__unmatched__", "404") == REQUESTS
            assert "/v1/nowhere/1" not in text  # raw paths never become labels
            assert text.count("\nhttp_requests_in_flight ") == 1  # livesum: one series
        assert server.stop() == 0
