"""Standard Webhooks signatures (https://www.standardwebhooks.com), with the specification's
own reference library: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` under the
subscription's secret, a ``whsec_`` + base64 string of 24 random bytes."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook as StandardWebhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(*, secret: str, message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three headers of one attempt: its id, its time (seconds) and the signature."""
    signature = StandardWebhook(secret).sign(msg_id=message_id, timestamp=at, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
