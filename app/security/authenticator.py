"""Turn request credentials into a Principal. Used by the authentication middleware.

No credentials -> None (routes that need a principal answer 401 in their dependency).
Bad credentials -> AuthenticationFailed, answered 401 at once.
"""

from __future__ import annotations

from app.core.config import Settings
from app.security import api_keys as api_key_format
from app.security.principals import Principal
from app.security.token_cache import VerifiedTokenCache
from app.security.tokens import TokenError, decode_access_token
from app.store.api_keys import ApiKeyStore


class AuthenticationFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Authenticator:
    def __init__(self, *, settings: Settings, api_keys: ApiKeyStore) -> None:
        self._settings = settings
        self._api_keys = api_keys
        self._pepper = settings.api_key_pepper
        self._tokens = VerifiedTokenCache()

    async def authenticate(
        self, *, authorization: str | None, api_key: str | None
    ) -> Principal | None:
        if api_key is not None:
            return await self._from_api_key(api_key.strip())
        if authorization is None:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthenticationFailed("bad_scheme", "Use 'Authorization: Bearer <token>'.")
        return self.from_bearer(credentials.strip())

    def from_bearer(self, token: str) -> Principal:
        if api_key_format.is_well_formed(token):
            raise AuthenticationFailed("bad_scheme", "Send API keys in the X-API-Key header.")
        cached = self._tokens.get(token)
        if cached is not None:
            return cached
        try:
            verified = decode_access_token(token, settings=self._settings)
        except TokenError as exc:
            detail = (
                "The access token has expired."
                if exc.reason == "expired"
                else ("The access token is invalid.")
            )
            raise AuthenticationFailed(f"token_{exc.reason}", detail) from None
        self._tokens.put(token, verified)
        return verified.principal

    async def _from_api_key(self, key: str) -> Principal:
        if not api_key_format.is_well_formed(key):
            raise AuthenticationFailed("api_key_invalid", "The API key is invalid.")
        digest = api_key_format.hash_api_key(key, pepper=self._pepper)
        record = await self._api_keys.get_by_hash(digest)
        if record is None:
            raise AuthenticationFailed("api_key_invalid", "The API key is invalid or revoked.")
        return Principal.for_api_key(record.id, name=record.name, scopes=record.scopes)
