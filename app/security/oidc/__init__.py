"""External identity providers: access tokens from configured OIDC issuers (Keycloak, Auth0,
Entra ID, Okta, Dex), verified against their published keys and mapped to our principals.

settings.py checks each provider, jwks.py fetches and caches its keys (keys.py binds a key to
the algorithms it may verify), claims.py maps claims and roles to scopes, verifier.py puts it
together.
"""

from app.security.oidc.errors import OidcRefused
from app.security.oidc.verifier import OidcVerifier, build_oidc_verifier

__all__ = ["OidcRefused", "OidcVerifier", "build_oidc_verifier"]
