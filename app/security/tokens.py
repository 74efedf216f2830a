"""JWT access tokens with python-jose, decoded strictly.

python-jose accepts a token with no ``aud`` unless told to require it (docs/decisions.md), so the
options are explicit, and the algorithm list holds exactly one algorithm of one family.

Every token carries ``jti`` (logout revokes that one token) and ``iat`` to the millisecond
(RFC 7519 allows a fractional NumericDate): a token issued before its user's last credential
change is refused (app/security/revocation.py), and a sign-in right after a change must
not be mistaken for one made before it. The HMAC key comes from app/security/keyring.py.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

from jose import ExpiredSignatureError, JWTError, jwt

from app.core.config import Settings
from app.security.principals import Principal


class TokenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


def issue_access_token(
    *, settings: Settings, key: str, subject: str, scopes: frozenset[str]
) -> IssuedToken:
    issued_ms = time.time_ns() // 1_000_000
    now = issued_ms // 1000
    lifetime = settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    claims: dict[str, object] = {
        "sub": subject,
        "scope": " ".join(sorted(scopes)),
        "iat": issued_ms / 1000,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    if settings.JWT_ISSUER:
        claims["iss"] = settings.JWT_ISSUER
    if settings.JWT_AUDIENCE:
        claims["aud"] = settings.JWT_AUDIENCE
    token = jwt.encode(claims, key, algorithm=settings.ALGORITHM)
    return IssuedToken(access_token=token, expires_in=lifetime)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    principal: Principal
    expires_at: float  # epoch seconds (the token's exp)
    jti: str = ""
    issued_at_ms: int = 0  # the token's iat in whole milliseconds


def decode_access_token(token: str, *, settings: Settings, key: str) -> VerifiedToken:
    options = {
        "require_exp": True,
        "require_sub": True,
        "require_iat": True,
        "require_jti": True,
        "require_aud": settings.JWT_AUDIENCE is not None,
        "require_iss": settings.JWT_ISSUER is not None,
        "verify_aud": settings.JWT_AUDIENCE is not None,
        "leeway": settings.JWT_LEEWAY_SECONDS,
    }
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.ALGORITHM],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            options=options,
        )
    except ExpiredSignatureError:
        raise TokenError("expired") from None
    except (JWTError, RecursionError):  # a deeply nested JSON header must not become a 500
        raise TokenError("invalid") from None
    subject = claims.get("sub")
    scope_claim = claims.get("scope", "")
    scopes = scope_claim.split() if isinstance(scope_claim, str) else []
    try:
        principal = Principal.from_id(subject, scopes) if isinstance(subject, str) else None
    except ValueError:
        principal = None
    jti, issued_at = claims.get("jti"), claims.get("iat")
    if principal is None or principal.kind != "user" or not isinstance(jti, str) or not jti:
        raise TokenError("invalid")
    if not isinstance(issued_at, int | float) or not math.isfinite(issued_at):
        raise TokenError("invalid")
    return VerifiedToken(
        principal=principal,
        expires_at=float(claims["exp"]),
        jti=jti,
        issued_at_ms=round(issued_at * 1000),
    )
