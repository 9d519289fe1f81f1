"""The webhook endpoints: ``POST /webhooks/qbo`` and ``POST /webhooks/internal``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ledgerbridge import errors
from ledgerbridge.ingest import parse, signature, store

logger = logging.getLogger(__name__)

router = APIRouter()

# Real deliveries are a few kilobytes; anything this large is refused before
# it is read whole; the delivery log notes the refusal without the body.
MAX_BODY_BYTES = 1024 * 1024


class _TooLarge(errors.IngestError):
    """The webhook body is larger than any real delivery."""


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge(f"body of {declared} bytes exceeds {MAX_BODY_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge(f"body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _status_for(exc: errors.IngestError) -> int:
    if isinstance(exc, _TooLarge):
        return 413
    if isinstance(exc, errors.BadSignature):
        return 401
    return 400


async def _refuse(
    request: Request, source: str, body: bytes, exc: errors.IngestError
) -> JSONResponse:
    """Log the refused delivery (a body too large to read is not kept)."""
    status = _status_for(exc)
    services = request.app.state.services
    await store.record_delivery(
        services.pool,
        source=source,
        signature_ok=status == 400,
        status_code=status,
        error=str(exc),
        headers=store.kept_headers(request.headers),
        body=body,
    )
    logger.warning(
        "webhook refused: %s",
        exc,
        extra={"action": "webhook_refused", "source": source, "status": status},
    )
    return JSONResponse({"error": str(exc)}, status_code=status)


Check = Callable[[Any, bytes, Request], tuple[list[parse.Signal], int]]


async def _receive(
    request: Request, source: str, check: Check, *, realm_hint: str | None
) -> JSONResponse:
    """Read, verify and parse a delivery, then record and enqueue it."""
    services = request.app.state.services
    body = b""
    try:
        body = await _read_body(request)
        signals, skipped = check(services, body, request)
    except errors.IngestError as exc:
        return await _refuse(request, source, body, exc)
    return await _accept(request, source, body, signals, skipped, realm_hint=realm_hint)


def _check_qbo(
    services: Any, body: bytes, request: Request
) -> tuple[list[parse.Signal], int]:
    signature.verify_qbo(
        services.settings.qbo_verifier_token,
        request.headers.get("intuit-signature"),
        body,
    )
    return parse.parse_qbo(body)


def _check_internal(
    services: Any, body: bytes, request: Request
) -> tuple[list[parse.Signal], int]:
    signature.verify_internal(
        services.settings.internal_webhook_secret,
        request.headers.get("x-signature"),
        body,
        now=services.clock.now().timestamp(),
        tolerance_seconds=services.settings.webhook_tolerance_seconds,
    )
    return [parse.parse_internal(body)], 0


@router.post("/webhooks/qbo")
async def qbo_webhook(request: Request) -> JSONResponse:
    """A QBO notification (legacy or CloudEvents), signed with intuit-signature."""
    return await _receive(request, "qbo", _check_qbo, realm_hint=None)


@router.post("/webhooks/internal")
async def internal_webhook(request: Request) -> JSONResponse:
    """An internal-system event, signed with X-Signature (timestamped)."""
    realm = request.query_params.get("realm_id")
    return await _receive(request, "internal", _check_internal, realm_hint=realm)


async def _accept(
    request: Request,
    source: str,
    body: bytes,
    signals: list[parse.Signal],
    skipped: int,
    *,
    realm_hint: str | None,
) -> JSONResponse:
    services = request.app.state.services
    delivery_id = await store.record_delivery(
        services.pool,
        source=source,
        signature_ok=True,
        status_code=200,
        error=None,
        headers=store.kept_headers(request.headers),
        body=body,
    )
    result = await store.record_signals(
        services.pool,
        services.queue,
        signals,
        origin="webhook",
        delivery_id=delivery_id,
        realm_hint=realm_hint,
    )
    result.skipped = skipped
    services.metrics.webhooks.labels(source=source).inc()
    return JSONResponse({"delivery_id": delivery_id, **result.as_dict()})
