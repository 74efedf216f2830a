"""External identity providers: access tokens from configured OIDC issuers.

Real server processes are configured with OIDC_* pointing at tests/support/fake_idp.py, a real
HTTP server in this process that serves discovery and a JWKS, rotates keys, answers slowly and
goes down. The attacks: a token from an issuer nobody configured, algorithm confusion (HS256
with the IdP's public key as the secret, 'none', algorithms off the list), missing or wrong
claims, expired tokens and retired keys, made-up key ids to make the server hammer the IdP, and
the IdP being down or slow.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.settings_loader import ConfigError
from app.security.oidc.claims import scopes_from_claims
from app.security.oidc.jwks import JwksCache
from app.security.oidc.settings import OidcProvider, providers_from_settings
from app.security.principals import Principal
from tests.e2e.conftest import login
from tests.security.conftest import bearer
from tests.support.fake_idp import FakeIdP, SigningKey, new_key
from tests.support.server_process import ServerProcess

# One worker runs the module: its servers start once (module fixtures), not per worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("oidc")]

AUDIENCE = "agent-service"
ROLE_SCOPES = {
    "agent-user": ["agents:run", "tasks:read", "tasks:write"],
    "auditor": ["sessions:read"],
}
# Off so that the dozens of refused tokens below measure the OIDC rules, not a limiter.
NO_LIMITS = {"RATE_LIMIT_ENABLED": "false", "AUTH_FAILURE_LIMIT": "100000/minute"}


def me(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/auth/me", headers=bearer(token), timeout=10)


def refused_with(response: httpx.Response, code: str) -> bool:
    return (
        response.status_code == 401
        and response.headers["content-type"].startswith("application/problem+json")
        and response.json()["code"] == code
    )


def issuer_hash(issuer: str) -> str:
    return hashlib.sha256(issuer.encode()).hexdigest()[:12]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], *, hmac_secret: bytes | None) -> str:
    """A token built by hand: PyJWT itself refuses to sign HS256 with a public key."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = b""
    if hmac_secret is not None:
        signature = hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def wait_for(predicate: Any, *, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def wait_past_refresh_interval(idp: FakeIdP, seconds: float) -> None:
    """Rotation is refetched at most once per interval: wait until the last fetch is that old."""
    last = idp.last_fetch_at(idp.jwks_path)
    if last is not None:
        time.sleep(max(0.0, last + seconds + 0.05 - time.monotonic()))


# --- one server, two configured issuers (OIDC_PROVIDERS), one stranger ----------------------


@pytest.fixture(scope="module")
def corp() -> Iterator[FakeIdP]:
    with FakeIdP(audience=AUDIENCE, realm="/realms/corp") as idp:
        for alg in ("RS256", "ES256", "EdDSA"):
            idp.add_key(alg)
        yield idp


@pytest.fixture(scope="module")
def partner() -> Iterator[FakeIdP]:
    with FakeIdP(audience="api://agent-service", realm="/partner/v2.0") as idp:
        idp.add_key("RS256")
        yield idp


@pytest.fixture(scope="module")
def stranger() -> Iterator[FakeIdP]:
    with FakeIdP(audience=AUDIENCE, realm="/realms/corp") as idp:
        idp.add_key("RS256")
        yield idp


@pytest.fixture(scope="module")
def server(corp: FakeIdP, partner: FakeIdP) -> Iterator[ServerProcess]:
    providers = [
        {
            "issuer": corp.issuer,  # keys found through discovery
            "audience": AUDIENCE,
            "alias": "corp",
            "roles_claim": "realm_access.roles",  # Keycloak
            "tenant_claim": "org",  # absent: the default tenant
            "role_scopes": ROLE_SCOPES,
        },
        {
            "issuer": partner.issuer,
            "audience": "api://agent-service",
            "jwks_url": partner.jwks_url,  # explicit, no discovery
            "algorithms": ["RS256"],
            "subject_claim": "oid",  # Entra ID
            "roles_claim": "roles",
            "role_scopes": {"Agents.Run": ["agents:run"]},
        },
    ]
    env = {
        **NO_LIMITS,
        "OIDC_PROVIDERS": json.dumps(providers),
        "OIDC_JWKS_MIN_REFRESH_SECONDS": "300",
    }
    with ServerProcess(env=env) as process:
        yield process


def test_tokens_signed_with_rs256_es256_and_eddsa_are_accepted_as_a_namespaced_principal(
    server: ServerProcess, corp: FakeIdP
) -> None:
    for key in corp.published:
        token = corp.token(
            key=key,
            sub="alice",
            scope="openid profile sessions:write",
            realm_access={"roles": ["agent-user", "unmapped-role"]},
        )
        response = me(server, token)
        assert response.status_code == 200, (key.alg, response.text)
        assert response.json() == {
            "id": "oidc:corp:alice",
            "kind": "external",
            "name": "alice",
            # scope claim (our names only) + the roles mapped by role_scopes
            "scopes": ["agents:run", "sessions:write", "tasks:read", "tasks:write"],
            "tenant": "default",
        }


def test_the_same_subject_at_two_issuers_is_two_principals(
    server: ServerProcess, corp: FakeIdP, partner: FakeIdP
) -> None:
    from_corp = me(server, corp.token(sub="alice"))
    from_partner = me(server, partner.token(oid="alice", roles=["Agents.Run"]))
    assert from_corp.status_code == from_partner.status_code == 200, from_partner.text
    assert from_corp.json()["id"] == "oidc:corp:alice"
    assert from_partner.json()["id"] == f"oidc:{issuer_hash(partner.issuer)}:alice"
    assert from_partner.json()["scopes"] == ["agents:run"]


def test_a_token_from_an_issuer_nobody_configured_is_refused_without_contacting_it(
    server: ServerProcess, corp: FakeIdP, stranger: FakeIdP
) -> None:
    assert me(server, corp.token(sub="mallory")).status_code == 200
    # Same claims, same kid scheme, but the stranger's issuer URL: it is not ours.
    response = me(server, stranger.token(sub="mallory", aud=AUDIENCE))
    assert refused_with(response, "token_invalid"), response.text
    # And the same token claiming corp's issuer: signed by a key corp does not publish.
    impostor = stranger.token(sub="mallory", iss=corp.issuer)
    assert refused_with(me(server, impostor), "token_unknown_key")
    assert stranger.hits == []  # no request ever went to an issuer we were not told about


def test_algorithm_confusion_none_and_unlisted_algorithms_are_refused_before_any_key_lookup(
    server: ServerProcess, corp: FakeIdP, partner: FakeIdP
) -> None:
    rsa_key = next(key for key in corp.published if key.alg == "RS256")
    assert me(server, corp.token(key=rsa_key)).status_code == 200
    fetches = corp.fetches(corp.jwks_path)
    now = int(time.time())
    claims = {"iss": corp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}
    header = {"typ": "JWT", "kid": rsa_key.kid}
    public_jwk = json.dumps(rsa_key.public_jwk()).encode()
    attacks = {
        # The classic: HS256 keyed with the IdP's public key, which anyone can download.
        "hs256-public-pem": forged(
            {**header, "alg": "HS256"}, claims, hmac_secret=rsa_key.public_pem()
        ),
        "hs256-public-jwk": forged({**header, "alg": "HS256"}, claims, hmac_secret=public_jwk),
        "none": forged({**header, "alg": "none"}, claims, hmac_secret=None),
        "None": forged({**header, "alg": "None"}, claims, hmac_secret=None),
        # Real signatures with algorithms the issuer is not configured for.
        "ps256": corp.token(key=SigningKey(rsa_key.kid, "PS256", rsa_key.private)),
        "rs384": corp.token(key=SigningKey(rsa_key.kid, "RS384", rsa_key.private)),
    }
    for name, token in attacks.items():
        response = me(server, token)
        assert refused_with(response, "token_algorithm_refused"), (name, response.text)
    # partner accepts RS256 only: its own ES256-signed token is refused too.
    es_token = partner.token(key=new_key("ES256", kid=partner.published[0].kid), oid="x")
    assert refused_with(me(server, es_token), "token_algorithm_refused")
    assert corp.fetches(corp.jwks_path) == fetches  # refused before any key was looked up


def test_a_listed_algorithm_that_does_not_fit_the_key_is_refused(
    server: ServerProcess, corp: FakeIdP
) -> None:
    """ES256 is allowed, but the kid names corp's RSA key: the key decides, not the header."""
    rsa_key = next(key for key in corp.published if key.alg == "RS256")
    assert me(server, corp.token(key=rsa_key)).status_code == 200
    wrong = corp.token(key=SigningKey(rsa_key.kid, "ES256", new_key("ES256").private))
    assert refused_with(me(server, wrong), "token_algorithm_refused")


@pytest.mark.parametrize(
    ("change", "code", "detail"),
    [
        ({"drop": ("aud",)}, "token_invalid", "'aud'"),
        ({"aud": "some-other-api"}, "token_invalid", "(aud)"),
        ({"drop": ("exp",)}, "token_invalid", "'exp'"),
        ({"drop": ("sub",)}, "token_invalid", "'sub'"),
        ({"lifetime": -120}, "token_expired", "expired"),
        ({"nbf": int(time.time()) + 3600}, "token_invalid", "not valid yet"),
    ],
    ids=["no-aud", "wrong-aud", "no-exp", "no-sub", "expired", "not-yet-valid"],
)
def test_required_claims_are_enforced(
    server: ServerProcess, corp: FakeIdP, change: dict[str, Any], code: str, detail: str
) -> None:
    assert me(server, corp.token(sub="bob")).status_code == 200
    response = me(server, corp.token(sub="bob", **change))
    assert refused_with(response, code), response.text
    assert detail in response.json()["detail"]


def test_a_tampered_signature_is_refused(server: ServerProcess, corp: FakeIdP) -> None:
    token = corp.token(sub="alice")
    assert me(server, token).status_code == 200
    head, payload, _ = corp.token(sub="alice", realm_access={"roles": ["agent-user"]}).split(".")
    spliced = f"{head}.{payload}.{token.split('.')[2]}"  # roles added, old signature kept
    assert refused_with(me(server, spliced), "token_invalid")


def test_made_up_key_ids_refetch_the_jwks_at_most_once_per_interval(
    server: ServerProcess, corp: FakeIdP
) -> None:
    assert me(server, corp.token()).status_code == 200  # the keys are cached
    fetches = corp.fetches(corp.jwks_path)
    rsa_key = next(key for key in corp.published if key.alg == "RS256")

    def bad_kid(_: int) -> httpx.Response:
        junk = SigningKey(f"made-up-{uuid.uuid4().hex}", "RS256", rsa_key.private)
        return me(server, corp.token(key=junk))

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(bad_kid, range(60)))
    assert all(refused_with(response, "token_unknown_key") for response in responses)
    # OIDC_JWKS_MIN_REFRESH_SECONDS=300: 60 unknown kids cost the IdP at most one request.
    assert corp.fetches(corp.jwks_path) - fetches <= 1
    assert me(server, corp.token()).status_code == 200


