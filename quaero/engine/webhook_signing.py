"""How a webhook delivery is signed, and how a receiver checks it.

Every attempt carries these headers:

- ``X-Quaero-Event``: ``started``, ``completed``, ``failed`` or ``cancelled``;
- ``X-Quaero-Delivery``: the delivery's id, the same on every attempt (a receiver that saw it already drops it);
- ``X-Quaero-Timestamp``: when the attempt was made, in Unix seconds;
- ``X-Quaero-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the webhook's secret, of the
  timestamp, a full stop and the raw body: ``f"{timestamp}.".encode() + body`` (only when a secret is set).

A receiver recomputes the HMAC over the bytes it received (before parsing the JSON), compares it in constant
time, and refuses a timestamp more than a few minutes away from its clock: a recorded request replayed later
fails that check, and its timestamp cannot be changed without breaking the signature. In Python::

    expected = "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, signature) and abs(time.time() - int(timestamp)) < 300
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Quaero-Signature"
EVENT_HEADER = "X-Quaero-Event"
DELIVERY_HEADER = "X-Quaero-Delivery"
TIMESTAMP_HEADER = "X-Quaero-Timestamp"
#: A receiver should refuse a timestamp further than this from its clock (seconds).
TOLERANCE = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Quaero-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signed: str, *, now: float, tolerance: float = TOLERANCE) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        moment = int(timestamp)
    except ValueError:
        return False
    return abs(now - moment) <= tolerance and hmac.compare_digest(signature(secret, moment, body), signed)
