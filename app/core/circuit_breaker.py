"""A small circuit breaker so a dead dependency costs no per-request wait.

Closed: calls go through; ``failure_threshold`` consecutive failures open it. Open: callers skip
the dependency at once. After ``reset_timeout`` one caller is let through as a probe
(half-open); its success closes the breaker, its failure re-opens it. Single event loop, so no
lock is needed: state changes happen between awaits.
"""

from __future__ import annotations

import time
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int = 3, reset_timeout: float = 2.0) -> None:
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._failures = 0
        self._opened_at = 0.0
        self._state: State = "closed"

    @property
    def state(self) -> State:
        return self._state

    def allow(self) -> bool:
        """True when the caller may use the dependency now."""
        if self._state == "closed":
            return True
        if time.monotonic() - self._opened_at >= self._reset_timeout:
            # This caller is the probe; others keep skipping. A probe that never reports
            # back (cancelled) is replaced after another reset timeout.
            self._state = "half_open"
            self._opened_at = time.monotonic()
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._state = "closed"

    def record_failure(self) -> bool:
        """Count a failure; True when this failure opened the breaker."""
        self._failures += 1
        if self._state == "half_open" or self._failures >= self._threshold:
            was_open = self._state == "open"
            self._state = "open"
            self._opened_at = time.monotonic()
            return not was_open
        return False
