"""One issuer's signing keys: discovered, fetched, cached, refreshed without hurting anyone.

- A known ``kid`` is answered from memory. Keys older than ``max_age`` are refreshed in the
  background while the old ones keep serving, so a key the IdP retired stops working soon.
- An unknown ``kid`` (a rotation, or an attacker's made-up one) fetches again, at most once per
  ``min_refresh`` seconds; the rest are refused at once, so junk tokens cannot make us hammer the
  IdP.
- One fetch at a time (single flight): concurrent callers share it, and a caller that goes away
  does not cancel it for the others.
- A failed fetch keeps the last good keys: the IdP being down only matters to new keys.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from jwt import PyJWK

from app.security.oidc.errors import keys_unavailable, unknown_key
from app.security.oidc.keys import KeySet, parse_key_set
from app.security.oidc.settings import OidcProvider

log = structlog.get_logger(__name__)

MAX_DOCUMENT_BYTES = 512 * 1024  # a JWKS is a few KiB; anything bigger is not one


class FetchFailed(Exception):
    pass


class JwksCache:
    def __init__(
        self,
        provider: OidcProvider,
        *,
        http: httpx.AsyncClient,
        min_refresh: float,
        max_age: float,
        timeout: float,
        require_https: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._http = http
        self._min_refresh = min_refresh
        self._max_age = max_age
        self._timeout = timeout
        self._require_https = require_https
        self._clock = clock
        self._keys: KeySet | None = None
        self._jwks_url: str | None = provider.jwks_url
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    def publishes(self, kid: str | None) -> bool:
        """Is this key still in the current set? (a cached token dies with its key)"""
        return self._keys is not None and self._keys.jwk(kid) is not None

    async def verification_key(self, kid: str | None, alg: str) -> PyJWK:
        keys = self._keys
        if keys is not None and keys.jwk(kid) is not None:
            if self._clock() - keys.fetched_at >= self._max_age:
                self._start_fetch()  # stale: refresh behind the scenes, serve what we have
            return keys.verification_key(kid, alg)
        fetch = self._start_fetch()
        if fetch is not None:
            await asyncio.shield(fetch)  # the fetch outlives a caller that disconnects
        keys = self._keys
        if keys is None:
            raise keys_unavailable()
        if keys.jwk(kid) is None:
            raise unknown_key()
        return keys.verification_key(kid, alg)

    async def aclose(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)

    # -- fetching ---------------------------------------------------------------------------
    def _start_fetch(self) -> asyncio.Task[None] | None:
        """The fetch in flight, a new one if the interval allows, else None."""
        if self._inflight is not None:
            return self._inflight
        now = self._clock()
        if self._last_attempt is not None and now - self._last_attempt < self._min_refresh:
            return None
        self._last_attempt = now
        task = asyncio.create_task(self._fetch(), name=f"oidc-jwks {self._provider.issuer}")
        self._inflight = task
        task.add_done_callback(self._fetch_done)
        return task

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> None:
        issuer = self._provider.issuer
        try:
            url = self._jwks_url or await self._discover()
            keys = parse_key_set(await self._get_json(url))
        except (FetchFailed, httpx.HTTPError, TimeoutError, ValueError, RecursionError) as exc:
            # Keep the last good keys; the next attempt may come after min_refresh.
            if self._provider.jwks_url is None:
                self._jwks_url = None  # discover again: the IdP may have moved its JWKS
            log.warning(
                "oidc_keys_fetch_failed",
                issuer=issuer,
                error=type(exc).__name__,
                reason=str(exc)[:200],
                serving_cached=self._keys is not None,
            )
            return
        self._keys = KeySet(keys, fetched_at=self._clock())
        log.info("oidc_keys_fetched", issuer=issuer, kids=sorted(str(kid) for kid in keys))

    async def _discover(self) -> str:
        issuer = self._provider.issuer
        document = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(document, dict):
            raise FetchFailed("the discovery document is not a JSON object")
        # OIDC Discovery 4.3: the document must name the very issuer we asked about.
        if document.get("issuer") != issuer:
            raise FetchFailed("the discovery document names another issuer")
        jwks_url = document.get("jwks_uri")
        if not isinstance(jwks_url, str) or urlsplit(jwks_url).scheme not in ("https", "http"):
            raise FetchFailed("the discovery document has no http(s) jwks_uri")
        if self._require_https and urlsplit(jwks_url).scheme != "https":
            raise FetchFailed("the discovered jwks_uri is not https")
        self._jwks_url = jwks_url
        return jwks_url

    async def _get_json(self, url: str) -> Any:
        # One deadline for the whole exchange: httpx's timeouts are per read, and an IdP
        # dripping one byte at a time would otherwise hold the fetch (and its callers).
        async with asyncio.timeout(self._timeout):
            headers = {"Accept": "application/json"}
            async with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise FetchFailed(f"GET {url} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise FetchFailed(f"GET {url}: more than {MAX_DOCUMENT_BYTES} bytes")
        return json.loads(body)
