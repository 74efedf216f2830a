"""How guessable a configured secret looks, for the production guards (app/core/config.py).

A real entropy measure needs the generator; from the value alone we can only catch what is
obviously weak. The rule, stated so an operator can follow it: at least ``MIN_SECRET_BYTES``
bytes, at least ``MIN_DISTINCT_CHARS`` different characters, and not a shorter piece
repeated (``'a'*32``, ``'password'*4``). ``openssl rand -hex 32`` passes with a wide margin
(64 characters, ~16 distinct, no period). The functions say what is wrong, never the value.
"""

from __future__ import annotations

MIN_SECRET_BYTES = 32
MIN_DISTINCT_CHARS = 8  # `openssl rand -hex 16` (32 characters) has fewer: odds 4e-8
# The bootstrap admin's password follows the rule every operator-set password follows
# (app/security/passwords.py check_password_policy); core cannot import security.
MIN_ADMIN_PASSWORD_CHARS = 12
HOW_TO_GENERATE = "use a random value, e.g. `openssl rand -hex 32`"


def shortest_period(value: str) -> int:
    """Length of the shortest piece whose repetition spells ``value`` (a prefix of it may
    end the string): 8 for ``'password'*4``, ``len(value)`` when nothing repeats."""
    # Knuth-Morris-Pratt failure function: the longest proper border of the whole string.
    border = [0] * len(value)
    length = 0
    for index in range(1, len(value)):
        while length and value[index] != value[length]:
            length = border[length - 1]
        if value[index] == value[length]:
            length += 1
        border[index] = length
    return len(value) - (border[-1] if value else 0)


def secret_weakness(value: str) -> str | None:
    """Why ``value`` is too weak for an HMAC key, or None when it passes the rule."""
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"has fewer than {MIN_SECRET_BYTES} bytes"
    if len(set(value)) < MIN_DISTINCT_CHARS:
        return f"has fewer than {MIN_DISTINCT_CHARS} different characters"
    if shortest_period(value) * 2 <= len(value):
        return "repeats a pattern"
    return None


def admin_password_weakness(password: str, *, username: str) -> str | None:
    """Why the bootstrap admin password is too weak, or None."""
    if len(password) < MIN_ADMIN_PASSWORD_CHARS:
        return f"has fewer than {MIN_ADMIN_PASSWORD_CHARS} characters"
    if password.casefold() == username.casefold():
        return "is the user name"
    return None
