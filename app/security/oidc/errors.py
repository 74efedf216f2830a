"""Why an external token was refused: a stable code (the problem's ``code``) and a detail."""

from __future__ import annotations


class OidcRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def keys_unavailable() -> OidcRefused:
    return OidcRefused(
        "oidc_unavailable",
        "The identity provider's signing keys cannot be fetched right now; retry shortly.",
    )


def unknown_key() -> OidcRefused:
    return OidcRefused(
        "token_unknown_key", "The token is signed with a key the issuer does not publish."
    )


def invalid(detail: str = "The access token is invalid.") -> OidcRefused:
    return OidcRefused("token_invalid", detail)
