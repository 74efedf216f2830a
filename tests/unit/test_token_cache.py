"""The verified-token cache honours each token's exp and its size bound."""

from __future__ import annotations

import time

from app.security.principals import Principal
from app.security.token_cache import VerifiedTokenCache
from app.security.tokens import VerifiedToken

ALICE = Principal(id="user:alice", kind="user", name="alice")
LIVE = time.time() + 3600


def test_a_cached_token_expires_with_its_exp() -> None:
    cache = VerifiedTokenCache()
    cache.put("live", VerifiedToken(ALICE, LIVE))
    cache.put("dead", VerifiedToken(ALICE, time.time() - 1))
    assert cache.get("live") == VerifiedToken(ALICE, LIVE)
    assert cache.get("dead") is None
    assert cache.get("never-seen") is None


def test_the_cache_is_bounded_and_keeps_recently_used_tokens() -> None:
    cache = VerifiedTokenCache(max_entries=2)
    future = time.time() + 60
    cache.put("a", VerifiedToken(ALICE, future))
    cache.put("b", VerifiedToken(ALICE, future))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", VerifiedToken(ALICE, future))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
