"""Auth routes through the full middleware chain, against both store backends."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from jose import jwt

from app.security.revocation import CredentialRevoked
from tests.conftest import ADMIN_PASSWORD, AppClient, SettingsFactory, login

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def test_login_issues_a_bearer_token_with_the_users_scopes(
    any_client: httpx.AsyncClient,
) -> None:
    response = await any_client.post(
        "/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert "admin" in body["scope"].split()
    me = await any_client.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == "user:admin"
    assert me.json()["kind"] == "user"


async def test_login_can_narrow_scopes_but_never_widen(any_client: httpx.AsyncClient) -> None:
    response = await any_client.post(
        "/v1/auth/token",
        data={"username": "admin", "password": ADMIN_PASSWORD, "scope": "agents:run nonsense"},
    )
    assert response.json()["scope"] == "agents:run"


@pytest.mark.parametrize(
    ("username", "password"),
    [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)],
)
async def test_login_with_bad_credentials_is_401(
    any_client: httpx.AsyncClient, username: str, password: str
) -> None:
    response = await any_client.post(
        "/v1/auth/token", data={"username": username, "password": password}
    )
    body = assert_problem(response, 401, "invalid_credentials")
    assert "WWW-Authenticate" in response.headers
    assert password not in response.text
    assert body["detail"] == "Incorrect username or password."


async def test_password_over_72_bytes_is_a_clear_422(any_client: httpx.AsyncClient) -> None:
    response = await any_client.post(
        "/v1/auth/token",
        data={"username": "admin", "password": "é" * 40},  # 80 bytes
    )
    body = assert_problem(response, 422, "password_too_long")
    assert "72 bytes" in body["detail"]


async def test_login_without_form_fields_is_422(any_client: httpx.AsyncClient) -> None:
    response = await any_client.post("/v1/auth/token", data={"username": "admin"})
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "password"]


async def test_me_requires_credentials(any_client: httpx.AsyncClient) -> None:
    response = await any_client.get("/v1/auth/me")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ({"Authorization": "Bearer not-a-jwt"}, "token_invalid"),
        ({"Authorization": "Basic YWRtaW46cGFzcw=="}, "bad_scheme"),
        ({"Authorization": "Bearer"}, "bad_scheme"),
        ({"X-API-Key": "ask_nope"}, "api_key_invalid"),
        ({"X-API-Key": "ask_abcdefgh_" + "x" * 32}, "api_key_invalid"),
    ],
)
async def test_invalid_credentials_are_401_problems(
    any_client: httpx.AsyncClient, header: dict[str, str], code: str
) -> None:
    response = await any_client.get("/v1/auth/me", headers=header)
    assert_problem(response, 401, code)
    assert "www-authenticate" in response.headers


def _forge(settings_secret: str, **claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "user:admin",
        "scope": "admin",
        "exp": now + 60,
        "iat": now,
        "jti": uuid.uuid4().hex,
    }
    base.update(claims)
    # str(): python-jose ships no type hints.
    return str(
        jwt.encode({k: v for k, v in base.items() if v is not None}, settings_secret, "HS256")
    )


async def test_expired_token_is_401_token_expired(any_client: AppClient) -> None:
    secret = any_client.services.keys.signing_key
    token = _forge(secret, exp=int(time.time()) - 3600)
    response = await any_client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "token_expired")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": None},  # no exp: refused, python-jose would otherwise accept it
        {"sub": None},  # no subject
        {"sub": "key:abc"},  # a token cannot claim to be an API key principal
        {"jti": None},  # no jti: it could not be signed out
        {"iat": None},  # no iat: it could not be compared with a credential change
    ],
)
async def test_tokens_missing_required_claims_are_refused(
    any_client: AppClient, claims: dict[str, object]
) -> None:
    secret = any_client.services.keys.signing_key
    token = _forge(secret, **claims)
    response = await any_client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "token_invalid")


async def test_token_signed_with_another_key_or_alg_none_is_refused(
    any_client: httpx.AsyncClient,
) -> None:
    forged = _forge("another-secret-that-is-long-enough-for-hs256")
    response = await any_client.get("/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "token_invalid")
    # {"alg":"none"} header, {"sub":"user:admin"} claims, empty signature.
    unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyOmFkbWluIn0."
    response = await any_client.get("/v1/auth/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert_problem(response, 401, "token_invalid")


async def test_audience_and_issuer_are_required_when_configured(
    make_settings: SettingsFactory,
) -> None:
    from tests.conftest import app_client

    settings = make_settings(JWT_AUDIENCE="agent-api", JWT_ISSUER="https://issuer.test")
    async with app_client(settings) as client:
        token = await login(client)
        claims = jwt.get_unverified_claims(token)
        assert claims["aud"] == "agent-api" and claims["iss"] == "https://issuer.test"
        ok = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        secret = client.services.keys.signing_key
        no_aud = _forge(secret, iss="https://issuer.test")
        response = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {no_aud}"})
        assert_problem(response, 401, "token_invalid")
        wrong_iss = _forge(secret, aud="agent-api", iss="https://evil.test")
        response = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {wrong_iss}"})
        assert_problem(response, 401, "token_invalid")


async def _create_key(
    client: httpx.AsyncClient, token: str, scopes: list[str], name: str = "ci"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/auth/api-keys",
        json={"name": name, "scopes": scopes},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_api_key_lifecycle(any_client: httpx.AsyncClient) -> None:
    token = await login(any_client)
    created = await _create_key(any_client, token, ["agents:run", "sessions:read"])
    key = created["key"]
    assert key.startswith(created["prefix"] + "_")
    assert created["created_by"] == "user:admin"

    # The key is a principal of its own, not the admin who made it.
    me = await any_client.get("/v1/auth/me", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json() == {
        "id": f"key:{created['id']}",
        "kind": "api_key",
        "name": "ci",
        "scopes": ["agents:run", "sessions:read"],
        "tenant": "default",
    }

    listed = await any_client.get("/v1/auth/api-keys", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["prefix"] for item in items] == [created["prefix"]]
    assert key not in listed.text  # shown once, never again

    revoked = await any_client.delete(
        f"/v1/auth/api-keys/{created['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    again = await any_client.delete(
        f"/v1/auth/api-keys/{created['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert again.status_code == 200  # idempotent

    after = await any_client.get("/v1/auth/me", headers={"X-API-Key": key})
    assert_problem(after, 401, "api_key_invalid")


async def test_api_key_routes_need_admin_scope(any_client: httpx.AsyncClient) -> None:
    token = await login(any_client)
    created = await _create_key(any_client, token, ["agents:run"])
    for method, path, body in [
        ("POST", "/v1/auth/api-keys", {"name": "x", "scopes": ["admin"]}),
        ("GET", "/v1/auth/api-keys", None),
        ("DELETE", f"/v1/auth/api-keys/{created['id']}", None),
    ]:
        response = await any_client.request(
            method, path, json=body, headers={"X-API-Key": created["key"]}
        )
        problem = assert_problem(response, 403, "insufficient_scope")
        assert "admin" in problem["detail"]
    narrowed = await any_client.post(
        "/v1/auth/token",
        data={"username": "admin", "password": ADMIN_PASSWORD, "scope": "agents:run"},
    )
    response = await any_client.get(
        "/v1/auth/api-keys",
        headers={"Authorization": f"Bearer {narrowed.json()['access_token']}"},
    )
    assert_problem(response, 403, "insufficient_scope")
    anonymous = await any_client.get("/v1/auth/api-keys")
    assert_problem(anonymous, 401, "unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["agents:run"]},
        {"name": "x" * 101, "scopes": ["agents:run"]},
        {"name": "bad\nname", "scopes": ["agents:run"]},
        {"scopes": ["agents:run"]},
    ],
)
async def test_api_key_create_rejects_bad_input(
    any_client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    token = await login(any_client)
    response = await any_client.post(
        "/v1/auth/api-keys", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 422, "validation_error")


async def test_revoking_unknown_key_is_404(any_client: httpx.AsyncClient) -> None:
    token = await login(any_client)
    response = await any_client.delete(
        "/v1/auth/api-keys/nosuchid", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 404, "not_found")


async def test_auth_disabled_gives_anonymous_principal_with_all_scopes(
    make_settings: SettingsFactory,
) -> None:
    from tests.conftest import app_client

    async with app_client(make_settings(AUTH_ENABLED=False)) as client:
        response = await client.get("/v1/auth/api-keys")
        assert response.status_code == 200
        me = await client.get("/v1/auth/me")
        assert me.json()["kind"] == "anonymous"


async def test_a_password_with_a_nul_byte_is_just_wrong_not_a_500(
    any_client: httpx.AsyncClient,
) -> None:
    response = await any_client.post(
        "/v1/auth/token", data={"username": "admin", "password": "pass\x00word"}
    )
    assert_problem(response, 401, "invalid_credentials")


async def test_another_api_prefix_moves_the_token_url_and_the_login_limit(
    make_settings: SettingsFactory,
) -> None:
    from tests.conftest import app_client

    async with app_client(make_settings(API_PREFIX="/api/v2")) as client:
        document = (await client.get("/openapi.json")).json()
        flow = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
        assert flow["password"]["tokenUrl"] == "/api/v2/auth/token"
        assert "/api/v2/auth/token" in document["paths"]
        # The login limit (10/minute by default) guards the moved route, not a dead "/v1" one.
        statuses = [
            (
                await client.post(
                    "/api/v2/auth/token", data={"username": "admin", "password": "wrong"}
                )
            ).status_code
            for _ in range(11)
        ]
        assert statuses[:10] == [401] * 10
        assert statuses[10] == 429


@pytest.mark.parametrize("scopes", [["admin", "admin"], ["tasks:read", "agents:run"]])
async def test_api_key_scopes_are_the_scope_enum_deduplicated_and_sorted(
    any_client: httpx.AsyncClient, scopes: list[str]
) -> None:
    token = await login(any_client)
    response = await any_client.post(
        "/v1/auth/api-keys",
        json={"name": "bot", "scopes": scopes},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["scopes"] == sorted(set(scopes))


# --- users, logout, API key expiry (both backends; the cross-process side is in
# tests/security/test_revocation.py) ------------------------------------------------------------

USER_PASSWORD = "a-long-enough-password"


async def test_user_lifecycle_and_the_checks_on_its_tokens(any_client: AppClient) -> None:
    admin = {"Authorization": f"Bearer {await login(any_client)}"}
    created = await any_client.post(
        "/v1/auth/users",
        json={"username": "alice", "password": USER_PASSWORD, "scopes": ["agents:run", "admin"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["scopes"] == ["admin", "agents:run"]
    assert "password" not in created.text
    token = {"Authorization": f"Bearer {await login(any_client, USER_PASSWORD, 'alice')}"}
    assert (await any_client.get("/v1/auth/me", headers=token)).json()["id"] == "user:alice"
    key = (
        await any_client.post(
            "/v1/auth/api-keys", json={"name": "k", "scopes": ["agents:run"]}, headers=token
        )
    ).json()["key"]
    listed = await any_client.get("/v1/auth/users", headers=admin)
    assert [user["username"] for user in listed.json()["items"]] == ["admin", "alice"]

    disabled = await any_client.post("/v1/auth/users/alice/disable", headers=admin)
    assert disabled.json()["disabled"] is True
    assert_problem(await any_client.get("/v1/auth/me", headers=token), 401, "token_revoked")
    assert_problem(
        await any_client.get("/v1/auth/me", headers={"X-API-Key": key}), 401, "api_key_revoked"
    )
    await any_client.post("/v1/auth/users/alice/enable", headers=admin)
    assert (await any_client.get("/v1/auth/me", headers={"X-API-Key": key})).status_code == 200
    assert_problem(await any_client.get("/v1/auth/me", headers=token), 401, "token_revoked")

    fresh = {"Authorization": f"Bearer {await login(any_client, USER_PASSWORD, 'alice')}"}
    narrowed = await any_client.patch(
        "/v1/auth/users/alice", json={"scopes": ["agents:run"]}, headers=admin
    )
    assert narrowed.json()["scopes"] == ["agents:run"]
    me = await any_client.get("/v1/auth/me", headers=fresh)
    assert me.json()["scopes"] == ["agents:run"]  # the token's admin scope is gone

    assert (await any_client.delete("/v1/auth/users/alice", headers=admin)).status_code == 204
    assert_problem(await any_client.get("/v1/auth/me", headers=fresh), 401, "token_revoked")
    assert_problem(
        await any_client.get("/v1/auth/me", headers={"X-API-Key": key}), 401, "api_key_invalid"
    )
    assert_problem(
        await any_client.get("/v1/auth/users/alice", headers=admin), 404, "user_not_found"
    )


async def test_logout_revokes_the_token_it_was_sent_with(any_client: AppClient) -> None:
    first = {"Authorization": f"Bearer {await login(any_client)}"}
    second = {"Authorization": f"Bearer {await login(any_client)}"}
    assert (await any_client.post("/v1/auth/logout", headers=first)).status_code == 204
    assert_problem(await any_client.get("/v1/auth/me", headers=first), 401, "token_revoked")
    assert (await any_client.get("/v1/auth/me", headers=second)).status_code == 200
    assert_problem(await any_client.post("/v1/auth/logout"), 401, "unauthorized")


async def test_api_key_expiry_is_stored_listed_and_enforced(any_client: AppClient) -> None:
    token = await login(any_client)
    headers = {"Authorization": f"Bearer {token}"}
    created = await any_client.post(
        "/v1/auth/api-keys",
        json={"name": "short", "scopes": ["agents:run"], "expires_in": 3600},
        headers=headers,
    )
    assert created.status_code == 201
    body = created.json()
    listed = (await any_client.get("/v1/auth/api-keys", headers=headers)).json()["items"]
    assert listed[0]["expires_at"] == body["expires_at"]
    assert (await any_client.get("/v1/auth/me", headers={"X-API-Key": body["key"]})).is_success
    # An hour later (the record as the store would hold it then): refused with its own code.
    record = await any_client.services.api_keys.get(body["id"])
    assert record is not None and record.expires_at is not None
    expired = record.model_copy(update={"expires_at": record.created_at - timedelta(seconds=1)})
    with pytest.raises(CredentialRevoked) as info:
        await any_client.services.user_check.check_api_key(expired)
    assert info.value.code == "api_key_expired"
