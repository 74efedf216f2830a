"""Webhook deliveries across real processes: an API replica (WORKER_ENABLED=false) queues a
run's delivery, `agent-service worker` processes deliver it, all on a private redis-server.
A worker killed (SIGKILL) in the middle of a delivery loses nothing: after the delivery's
lease another worker sends the same message (same `webhook-id`, same body) again, and the
receiver, which verifies every signature with the `standardwebhooks` package, accepts it
once."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.e2e.test_tasks_workers import ClusterFactory, _auth
from tests.e2e.test_tasks_workers import cluster as cluster  # the fixture, shared

pytestmark = pytest.mark.e2e

TIMEOUT_SECONDS = 3  # one attempt's bound; the lease is this + 5 s


class HangingOnceReceiver:
    """A receiver whose first request never gets an answer (until the receiver closes); every
    later one is answered 200. Records each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.first_arrived = threading.Event()
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                owner.requests.append((headers, body))
                if len(owner.requests) == 1:
                    owner.first_arrived.set()
                    owner._release.wait(60)  # the worker dies while this one waits
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def __enter__(self) -> HangingOnceReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def _deliveries(api_url: str, auth: dict[str, str], hook_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{api_url}/v1/webhooks/{hook_id}/deliveries", headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_worker_killed_mid_delivery_loses_nothing(cluster: ClusterFactory) -> None:
    c = cluster(
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
        WEBHOOK_POLL_SECONDS="0.1",
        WEBHOOK_BACKOFF_SECONDS="0.1",
    )
    doomed = c.worker()
    api = c.api()
    doomed.wait_ready()
    auth = _auth(api)
    with HangingOnceReceiver() as receiver:
        created = httpx.post(
            f"{api.url}/v1/webhooks",
            json={"url": receiver.url, "events": ["run.completed"]},
            headers=auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        invoked = httpx.post(
            f"{api.url}/v1/agents/chat/invoke",
            json={"input": "Deliver this, whatever happens"},
            headers=auth,
            timeout=30,
        )
        assert invoked.status_code == 200, invoked.text
        run_id = invoked.json()["run_id"]
        assert receiver.first_arrived.wait(20), "the worker never attempted the delivery"
        doomed.kill()  # mid-delivery: its attempt never ends and its outcome is never written
        killed_at = time.monotonic()
        [pending] = _deliveries(api.url, auth, hook["id"])
        assert pending["status"] == "pending" and pending["attempts"] == 0

        c.worker().wait_ready()
        deadline = time.monotonic() + TIMEOUT_SECONDS + 5 + 20
        while len(receiver.requests) < 2:
            assert time.monotonic() < deadline, "the delivery was lost with its worker"
            time.sleep(0.05)
        redelivered_in = time.monotonic() - killed_at
        while _deliveries(api.url, auth, hook["id"])[0]["status"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # nothing more comes: it was delivered once
        requests = list(receiver.requests)

    assert len(requests) == 2, [headers["webhook-id"] for headers, _ in requests]
    (hung_headers, hung_body), (headers, body) = requests
    assert headers["webhook-id"] == hung_headers["webhook-id"]  # the same message, again
    assert body == hung_body
    payload = StandardWebhook(hook["secret"]).verify(body, headers)
    assert payload["type"] == "run.completed" and payload["data"]["run_id"] == run_id
    # The lease (timeout + 5 s) had to run out first; then the rescuer's poll took it.
    assert redelivered_in < TIMEOUT_SECONDS + 5 + 10, redelivered_in
    [delivered] = _deliveries(api.url, auth, hook["id"])
    assert delivered["status"] == "delivered" and delivered["id"] == headers["webhook-id"]
    assert delivered["attempts"] == 1  # the killed worker's attempt left no trace but the POST
