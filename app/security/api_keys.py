"""API key format and the keyed hash they are stored under.

A key is ``ask_<8-char id>_<32-char secret>``. Only HMAC-SHA256(pepper, key) is stored: checking
a key is one hash and one lookup (microseconds), never a bcrypt round per request, and a leaked
store does not yield usable keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "ask_"
_ALPHABET = string.ascii_letters + string.digits
_KEY_SHAPE = re.compile(r"^ask_([A-Za-z0-9]{8})_([A-Za-z0-9]{32})$")


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key_id: str
    plaintext: str

    @property
    def display_prefix(self) -> str:
        return f"{KEY_PREFIX}{self.key_id}"


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def generate_api_key() -> NewApiKey:
    key_id = _random(8)
    return NewApiKey(key_id=key_id, plaintext=f"{KEY_PREFIX}{key_id}_{_random(32)}")


def is_well_formed(candidate: str) -> bool:
    return _KEY_SHAPE.match(candidate) is not None


def hash_api_key(plaintext: str, *, pepper: bytes) -> str:
    return hmac.new(pepper, plaintext.encode(), hashlib.sha256).hexdigest()
