"""Credentials: an API key, a JWT, or a username and password (logged in, and logged in
again shortly before the token expires: the service issues no refresh tokens)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Log in again this long before the token would expire (clock skew, a slow request).
REFRESH_MARGIN_SECONDS = 30.0


@dataclass
class Credentials:
    api_key: str | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    _expires_at: float = 0.0

    def __post_init__(self) -> None:
        given = [self.api_key is not None, self.token is not None, self.username is not None]
        if sum(given) > 1:
            raise ValueError("give one of api_key, token or username/password")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")

    @property
    def logs_in(self) -> bool:
        return self.username is not None

    def needs_login(self) -> bool:
        if not self.logs_in:
            return False
        return self.token is None or time.monotonic() >= self._expires_at - REFRESH_MARGIN_SECONDS

    def login_form(self) -> dict[str, str]:
        assert self.username is not None and self.password is not None  # noqa: S101
        return {"username": self.username, "password": self.password}

    def logged_in(self, token: str, expires_in: float) -> None:
        self.token = token
        self._expires_at = time.monotonic() + expires_in

    def expire(self) -> None:
        """The server refused the token (revoked, expired early): log in again next time."""
        if self.logs_in:
            self._expires_at = 0.0

    def headers(self) -> dict[str, str]:
        if self.api_key is not None:
            return {"X-API-Key": self.api_key}
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        return {}
