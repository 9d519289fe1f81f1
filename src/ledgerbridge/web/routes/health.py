"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The database and the queue answer."""
    services = request.app.state.services
    checks: dict[str, Any] = {}
    try:
        async with services.pool.connection() as conn:
            await conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports any failure, never raises
        checks["database"] = f"error: {exc}"
    try:
        ok = await services.queue.check_connection_async()
        checks["queue"] = "ok" if ok else "schema missing: run ledgerbridge migrate"
    except Exception as exc:  # as above
        checks["queue"] = f"error: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.services.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
