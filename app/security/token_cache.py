"""Recently verified JWTs, so a client's next request skips the signature check.

python-jose costs ~190 us per decode here, a large share of a small request. A token that
verified once keeps a valid signature until its own ``exp``, so the verified claims are
cached until then, in a bounded LRU. Tokens that failed are never cached.

This caches the signature check only. Whether the token's user may still act (disabled,
deleted, credentials changed, signed out) is checked on every request after it, hit or
miss (app/security/revocation.py).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from app.security.tokens import VerifiedToken


class VerifiedTokenCache:
    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, VerifiedToken] = OrderedDict()
        self._max = max_entries

    def get(self, token: str) -> VerifiedToken | None:
        verified = self._entries.get(token)
        if verified is None:
            return None
        if time.time() >= verified.expires_at:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return verified

    def put(self, token: str, verified: VerifiedToken) -> None:
        self._entries[token] = verified
        self._entries.move_to_end(token)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
