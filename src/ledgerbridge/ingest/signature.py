"""Signature checks for both senders, always on the raw body bytes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from ledgerbridge import errors

# Unix seconds beyond year 5000 are not a time a sender could have signed at.
MAX_TIMESTAMP = 95_617_584_000


def sign_internal(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` header value the internal system sends."""
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_internal(
    secret: str, header: str | None, body: bytes, *, now: float, tolerance_seconds: int
) -> int:
    """Check ``X-Signature: t=<unix>,v1=<hex>``; return the signed timestamp.

    Raises ``BadSignature`` when the header is missing, malformed, does not
    match, or was signed outside the tolerance window (a replayed delivery).
    """
    if not header:
        raise errors.BadSignature("missing X-Signature header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError) as exc:
        raise errors.BadSignature("X-Signature has no valid t=") from exc
    if not 0 < timestamp < MAX_TIMESTAMP:
        raise errors.BadSignature("X-Signature has no valid t=")
    expected = sign_internal(secret, timestamp, body).split("v1=", 1)[1]
    # Several v1= values may be present while the sender rotates secrets.
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise errors.BadSignature("X-Signature does not match the body")
    if abs(now - timestamp) > tolerance_seconds:
        raise errors.BadSignature("X-Signature timestamp is outside the tolerance")
    return timestamp


def sign_qbo(verifier_token: str, body: bytes) -> str:
    """The ``intuit-signature`` header value: base64 of HMAC-SHA256."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_qbo(verifier_token: str, header: str | None, body: bytes) -> None:
    """Check ``intuit-signature``; raises ``BadSignature``."""
    if not header:
        raise errors.BadSignature("missing intuit-signature header")
    try:
        given = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.BadSignature("intuit-signature is not base64") from exc
    expected = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        raise errors.BadSignature("intuit-signature does not match the body")
