"""A small OpenID Connect identity provider for tests: real sockets, real keys.

It serves ``<issuer>/.well-known/openid-configuration`` and a JWKS from a raw asyncio server in a
background thread (like tests/support/fake_openai.py), signs access tokens with its own RSA, EC
and Ed25519 keys (PyJWT over ``cryptography``), and can rotate and retire keys, answer slowly,
or go down (connection refused) and come back on the same port. Every request is recorded, so a
test can count the JWKS fetches a server made.

    with FakeIdP(audience="agent-service") as idp:
        key = idp.add_key("RS256")
        token = idp.token(sub="alice", key=key)
        ... idp.fetches(idp.jwks_path) ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
    private: PrivateKey
    if alg.startswith(("RS", "PS")):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"no key type for {alg}")
    return SigningKey(kid=kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg=alg, private=private)


@dataclass
class Hit:
    path: str
    at: float  # time.monotonic()


class FakeIdP:
    def __init__(self, *, audience: str = "agent-service", realm: str = "/realms/test") -> None:
        self.audience = audience
        self.realm = realm
        self.published: list[SigningKey] = []
        self.delay = 0.0  # seconds before each answer (a slow IdP)
        self.hits: list[Hit] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # --- what a test sees ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base_url + self.realm

    @property
    def discovery_path(self) -> str:
        return self.realm + "/.well-known/openid-configuration"

    @property
    def jwks_path(self) -> str:
        return self.realm + "/protocol/openid-connect/certs"

    @property
    def jwks_url(self) -> str:
        return self.base_url + self.jwks_path

    def fetches(self, path: str) -> int:
        return sum(1 for hit in list(self.hits) if hit.path == path)

    def last_fetch_at(self, path: str) -> float | None:
        times = [hit.at for hit in list(self.hits) if hit.path == path]
        return max(times) if times else None

    def add_key(self, alg: str = "RS256", kid: str | None = None) -> SigningKey:
        key = new_key(alg, kid)
        self.published.append(key)
        return key

    def rotate(self, alg: str = "RS256", *, retire_old: bool = False) -> SigningKey:
        """Publish a new key; ``retire_old`` stops publishing every earlier one."""
        if retire_old:
            self.published.clear()
        return self.add_key(alg)

    def token(
        self,
        *,
        key: SigningKey | None = None,
        sub: str = "alice",
        lifetime: int = 300,
        headers: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """An access token signed by ``key`` (default: the newest published key). ``claims``
        override the defaults (iss, aud, sub, iat, exp); ``drop`` removes claims."""
        key = key or self.published[-1]
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + lifetime,
            **claims,
        }
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(
            payload, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})}
        )

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeIdP:
        self._thread.start()
        self._call(self._listen())
        return self

    def go_down(self) -> None:
        """Stop listening and drop open connections: the IdP refuses connections."""
        self._call(self._close())

    def come_up(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FakeIdP:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=5)

    # --- server side (runs in the background thread) -----------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.decode("latin-1").split(" ", 2)[1]
            self.hits.append(Hit(path, time.monotonic()))
            if self.delay:
                await asyncio.sleep(self.delay)
            status, body = self._answer(path)
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _answer(self, path: str) -> tuple[str, dict[str, Any]]:
        if path == self.discovery_path:
            return "200 OK", {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_url,
                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            }
        if path == self.jwks_path:
            return "200 OK", {"keys": [key.public_jwk() for key in list(self.published)]}
        return "404 Not Found", {"error": "not_found"}
