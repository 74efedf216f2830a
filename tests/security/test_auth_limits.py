"""Finding 5: bad credentials were never rate limited, and the login limit could be sidestepped.

300 invalid keys and tokens got 401 and never 429; attaching any valid API key to
/v1/auth/token moved the caller to the key's bucket and bought 5 more password attempts.
Failed authentications are now counted per client address (AUTH_FAILURE_LIMIT, shared by
replicas through Redis) and an address past the limit is refused before its credentials are
checked; the login route is keyed by address whatever credentials come with it. Also: the
token answer is never cached, and Swagger UI's empty Basic client credentials do not break
the sign-in. Real server processes, a real Redis; other addresses come through
X-Forwarded-For from the trusted loopback proxy (FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import json
import uuid

import httpx

from tests.security.conftest import ADMIN_PASSWORD, bearer, login
from tests.support.redis_server import RedisServer
from tests.support.server_process import ServerProcess

ATTACKER = "203.0.113.7"
BYSTANDER = "198.51.100.9"
BAD_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyOmFkbWluIn0.forged-signature"


def _from(address: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-Forwarded-For": address, **(headers or {})}


def _api_key(base_url: str, token: str) -> str:
    response = httpx.post(
        f"{base_url}/v1/auth/api-keys",
        json={"name": "attached-to-logins", "scopes": ["agents:run"]},
        headers=bearer(token),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _sign_in(
    base_url: str, address: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/auth/token",
        data={"username": "admin", "password": password},
        headers=_from(address, headers),
        timeout=10,
    )


def _refused_unchecked(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "too_many_auth_failures"
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_bad_credentials_are_limited_per_address_across_replicas(
    redis_server: RedisServer,
) -> None:
    redis_server.start()
    env = {
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"sec-authfail-{uuid.uuid4().hex[:8]}:",
        "AUTH_FAILURE_LIMIT": "5/minute",
    }
    with ServerProcess(env=env) as first, ServerProcess(env=env) as second:
        token = login(first.url)
        me = "/v1/auth/me"
        # Successful authentications are not failures: any number of them costs nothing.
        for _ in range(10):
            ok = httpx.get(f"{second.url}{me}", headers=_from(ATTACKER, bearer(token)))
            assert ok.status_code == 200, ok.text
        # Nor are requests without credentials (nothing was guessed).
        for _ in range(10):
            anonymous = httpx.get(f"{first.url}{me}", headers=_from(ATTACKER))
            assert anonymous.status_code == 401
        # Five failures, split over both replicas, are answered as usual...
        for base_url, credentials in (
            (first.url, {"X-API-Key": "ask_deadbeef_" + "x" * 32}),
            (second.url, bearer(BAD_JWT)),
            (first.url, bearer(BAD_JWT)),
            (second.url, {"X-API-Key": "not-even-a-key"}),
            (first.url, {"Authorization": "Basic YWRtaW46Z3Vlc3M="}),
        ):
            failed = httpx.get(f"{base_url}{me}", headers=_from(ATTACKER, credentials))
            assert failed.status_code == 401, failed.text
        # ...the sixth is refused on either replica, before the credentials are looked at:
        # a valid token and the right password are refused too.
        _refused_unchecked(httpx.get(f"{second.url}{me}", headers=_from(ATTACKER, bearer(BAD_JWT))))
        _refused_unchecked(httpx.get(f"{first.url}{me}", headers=_from(ATTACKER, bearer(token))))
        _refused_unchecked(_sign_in(second.url, ATTACKER, ADMIN_PASSWORD))
        # Another address is not affected.
        other = httpx.get(f"{first.url}{me}", headers=_from(BYSTANDER, bearer(token)))
        assert other.status_code == 200, other.text


def test_failed_logins_count_and_an_attached_key_buys_no_more_attempts() -> None:
    env = {
        "AUTH_FAILURE_LIMIT": "5/minute",
        "RATE_LIMIT_ROUTES": json.dumps({"POST /v1/auth/token": "3/minute"}),
    }
    with ServerProcess(env=env) as server:
        key = _api_key(server.url, login(server.url))
        # The login bucket belongs to the address: three wrong passwords fill it, and a
        # valid API key (or token) attached to the fourth attempt does not open another.
        for _ in range(3):
            assert _sign_in(server.url, ATTACKER, "wrong-password").status_code == 401
        for credentials in ({"X-API-Key": key}, bearer(login(server.url))):
            attempt = _sign_in(server.url, ATTACKER, "wrong-password", credentials)
            assert attempt.status_code == 429, attempt.text
            assert attempt.json()["code"] == "rate_limited"

        # Failed logins are failed authentications: with the login bucket of the address
        # still open, bad keys and a wrong password exhaust its AUTH_FAILURE_LIMIT.
        for _ in range(4):
            bad_key = httpx.get(
                f"{server.url}/v1/auth/me", headers=_from(BYSTANDER, {"X-API-Key": key + "x"})
            )
            assert bad_key.status_code == 401
        assert _sign_in(server.url, BYSTANDER, "wrong-password").status_code == 401
        _refused_unchecked(_sign_in(server.url, BYSTANDER, ADMIN_PASSWORD))


def test_token_answer_is_not_cached_and_swagger_basic_client_credentials_are_ignored() -> None:
    with ServerProcess() as server:
        # Swagger UI's "Authorize" dialog (OAuth2 password flow) always sends its empty
        # client id and secret as HTTP Basic; we have no registered clients to check.
        answer = httpx.post(
            f"{server.url}/v1/auth/token",
            data={"username": "admin", "password": ADMIN_PASSWORD},
            headers={"Authorization": "Basic Og=="},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["pragma"] == "no-cache"
        me = httpx.get(f"{server.url}/v1/auth/me", headers=bearer(answer.json()["access_token"]))
        assert me.json()["id"] == "user:admin"


def test_redis_down_applies_the_rate_limit_policy() -> None:
    redis = RedisServer()
    redis.start()
    base = {
        "REDIS_URL": redis.url,
        "AUTH_FAILURE_LIMIT": "3/minute",
        "RATE_LIMIT_ENABLED": "false",  # only the failure limiter decides here
    }
    try:
        open_env = {**base, "REDIS_KEY_PREFIX": "sec-authfail-open:"}
        closed_env = {**base, "REDIS_KEY_PREFIX": "sec-authfail-closed:"}
        closed_env["RATE_LIMIT_FAIL_OPEN"] = "false"
        with ServerProcess(env=open_env) as fail_open, ServerProcess(env=closed_env) as closed:
            redis.stop()
            # Fail open (the default): credentials are still checked, nothing is counted.
            for _ in range(5):
                answer = httpx.get(f"{fail_open.url}/v1/auth/me", headers=bearer(BAD_JWT))
                assert answer.status_code == 401, answer.text
            # Fail closed: no credentials are checked while failures cannot be counted.
            refused = httpx.get(f"{closed.url}/v1/auth/me", headers=bearer(BAD_JWT))
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "dependency_unavailable"
            assert refused.headers["retry-after"] == "1"
    finally:
        redis.close()
