"""The webhook endpoints: ``POST /webhooks/qbo`` and ``POST /webhooks/internal``."""

from __future__ import annotations

import logging

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


async def _too_large(request: Request, source: str, exc: _TooLarge) -> JSONResponse:
    services = request.app.state.services
    await store.record_delivery(
        services.pool,
        source=source,
        signature_ok=False,
        status_code=413,
        error=str(exc),
        headers=store.kept_headers(request.headers),
        body=b"",
    )
    logger.warning(
        "webhook refused: %s",
        exc,
        extra={"action": "webhook_refused", "source": source, "status": 413},
    )
    return JSONResponse({"error": str(exc)}, status_code=413)


async def _refuse(
    request: Request, source: str, body: bytes, exc: errors.IngestError
) -> JSONResponse:
    status = 401 if isinstance(exc, errors.BadSignature) else 400
    services = request.app.state.services
    await store.record_delivery(
        services.pool,
        source=source,
        signature_ok=status != 401,
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


@router.post("/webhooks/qbo")
async def qbo_webhook(request: Request) -> JSONResponse:
    """A QBO notification (legacy or CloudEvents), signed with intuit-signature."""
    services = request.app.state.services
    try:
        body = await _read_body(request)
    except _TooLarge as exc:
        return await _too_large(request, "qbo", exc)
    try:
        signature.verify_qbo(
            services.settings.qbo_verifier_token,
            request.headers.get("intuit-signature"),
            body,
        )
        signals, skipped = parse.parse_qbo(body)
    except errors.IngestError as exc:
        return await _refuse(request, "qbo", body, exc)
    return await _accept(request, "qbo", body, signals, skipped, realm_hint=None)


@router.post("/webhooks/internal")
async def internal_webhook(request: Request) -> JSONResponse:
    """An internal-system event, signed with X-Signature (timestamped)."""
    services = request.app.state.services
    try:
        body = await _read_body(request)
    except _TooLarge as exc:
        return await _too_large(request, "internal", exc)
    try:
        signature.verify_internal(
            services.settings.internal_webhook_secret,
            request.headers.get("x-signature"),
            body,
            now=services.clock.now().timestamp(),
            tolerance_seconds=services.settings.webhook_tolerance_seconds,
        )
        signals = [parse.parse_internal(body)]
    except errors.IngestError as exc:
        return await _refuse(request, "internal", body, exc)
    realm = request.query_params.get("realm_id")
    return await _accept(request, "internal", body, signals, 0, realm_hint=realm)


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
