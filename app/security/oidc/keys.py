"""A fetched JWKS as a lookup by ``kid``, and the rule binding each key to the algorithms it
may verify.

Only public signature keys are kept (RSA, EC, OKP; never ``oct``: a symmetric key in a JWKS
would let anyone who can read it sign). A token's ``alg`` must fit the key's type and curve, and
the key's own ``alg`` when it has one, so an RSA key is never used as an HMAC secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from jwt import PyJWK, PyJWTError

from app.security.oidc.errors import OidcRefused

log = structlog.get_logger(__name__)

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_DEFAULT_ALGORITHM = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def fits(jwk: dict[str, Any], alg: str) -> bool:
    """May this key verify a signature made with ``alg``?"""
    if "alg" in jwk and jwk["alg"] != alg:
        return False
    kty = jwk.get("kty")
    if alg in _RSA_ALGORITHMS:
        return kty == "RSA"
    if alg in _EC_CURVES:
        return kty == "EC" and jwk.get("crv") == _EC_CURVES[alg]
    if alg == "EdDSA":
        return kty == "OKP" and jwk.get("crv") in _OKP_CURVES
    return False


def _usable(jwk: Any) -> bool:
    if not isinstance(jwk, dict) or jwk.get("kty") not in _DEFAULT_ALGORITHM:
        return False
    if jwk.get("use", "sig") != "sig" or any(member in jwk for member in _PRIVATE_MEMBERS):
        return False
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return False
    try:  # the key material itself must load
        PyJWK(jwk, algorithm=jwk.get("alg") or _DEFAULT_ALGORITHM[jwk["kty"]])
    except (PyJWTError, ValueError, TypeError, KeyError):
        return False
    return True


def parse_key_set(document: Any) -> dict[str | None, dict[str, Any]]:
    """The usable signature keys of a JWKS document by kid; ValueError when there are none."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str | None, dict[str, Any]] = {}
    skipped = 0
    for jwk in document["keys"]:
        if _usable(jwk):
            keys.setdefault(jwk.get("kid"), jwk)
        else:
            skipped += 1
    if skipped:
        log.warning("oidc_keys_skipped", count=skipped)
    if not keys:
        raise ValueError("the JWKS holds no usable signature key")
    return keys


@dataclass(slots=True)
class KeySet:
    keys: dict[str | None, dict[str, Any]]
    fetched_at: float  # monotonic
    _prepared: dict[tuple[str | None, str], PyJWK] = field(default_factory=dict)

    def jwk(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self.keys) == 1:
            # A token without kid is matched only when there is no choice to make.
            return next(iter(self.keys.values()))
        return self.keys.get(kid)

    def verification_key(self, kid: str | None, alg: str) -> PyJWK:
        """The key bound to ``alg`` (PyJWT then verifies with exactly that algorithm)."""
        prepared = self._prepared.get((kid, alg))
        if prepared is not None:
            return prepared
        jwk = self.jwk(kid)
        if jwk is None or not fits(jwk, alg):
            raise OidcRefused(
                "token_algorithm_refused", "The token's algorithm does not fit its signing key."
            )
        prepared = PyJWK(jwk, algorithm=alg)
        self._prepared[(kid, alg)] = prepared
        return prepared