def run_task(server: ServerProcess, token: str) -> tuple[str, dict[str, Any]]:
    """Submit "What is 6*7?" to the assistant as a background task; its id and result."""
    submitted = httpx.post(
        f"{server.url}/v1/tasks",
        json={"agent": "assistant", "input": "What is 6*7?"},
        headers=bearer(token),
        timeout=10,
    )
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    result: dict[str, Any] = {}

    def finished() -> bool:
        response = httpx.get(
            f"{server.url}/v1/tasks/{task_id}/result", headers=bearer(token), timeout=10
        )
        result.update(response.json())
        return response.status_code == 200

    wait_for(finished, timeout=20)
    return task_id, result


def test_a_background_task_of_an_external_principal_runs_as_that_owner(
    server: ServerProcess, corp: FakeIdP, partner: FakeIdP
) -> None:
    token = corp.token(sub="carol", realm_access={"roles": ["agent-user"]})
    task_id, result = run_task(server, token)
    assert result["status"] == "completed", result  # the worker rebuilt the owner from its id
    assert "42" in (result["output"] or "")
    # Another issuer's 'carol' is another principal: the task is not theirs.
    other = partner.token(oid="carol", scp=["tasks:read"])
    assert httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=bearer(other)).status_code == 404


def test_the_tenant_claim_names_the_principals_tenant_which_must_exist(
    server: ServerProcess, corp: FakeIdP
) -> None:
    tenant = f"org-{uuid.uuid4().hex[:6]}"
    token = corp.token(sub="dana", org=tenant, realm_access={"roles": ["agent-user"]})
    assert refused_with(me(server, token), "tenant_unknown")  # no such tenant (yet)
    admin = bearer(login(server.url))
    made = httpx.post(
        f"{server.url}/v1/tenants", json={"id": tenant, "name": "Org"}, headers=admin, timeout=10
    )
    assert made.status_code == 201, made.text
    response = me(server, token)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == f"oidc:corp@{tenant}:dana"
    assert response.json()["tenant"] == tenant
    # The same subject without the claim is the default tenant's, another principal.
    assert me(server, corp.token(sub="dana")).json()["id"] == "oidc:corp:dana"
    # A value that cannot be a tenant id makes the token invalid, not some other tenant's.
    assert refused_with(me(server, corp.token(sub="dana", org="Not A Tenant")), "token_invalid")
    # A task of the tenant's principal runs as that owner (its worker parses the id back).
    _, result = run_task(server, token)
    assert result["status"] == "completed", result
    # Deleted, its principals are refused at once.
    gone = httpx.delete(f"{server.url}/v1/tenants/{tenant}", headers=admin, timeout=10)
    assert gone.status_code == 204
    assert refused_with(me(server, token), "tenant_unknown")


