"""Verify access tokens from the configured external issuers.

``verify(token)`` returns None when the token's (unverified) ``iss`` is none of ours: the caller
then treats it as one of this service's own HS* tokens. A token that names a configured issuer
is verified only here, with that issuer's keys and algorithms, and refused (``OidcRefused``) if
anything is off: one token never meets both algorithm families.

Verified tokens are cached until their ``exp`` (an RSA check costs ~50 us, cheap but not free),
and a cached token dies with its key when the IdP stops publishing it.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from app.core.config import Settings
from app.security.oidc.claims import scopes_from_claims, tenant_from_claims
from app.security.oidc.errors import OidcRefused, invalid
from app.security.oidc.jwks import JwksCache
from app.security.oidc.settings import OidcProvider, providers_from_settings
from app.security.principals import Principal

MAX_TOKEN_CHARS = 16 * 1024
MAX_SUBJECT_CHARS = 256
_CACHE_ENTRIES = 10_000


def _segment(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


@dataclass(frozen=True, slots=True)
class Unverified:
    """A token's header and payload as sent, before any check: used only to pick the issuer."""

    header: dict[str, Any]
    issuer: str

    @classmethod
    def parse(cls, token: str) -> Unverified | None:
        parts = token.split(".")
        if len(token) > MAX_TOKEN_CHARS or len(parts) != 3:
            return None
        try:
            header, payload = _segment(parts[0]), _segment(parts[1])
        except (ValueError, binascii.Error, RecursionError):  # RecursionError: [[[[...]]]]
            return None
        if not isinstance(header, dict) or not isinstance(payload, dict):
            return None
        issuer = payload.get("iss")
        return cls(header=header, issuer=issuer) if isinstance(issuer, str) else None


@dataclass(frozen=True, slots=True)
class VerifiedExternal:
    principal: Principal
    expires_at: float  # epoch seconds (the token's exp)
    keys: JwksCache
    kid: str | None


def _why(exc: PyJWTError) -> str:
    if isinstance(exc, MissingRequiredClaimError):
        return f"The access token lacks the '{exc.claim}' claim."
    if isinstance(exc, InvalidAudienceError):
        return "The access token is not meant for this API (aud)."
    if isinstance(exc, ImmatureSignatureError):
        return "The access token is not valid yet."
    if isinstance(exc, InvalidSignatureError):
        return "The access token's signature does not verify."
    return "The access token is invalid."


class IssuerVerifier:
    """Tokens of one issuer: its algorithms, its keys, its audience, its claim mapping."""

    def __init__(self, provider: OidcProvider, *, keys: JwksCache, leeway: float) -> None:
        self.provider = provider
        self.keys = keys
        self._leeway = leeway
        self._required = ["exp", "iss", "aud", provider.subject_claim]

    async def verify(self, token: str, header: dict[str, Any]) -> VerifiedExternal:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.provider.algorithms:
            # Checked before any key lookup: 'none', HS256 (the IdP's public key used as an
            # HMAC secret) and anything unlisted never reach a key or a fetch.
            raise OidcRefused(
                "token_algorithm_refused",
                "The token's signature algorithm is not accepted for its issuer.",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise invalid()
        key = await self.keys.verification_key(kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.provider.audience,
                issuer=self.provider.issuer,
                leeway=self._leeway,
                options={"require": self._required, "enforce_minimum_key_length": True},
            )
        except ExpiredSignatureError:
            raise OidcRefused("token_expired", "The access token has expired.") from None
        except PyJWTError as exc:
            # One code; the detail names the failed check (the sender knows what it sent),
            # which is what an operator wiring up an IdP needs to see.
            raise invalid(_why(exc)) from None
        except (ValueError, TypeError, RecursionError):
            raise invalid() from None
        subject = claims.get(self.provider.subject_claim)
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
            raise invalid()
        principal = Principal.for_external(
            self.provider.principal_alias,
            subject,
            scopes_from_claims(claims, self.provider),
            tenant_from_claims(claims, self.provider),
        )
        return VerifiedExternal(principal, float(claims["exp"]), self.keys, kid)


class OidcVerifier:
    def __init__(self, issuers: list[IssuerVerifier], *, http: httpx.AsyncClient) -> None:
        self._issuers = {issuer.provider.issuer: issuer for issuer in issuers}
        self._http = http
        self._verified: OrderedDict[str, VerifiedExternal] = OrderedDict()

    @property
    def issuers(self) -> list[str]:
        return list(self._issuers)

    async def verify(self, token: str) -> Principal | None:
        cached = self._cached(token)
        if cached is not None:
            return cached
        unverified = Unverified.parse(token)
        if unverified is None:
            return None
        issuer = self._issuers.get(unverified.issuer)
        if issuer is None:
            return None
        verified = await issuer.verify(token, unverified.header)
        self._remember(token, verified)
        return verified.principal

    def _cached(self, token: str) -> Principal | None:
        verified = self._verified.get(token)
        if verified is None:
            return None
        if time.time() >= verified.expires_at or not verified.keys.publishes(verified.kid):
            del self._verified[token]
            return None
        self._verified.move_to_end(token)
        return verified.principal

    def _remember(self, token: str, verified: VerifiedExternal) -> None:
        self._verified[token] = verified
        if len(self._verified) > _CACHE_ENTRIES:
            self._verified.popitem(last=False)

    async def aclose(self) -> None:
        for issuer in self._issuers.values():
            await issuer.keys.aclose()
        await self._http.aclose()


def build_oidc_verifier(settings: Settings) -> OidcVerifier | None:
    """The verifier for the configured issuers, or None when OIDC is off (ConfigError if bad).

    No I/O here: keys are fetched on first use, so a service whose IdP is down still starts."""
    providers = providers_from_settings(settings)
    if not providers:
        return None
    timeout = settings.OIDC_HTTP_TIMEOUT_SECONDS
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=len(providers) * 2),
        headers={"User-Agent": "agent-service-oidc"},
    )
    issuers = [
        IssuerVerifier(
            provider,
            keys=JwksCache(
                provider,
                http=http,
                min_refresh=settings.OIDC_JWKS_MIN_REFRESH_SECONDS,
                max_age=settings.OIDC_JWKS_CACHE_SECONDS,
                timeout=timeout,
                require_https=settings.is_production,
            ),
            leeway=settings.JWT_LEEWAY_SECONDS,
        )
        for provider in providers
    ]
    return OidcVerifier(issuers, http=http)
