"""Turn request credentials into a Principal. Used by the authentication middleware.

No credentials -> None (routes that need a principal answer 401 in their dependency).
Bad credentials -> AuthenticationFailed, answered 401 at once. One of our tokens or an API
key that verifies is then checked against its user (app/security/revocation.py): disabled,
deleted, signed out, issued before a credential change, expired key.
"""

from __future__ import annotations

from app.core.config import Settings
from app.security import api_keys as api_key_format
from app.security.accounts import principal_for_key
from app.security.keyring import Keyring
from app.security.oidc import OidcRefused, OidcVerifier
from app.security.principals import DEFAULT_TENANT, Principal
from app.security.revocation import CredentialRevoked, UserCheck
from app.security.tenants import TenantDirectory
from app.security.token_cache import VerifiedTokenCache
from app.security.tokens import TokenError, VerifiedToken, decode_access_token
from app.store.api_keys import ApiKeyStore


class AuthenticationFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Authenticator:
    def __init__(
        self,
        *,
        settings: Settings,
        api_keys: ApiKeyStore,
        keys: Keyring,
        user_check: UserCheck,
        tenants: TenantDirectory,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self._tenants = tenants
        self._settings = settings
        self._oidc = oidc
        self._api_keys = api_keys
        self._keys = keys  # the JWT key and API key pepper, read per call (settled at start)
        self._user_check = user_check
        self._tokens = VerifiedTokenCache()

    async def authenticate(
        self, *, authorization: str | None, api_key: str | None
    ) -> Principal | None:
        principal = await self._credentials(authorization=authorization, api_key=api_key)
        if principal is not None and principal.tenant != DEFAULT_TENANT:
            # A cached dict lookup on the hot path; a deleted tenant's principals stop here.
            if await self._tenants.get(principal.tenant) is None:
                raise AuthenticationFailed(
                    "tenant_unknown", "The credential's tenant does not exist."
                )
        return principal

    async def _credentials(
        self, *, authorization: str | None, api_key: str | None
    ) -> Principal | None:
        if api_key is not None:
            return await self._from_api_key(api_key.strip())
        if authorization is None:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthenticationFailed("bad_scheme", "Use 'Authorization: Bearer <token>'.")
        token = credentials.strip()
        if api_key_format.is_well_formed(token):
            # OpenAI's SDKs (and most HTTP clients) send their key as a bearer credential.
            return await self._from_api_key(token)
        if self._oidc is not None:
            # Routed by the token's unverified 'iss': a configured issuer's token is verified
            # only with that issuer's keys; every other token only as one of ours (HS*).
            external = await self._from_oidc(self._oidc, token)
            if external is not None:
                return external
        return await self.from_bearer(token)

    async def aclose(self) -> None:
        if self._oidc is not None:
            await self._oidc.aclose()

    @staticmethod
    async def _from_oidc(oidc: OidcVerifier, token: str) -> Principal | None:
        try:
            return await oidc.verify(token)
        except OidcRefused as exc:
            raise AuthenticationFailed(exc.reason, exc.detail) from None

    async def from_bearer(self, token: str) -> Principal:
        verified = self.verified_token(token)
        # After the signature, hit or miss: may this token's user still act? (revocation)
        try:
            return await self._user_check.check_token(verified)
        except CredentialRevoked as exc:
            raise AuthenticationFailed(exc.code, exc.detail) from None

    def verified_token(self, token: str) -> VerifiedToken:
        """One of our tokens with a valid signature and exp (cached); not yet user-checked."""
        if api_key_format.is_well_formed(token):
            raise AuthenticationFailed("bad_scheme", "Send API keys in the X-API-Key header.")
        cached = self._tokens.get(token)
        if cached is not None:
            return cached
        try:
            verified = decode_access_token(
                token, settings=self._settings, key=self._keys.signing_key
            )
        except TokenError as exc:
            detail = (
                "The access token has expired."
                if exc.reason == "expired"
                else ("The access token is invalid.")
            )
            raise AuthenticationFailed(f"token_{exc.reason}", detail) from None
        self._tokens.put(token, verified)
        return verified

    async def _from_api_key(self, key: str) -> Principal:
        if not api_key_format.is_well_formed(key):
            raise AuthenticationFailed("api_key_invalid", "The API key is invalid.")
        digest = api_key_format.hash_api_key(key, pepper=self._keys.api_key_pepper)
        record = await self._api_keys.get_by_hash(digest)
        if record is None:
            raise AuthenticationFailed("api_key_invalid", "The API key is invalid or revoked.")
        try:  # expired, or its creator disabled or deleted
            await self._user_check.check_api_key(record)
        except CredentialRevoked as exc:
            raise AuthenticationFailed(exc.code, exc.detail) from None
        return principal_for_key(record)