# --- key rotation (explicit single-issuer settings) ------------------------------------------

# Long enough that the two requests after a fetch always fall inside it on a busy machine.
ROTATION_INTERVAL = 1.5


def test_rotated_keys_are_fetched_once_and_retired_keys_stop_working() -> None:
    with FakeIdP(audience=AUDIENCE) as idp:
        first = idp.add_key("RS256")
        env = {
            **NO_LIMITS,
            "OIDC_ISSUER": idp.issuer,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_ALIAS": "kc",
            "OIDC_JWKS_MIN_REFRESH_SECONDS": str(ROTATION_INTERVAL),
        }
        with ServerProcess(env=env) as server:
            old_token = idp.token(key=first, sub="dave")
            assert me(server, old_token).json()["id"] == "oidc:kc:dave"
            assert idp.fetches(idp.jwks_path) == 1

            # The IdP rolls a new key in: the first token naming it fetches the JWKS once.
            second = idp.rotate("ES256")
            wait_past_refresh_interval(idp, ROTATION_INTERVAL)
            for _ in range(5):
                response = me(server, idp.token(key=second, sub="dave"))
                assert response.status_code == 200, response.text
            assert idp.fetches(idp.jwks_path) == 2
            assert me(server, old_token).status_code == 200  # both published: both work

            # The IdP retires every old key: a token signed by one stops working, even one
            # the server verified (and cached) before.
            third = idp.rotate("EdDSA", retire_old=True)
            wait_past_refresh_interval(idp, ROTATION_INTERVAL)
            assert me(server, idp.token(key=third, sub="dave")).status_code == 200
            assert idp.fetches(idp.jwks_path) == 3
            assert refused_with(me(server, old_token), "token_unknown_key")
            fresh_but_retired = idp.token(key=second, sub="dave")
            assert refused_with(me(server, fresh_but_retired), "token_unknown_key")
            assert idp.fetches(idp.jwks_path) == 3  # within the interval: no fetch for them


