"""The OIDC_* settings (external identity providers), a group of their own mixed into Settings.

Only the raw values are parsed here (core imports nothing from security); app/security/oidc/
checks each provider fully when the app is built, and a bad one stops start-up there.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

# Asymmetric only: an HMAC algorithm would let anyone holding the IdP's public key sign.
OidcAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
OIDC_DEFAULT_ALGORITHMS: tuple[OidcAlgorithm, ...] = ("RS256", "ES256", "EdDSA")


class OidcSettings(BaseModel):
    OIDC_ISSUER: str | None = Field(
        None, description="Issuer URL whose access tokens are accepted (its 'iss'); unset = off."
    )
    OIDC_AUDIENCE: str | None = Field(
        None, description="aud required in the issuer's tokens (this API's identifier there)."
    )
    OIDC_JWKS_URL: str | None = Field(
        None, description="The issuer's JWKS URL; unset = read from its discovery document."
    )
    OIDC_ALGORITHMS: Annotated[list[OidcAlgorithm], NoDecode] = Field(
        default_factory=lambda: list(OIDC_DEFAULT_ALGORITHMS),
        description="Signature algorithms accepted from the issuer (asymmetric only).",
    )
    OIDC_ALIAS: str | None = Field(
        None,
        description="Short issuer name in principal ids (oidc:ALIAS:SUBJECT); "
        "unset = 12 hex digits of sha256(issuer).",
    )
    OIDC_SUBJECT_CLAIM: str = Field("sub", description="Claim naming the caller (Entra: oid).")
    OIDC_ROLES_CLAIM: str | None = Field(
        None, description="Dotted path of the roles claim, e.g. realm_access.roles; unset = none."
    )
    OIDC_TENANT_CLAIM: str | None = Field(
        None,
        description="Dotted path of the claim naming the caller's tenant; unset or absent in "
        "a token = the default tenant.",
    )
    OIDC_ROLE_SCOPES: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict,
        description='Scopes granted per IdP role, JSON {"role": ["agents:run", ...]}.',
    )
    OIDC_PROVIDERS: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description="Several issuers, JSON list of {issuer, audience, jwks_url, algorithms, "
        "alias, subject_claim, roles_claim, tenant_claim, role_scopes}; instead of the "
        "OIDC_ISSUER group.",
    )
    OIDC_JWKS_MIN_REFRESH_SECONDS: float = Field(
        30.0,
        ge=0,
        description="Fewest seconds between two JWKS fetches (an unknown kid refetches at most "
        "this often).",
    )
    OIDC_JWKS_CACHE_SECONDS: float = Field(
        300.0,
        gt=0,
        description="Age after which keys are refreshed in the background (the last good keys "
        "are served meanwhile and while the IdP is down).",
    )
    OIDC_HTTP_TIMEOUT_SECONDS: float = Field(
        3.0, gt=0, description="Timeout of one discovery or JWKS request."
    )

    @field_validator(
        "OIDC_ISSUER",
        "OIDC_AUDIENCE",
        "OIDC_JWKS_URL",
        "OIDC_ALIAS",
        "OIDC_ROLES_CLAIM",
        mode="before",
    )
    @classmethod
    def _oidc_empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("OIDC_ALGORITHMS", mode="before")
    @classmethod
    def _oidc_split_algorithms(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("OIDC_ROLE_SCOPES", "OIDC_PROVIDERS", mode="before")
    @classmethod
    def _oidc_parse_json(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            empty: list[Any] | dict[str, Any] = [] if info.field_name == "OIDC_PROVIDERS" else {}
            return json.loads(value) if value.strip() else empty
        return value
