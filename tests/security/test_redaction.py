"""Finding 7: redaction bypass through percent-encoding (and the log hygiene around it).

``?%74oken=<jwt>`` on a WebSocket URL authenticates (the app percent-decodes the query) and the
full token was logged by ``uvicorn.error``'s handshake line, which only masked a literal
``token=``. Redaction now matches after percent-decoding, and server log lines lose their query
strings whole. Also: a handshake refused with 401 is access-logged as 401, not 500. Checked by
reading the log output of a real uvicorn process and of a real gunicorn master with a worker.
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from app.observability.redaction import REDACTED, redact_value
from tests.security.conftest import login
from tests.support.server_process import ServerProcess

WS_PATH = "/v1/agents/chat/ws"


def _percent_encoded(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode())


def test_credentials_are_masked_after_percent_decoding() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyOmFkbWluIn0.c2lnbmF0dXJlLXZhbHVl"
    for text in (
        f"GET /ws?%74oken={_percent_encoded(jwt)}",
        f"GET /ws?tok%2565n={_percent_encoded(jwt)}",  # encoded twice
        f"GET /ws?api%5Fkey=ask_{_percent_encoded('abcdefgh_0123456789abcdefXYZ')}",
    ):
        masked = redact_value("event", text)
        assert REDACTED in masked, masked
        assert jwt not in masked and _percent_encoded(jwt) not in masked
        assert "0123456789abcdef" not in masked
        assert "%30%31%32" not in masked


@pytest.mark.parametrize("gunicorn", [False, True], ids=["uvicorn", "gunicorn"])
def test_tokens_in_websocket_urls_never_reach_the_server_log(gunicorn: bool) -> None:
    with ServerProcess(gunicorn=gunicorn, workers=1) as server:
        token = login(server.url)
        encoded = _percent_encoded(token)
        base = f"ws://127.0.0.1:{server.port}{WS_PATH}"
        # Each spelling authenticates: the app decodes the query string.
        for query in (f"?%74oken={token}", f"?token={encoded}", f"?%74%6F%6B%65%6E={encoded}"):
            with connect(base + query) as ws:
                ws.send(json.dumps({"type": "start", "input": "hi"}))
                while json.loads(ws.recv(timeout=10))["type"] not in ("run_completed", "error"):
                    pass
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{base}?%74oken={token}x").close()
        assert refused.value.response.status_code == 401
        server.stop()
        logs = server.logs()
        events = server.json_lines()

    for secret in (token, encoded, token.split(".")[2], encoded[-60:]):
        assert secret not in logs
    handshakes = [
        e["event"]
        for e in events
        if e.get("logger") == "uvicorn.error" and "WebSocket" in str(e.get("event"))
    ]
    assert len(handshakes) == 4, handshakes  # three accepted, one refused
    assert all(f'{WS_PATH}"' in line and "?" not in line for line in handshakes), handshakes
    assert "%74oken" not in logs
    socket_requests = [
        e for e in events if e.get("event") == "request" and e.get("path") == WS_PATH
    ]
    assert sorted(e["status"] for e in socket_requests) == [101, 101, 101, 401]
