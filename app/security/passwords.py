"""bcrypt through libpass (the maintained passlib fork), always off the event loop.

bcrypt costs ~300 ms a call at the default cost: it runs in a bounded thread pool so a burst of
logins cannot starve the loop or every core.
"""

from __future__ import annotations

import anyio
from passlib.context import CryptContext
from passlib.exc import PasswordValueError

MAX_PASSWORD_BYTES = 72  # bcrypt's input limit; libpass raises past it
MIN_PASSWORD_CHARS = 12


class PasswordTooLong(ValueError):
    pass


class WeakPassword(ValueError):
    pass


def check_password_policy(password: str, *, username: str) -> None:
    """The rule for every password an operator sets (the API, the CLI); login does not apply
    it, so a policy change never locks out an existing user. WeakPassword says why."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong(f"password must be at most {MAX_PASSWORD_BYTES} bytes")
    if password.casefold() == username.casefold():
        raise WeakPassword("password must not be the username")
    if "\x00" in password:
        raise WeakPassword("password must not contain a NUL character")  # bcrypt cannot hash it


class PasswordHasher:
    def __init__(self, *, rounds: int, concurrency: int) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._limiter = anyio.CapacityLimiter(concurrency)
        # Verified against when the user does not exist, so both paths cost the same.
        self._dummy_hash = self._context.hash("dummy-password-for-timing")

    @staticmethod
    def check_length(password: str) -> None:
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            raise PasswordTooLong(f"password must be at most {MAX_PASSWORD_BYTES} bytes")

    async def hash(self, password: str) -> str:
        self.check_length(password)
        return await anyio.to_thread.run_sync(self._context.hash, password, limiter=self._limiter)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        self.check_length(password)
        target = password_hash or self._dummy_hash
        try:
            ok = await anyio.to_thread.run_sync(
                self._context.verify, password, target, limiter=self._limiter
            )
        except PasswordValueError:  # e.g. a NUL byte: bcrypt cannot hash it, so it cannot match
            return False
        return bool(ok) and password_hash is not None
