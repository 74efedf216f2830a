"""Bearer tokens that are not even JSON-shaped: always a 401 problem, never a 500.

A token whose header is deeply nested JSON made python-jose raise RecursionError, which
reached the client as a 500 (found while testing the OIDC routing, where an unverified
``iss`` is read before any signature check)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server_process import ServerProcess

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = pytest.mark.xdist_group("token-parsing")


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as running:
        yield running


@pytest.mark.parametrize(
    "token",
    [
        f"{_segment(_nested(2000))}.{_segment(b'{}')}.c2ln",  # nested header
        _segment(b'{"alg":"HS256"}') + "." + _segment(_nested(2000)) + ".c2ln",  # nested claims
        f"{_segment(b'[' * 3000)}.e30.c2ln",  # unterminated arrays
        "a.b.c",
        "....",
    ],
)
def test_a_malformed_bearer_token_is_a_401_problem(server: ServerProcess, token: str) -> None:
    response = httpx.get(
        f"{server.url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "token_invalid"
