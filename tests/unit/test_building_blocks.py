"""Small pieces with behaviour of their own: breaker, route table, API key format."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from app.core.circuit_breaker import CircuitBreaker
from app.core.routing import UNMATCHED_ROUTE, RouteTable
from app.security.api_keys import generate_api_key, hash_api_key, is_well_formed


def test_breaker_opens_after_threshold_and_probes_after_timeout() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=0.05)
    assert breaker.allow()
    assert breaker.record_failure() is False
    assert breaker.record_failure() is True  # this one opened it
    opened = breaker.state  # a snapshot: mypy would keep `breaker.state` narrowed to "open"
    assert opened == "open" and not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()  # the single probe
    assert not breaker.allow()  # others keep skipping while the probe runs
    assert breaker.record_failure() is True  # failed probe re-opens
    time.sleep(0.06)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_route_table_matches_templates_not_paths() -> None:
    table = RouteTable()
    table.add("/v1/sessions/{session_id}", {"GET", "DELETE"})
    table.add("/v1/sessions", {"GET", "POST"})
    table.add("/v1/agents/{agent}/ws", None)
    assert table.match(scope_type="http", method="GET", path="/v1/sessions/abc") == (
        "/v1/sessions/{session_id}"
    )
    assert table.match(scope_type="http", method="PUT", path="/v1/sessions/abc") == (
        "/v1/sessions/{session_id}"  # 405 still labelled by its route
    )
    assert table.match(scope_type="websocket", method="", path="/v1/agents/chat/ws") == (
        "/v1/agents/{agent}/ws"
    )
    assert table.match(scope_type="http", method="GET", path="/v1/agents/chat/ws") == (
        UNMATCHED_ROUTE
    )
    assert table.match(scope_type="http", method="GET", path="/wp-login.php") == UNMATCHED_ROUTE


@given(st.text(min_size=1, max_size=60))
def test_route_table_never_labels_by_raw_path(path: str) -> None:
    table = RouteTable()
    table.add("/v1/items/{item_id}", {"GET"})
    label = table.match(scope_type="http", method="GET", path="/" + path)
    assert label in ("/v1/items/{item_id}", UNMATCHED_ROUTE)


def test_api_keys_are_unique_well_formed_and_hashed_with_a_pepper() -> None:
    keys = {generate_api_key().plaintext for _ in range(200)}
    assert len(keys) == 200
    key = next(iter(keys))
    assert is_well_formed(key)
    assert not is_well_formed(key + "x") and not is_well_formed("Bearer " + key)
    assert hash_api_key(key, pepper=b"a") != hash_api_key(key, pepper=b"b")
    assert len(hash_api_key(key, pepper=b"a")) == 64
