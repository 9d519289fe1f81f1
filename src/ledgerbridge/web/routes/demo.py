"""The demo panel: inject the faults LedgerBridge is built to survive.

It drives only the simulators' control APIs (``/_sim/…``) and the queue; it
never writes invoices to either system. Mounted only with ``demo_panel`` on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledgerbridge.queue import app as queue_app
from ledgerbridge.web.routes._templates import templates

router = APIRouter(include_in_schema=False)

# Longer than LedgerBridge's HTTP timeout, so the create really times out.
TIMEOUT_HOLD_MARGIN_SECONDS = 2.0

Action = Callable[[Any], Awaitable[str]]


def _sims(services: Any) -> dict[str, str]:
    s = services.settings
    return {"QBO": s.qbo_base_url, "Internal system": s.internal_base_url}


async def _both(services: Any, method: str, path: str, json: Any = None) -> list[Any]:
    results = []
    for base in _sims(services).values():
        resp = await services.http.request(method, base + path, json=json)
        resp.raise_for_status()
        results.append(resp.json())
    return results


async def _hold(services: Any) -> str:
    await _both(services, "POST", "/_sim/webhooks/config", {"hold": True})
    return (
        "Webhooks from both systems are now held. Make some edits, then deliver them."
    )


async def _release(services: Any, **options: Any) -> str:
    await _both(services, "POST", "/_sim/webhooks/config", {"hold": False})
    results = await _both(services, "POST", "/_sim/webhooks/release", options)
    sent = sum(len(r) for r in results)
    return f"Delivered {sent} held webhook sends ({options or 'once each, in order'})."


async def _drop(services: Any) -> str:
    results = await _both(services, "POST", "/_sim/webhooks/drop", {})
    await _both(services, "POST", "/_sim/webhooks/config", {"hold": False})
    dropped = sum(len(r.get("dropped", [])) for r in results)
    return f"Dropped {dropped} webhooks. Run the reconciler to find the drift."


async def _qbo_fault(services: Any, spec: dict[str, Any]) -> None:
    resp = await services.http.post(
        services.settings.qbo_base_url + "/_sim/faults", json=spec
    )
    resp.raise_for_status()


async def _create_timeout(services: Any) -> str:
    hold = services.settings.http_timeout_seconds + TIMEOUT_HOLD_MARGIN_SECONDS
    await _qbo_fault(
        services,
        {
            "kind": "timeout_after_commit",
            "method": "POST",
            "path_regex": "/invoice$",
            "times": 1,
            "hold_seconds": hold,
        },
    )
    return "The next invoice written to QBO lands but its answer never arrives."


async def _outage(services: Any) -> str:
    await _qbo_fault(services, {"kind": "status", "status": 503, "times": 3})
    return "QBO answers the next three calls with 503."


async def _throttle(services: Any) -> str:
    await _qbo_fault(services, {"kind": "throttle", "times": 2, "xml": True})
    return "QBO throttles the next two calls (429, as XML)."


async def _reconcile(services: Any) -> str:
    await services.queue.configure_task(queue_app.RECONCILE_TASK).defer_async(
        connection_id=None
    )
    return "The reconciler is queued; its findings appear in the live events."


ACTIONS: dict[str, tuple[str, Action]] = {
    "hold": ("Hold webhooks", _hold),
    "release": ("Deliver held webhooks", lambda s: _release(s)),
    "duplicate": (
        "Deliver each held webhook ten times",
        lambda s: _release(s, repeat=10),
    ),
    "reverse": (
        "Deliver held webhooks newest first",
        lambda s: _release(s, reverse=True),
    ),
    "drop": ("Drop held webhooks", _drop),
    "timeout": ("Next QBO invoice write times out after landing", _create_timeout),
    "outage": ("QBO 503 for three calls", _outage),
    "throttle": ("QBO throttles two calls", _throttle),
    "reconcile": ("Run the reconciler now", _reconcile),
}


def _enabled(request: Request) -> Any:
    services = request.app.state.services
    if not services.settings.demo_panel:
        raise HTTPException(404, "the demo panel is off (LEDGERBRIDGE_DEMO_PANEL)")
    return services


@router.get("/demo", response_class=HTMLResponse)
async def panel(request: Request, done: str = "", error: str = "") -> HTMLResponse:
    services = _enabled(request)
    state: dict[str, Any] = {}
    for name, base in _sims(services).items():
        try:
            config = (await services.http.get(base + "/_sim/webhooks/config")).json()
            pending = (await services.http.get(base + "/_sim/webhooks/pending")).json()
            state[name] = {
                "hold": config.get("hold"),
                "pending": len(pending),
                "url": base,
            }
        except (httpx.HTTPError, ValueError) as exc:
            state[name] = {"error": str(exc), "url": base}
    return templates.TemplateResponse(
        request,
        "demo.html",
        {"actions": ACTIONS, "state": state, "done": done, "error": error},
    )


@router.post("/demo/{action}")
async def run_action(request: Request, action: str) -> RedirectResponse:
    services = _enabled(request)
    if action not in ACTIONS:
        raise HTTPException(404, f"no demo action {action!r}")
    try:
        message = await ACTIONS[action][1](services)
    except httpx.HTTPError as exc:
        return RedirectResponse(f"/demo?error={exc}", status_code=303)
    return RedirectResponse(f"/demo?done={message}", status_code=303)
