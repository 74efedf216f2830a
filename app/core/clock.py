"""The one clock for stored timestamps: timezone-aware UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

# A partial, not a def: every event of every run is stamped, and this is a call in C.
utcnow: Callable[[], datetime] = partial(datetime.now, UTC)