# --- the IdP down or slow --------------------------------------------------------------------


def test_the_idp_being_down_or_slow_never_stops_the_service() -> None:
    with FakeIdP(audience=AUDIENCE) as idp:
        key = idp.add_key("RS256")
        idp.go_down()
        env = {
            **NO_LIMITS,
            "OIDC_ISSUER": idp.issuer,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_JWKS_MIN_REFRESH_SECONDS": "0.2",
            "OIDC_JWKS_CACHE_SECONDS": "0.5",
            "OIDC_HTTP_TIMEOUT_SECONDS": "1",
        }
        # A server whose IdP is down still starts (ServerProcess waits for /health/live).
        with ServerProcess(env=env) as server:
            response = me(server, idp.token(key=key))
            assert refused_with(response, "oidc_unavailable"), response.text
            assert "retry" in response.json()["detail"]

            idp.come_up()
            wait_for(lambda: me(server, idp.token(key=key)).status_code == 200)

            # Down again, past the cache age: the last good keys keep serving new tokens.
            idp.go_down()
            stale_since = time.monotonic()
            wait_for(lambda: time.monotonic() - stale_since > 0.6, interval=0.1)
            for _ in range(3):
                assert me(server, idp.token(key=key, sub=uuid.uuid4().hex)).status_code == 200
            wait_for(lambda: '"serving_cached": true' in server.logs())
            unknown = idp.token(key=SigningKey("never-published", "RS256", key.private))
            assert refused_with(me(server, unknown), "token_unknown_key")

            # Up but slow: a request that needs a fetch waits at most the timeout, and the
            # event loop keeps answering everyone else meanwhile.
            idp.come_up()
            idp.delay = 5.0
            time.sleep(0.25)  # past OIDC_JWKS_MIN_REFRESH_SECONDS, so the next kid fetches
            with ThreadPoolExecutor(max_workers=1) as pool:
                started = time.monotonic()
                pending = pool.submit(me, server, unknown)
                wait_for(lambda: any(hit.at > started for hit in list(idp.hits)))
                live = httpx.get(f"{server.url}/health/live", timeout=5)
                assert live.status_code == 200
                # Answered while the fetch was still waiting on the IdP: a blocked loop would
                # answer only after the fetch's deadline (an ordering, not a timing, so a
                # loaded machine does not make it flaky).
                assert not pending.done()
                response = pending.result(timeout=5)
                assert refused_with(response, "token_unknown_key")
                assert time.monotonic() - started < 3.0  # the 1 s deadline, not the 5 s IdP


# --- configuration and mapping (in process) --------------------------------------------------


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_an_unsafe_or_unclear_issuer_configuration_stops_start_up() -> None:
    issuer = {"OIDC_ISSUER": "https://idp.example.com"}
    with pytest.raises(ConfigError, match="OIDC_ISSUER: audience"):
        providers_from_settings(settings(**issuer))
    with pytest.raises(ValueError, match="OIDC_ALGORITHMS"):
        settings(**issuer, OIDC_AUDIENCE="x", OIDC_ALGORITHMS="RS256,HS256")
    with pytest.raises(ConfigError, match="unknown scopes: root"):
        providers_from_settings(
            settings(**issuer, OIDC_AUDIENCE="x", OIDC_ROLE_SCOPES='{"admin": ["root"]}')
        )
    with pytest.raises(ConfigError, match="JWT_ISSUER"):
        providers_from_settings(
            settings(**issuer, OIDC_AUDIENCE="x", JWT_ISSUER="https://idp.example.com")
        )
    with pytest.raises(ConfigError, match="not both"):
        providers_from_settings(
            settings(
                **issuer,
                OIDC_AUDIENCE="x",
                OIDC_PROVIDERS='[{"issuer": "https://b.example.com", "audience": "x"}]',
            )
        )
    two_with_one_alias = json.dumps(
        [
            {"issuer": "https://a.example.com", "audience": "x", "alias": "corp"},
            {"issuer": "https://b.example.com", "audience": "x", "alias": "corp"},
        ]
    )
    with pytest.raises(ConfigError, match="share an alias"):
        providers_from_settings(settings(OIDC_PROVIDERS=two_with_one_alias))
    with pytest.raises(ConfigError, match=r"OIDC_PROVIDERS\[0\]: alias"):
        providers_from_settings(
            settings(
                OIDC_PROVIDERS='[{"issuer": "https://a.example.com", "audience": "x", '
                '"alias": "a:b"}]'
            )
        )


def test_plain_http_issuers_are_refused_in_production_outside_loopback() -> None:
    remote = settings(OIDC_ISSUER="http://idp.example.com", OIDC_AUDIENCE="x")
    local = settings(OIDC_ISSUER="http://127.0.0.1:8080/realms/x", OIDC_AUDIENCE="x")
    for config in (remote, local):
        config.ENVIRONMENT = "production"  # only this rule is under test, not every guard
    with pytest.raises(ConfigError, match="must be https in production"):
        providers_from_settings(remote)
    assert [provider.issuer for provider in providers_from_settings(local)] == [local.OIDC_ISSUER]


async def test_concurrent_unknown_kids_share_one_fetch_that_outlives_a_cancelled_caller() -> None:
    with FakeIdP(audience=AUDIENCE) as idp:
        idp.add_key("RS256")
        provider = OidcProvider(issuer=idp.issuer, audience=AUDIENCE)
        async with httpx.AsyncClient() as http:
            keys = JwksCache(
                provider, http=http, min_refresh=0, max_age=300, timeout=5, require_https=False
            )
            rotated = idp.rotate("ES256")
            idp.delay = 0.3
            first = asyncio.create_task(keys.verification_key(rotated.kid, "ES256"))
            await asyncio.sleep(0.05)  # the fetch is under way
            first.cancel()  # its caller went away: the others still need the fetch
            found = await asyncio.gather(
                *(keys.verification_key(rotated.kid, "ES256") for _ in range(20))
            )
            assert {key.key_id for key in found} == {rotated.kid}
            assert idp.fetches(idp.jwks_path) == 1 and idp.fetches(idp.discovery_path) == 1
            await keys.aclose()


def test_roles_map_through_dotted_paths_and_whole_names_with_dots() -> None:
    provider = OidcProvider(
        issuer="https://idp.example.com",
        audience="x",
        roles_claim="https://example.com/roles",
        role_scopes={"ops": ("admin",)},
    )
    assert scopes_from_claims({"https://example.com/roles": ["ops"]}, provider) == {"admin"}
    nested = provider.model_copy(update={"roles_claim": "resource_access.api.roles"})
    claims = {"resource_access": {"api": {"roles": "ops"}}, "scp": ["tasks:read", "User.Read"]}
    assert scopes_from_claims(claims, nested) == {"admin", "tasks:read"}
    assert scopes_from_claims({"resource_access": "oops", "scope": 7}, nested) == frozenset()


def test_an_external_principal_id_parses_back_for_the_task_worker() -> None:
    built = Principal.for_external("corp", "auth0|6543:2")
    assert built.id == "oidc:corp:auth0|6543:2" and built.kind == "external"
    assert Principal.from_id(built.id) == built
    tenant = Principal.for_external("corp", "a@b:c", tenant="acme")
    assert tenant.id == "oidc:corp@acme:a@b:c" and tenant.tenant == "acme"
    assert Principal.from_id(tenant.id) == tenant
    for bad in ("oidc:", "oidc:corp", "oidc::sub", "oidc:corp:", "oidc:corp@default:x"):
        with pytest.raises(ValueError, match="not a principal id"):
            Principal.from_id(bad)
