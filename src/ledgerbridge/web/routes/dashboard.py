"""The server-rendered dashboard."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledgerbridge.web import actions, reads
from ledgerbridge.web.routes._templates import templates

router = APIRouter(include_in_schema=False)


async def _rows(request: Request, query: str, **params: Any) -> list[dict[str, Any]]:
    return await reads.rows(request.app.state.services, query, **params)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    counts = {r["status"]: r["n"] for r in await _rows(request, "event_counts")}
    context = {
        "events": await _rows(
            request, "recent_events", status=None, after_id=None, limit=50
        ),
        "links": await _rows(request, "list_links", entity_type="invoice", limit=100),
        "conflicts": await _rows(request, "list_conflicts", status="open", limit=100),
        "dead_letters": await _rows(request, "dead_letters"),
        "connections": await reads.connections(request.app.state.services),
        "counts": counts,
    }
    return templates.TemplateResponse(request, "overview.html", context)


@router.get("/links/{link_id}", response_class=HTMLResponse)
async def link_timeline(request: Request, link_id: int) -> HTMLResponse:
    link = await reads.link_with_events(request.app.state.services, link_id)
    if link is None:
        raise HTTPException(404, "no such link")
    events = link["events"]
    base = json.dumps(link["base"], indent=2, sort_keys=True) if link["base"] else ""
    return templates.TemplateResponse(
        request, "link.html", {"link": link, "events": events, "base": base}
    )


@router.get("/conflicts", response_class=HTMLResponse)
async def conflicts(request: Request) -> HTMLResponse:
    rows = await _rows(request, "list_conflicts", status=None, limit=200)
    return templates.TemplateResponse(request, "conflicts.html", {"conflicts": rows})


@router.get("/conflicts/{conflict_id}", response_class=HTMLResponse)
async def conflict(request: Request, conflict_id: int, error: str = "") -> HTMLResponse:
    rows = await _rows(request, "get_conflict", conflict_id=conflict_id)
    if not rows:
        raise HTTPException(404, "no such conflict")
    return templates.TemplateResponse(
        request, "conflict.html", {"c": rows[0], "error": error, "dumps": _pretty}
    )


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True)


@router.post("/conflicts/{conflict_id}/resolve")
async def resolve(request: Request, conflict_id: int) -> RedirectResponse:
    """The resolution form: per field ``choice_<field>`` and ``value_<field>``."""
    form = await request.form()
    choices: dict[str, Any] = {}
    for key, choice in form.items():
        if not key.startswith("choice_"):
            continue
        field = key.removeprefix("choice_")
        if choice == "value":
            raw = str(form.get(f"value_{field}", ""))
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw  # plain text for text fields
            choices[field] = {"value": value}
        else:
            choices[field] = str(choice)
    try:
        await actions.resolve_conflict(
            request.app.state.services,
            conflict_id,
            choices,
            resolved_by=str(form.get("resolved_by") or "dashboard"),
        )
    except (actions.NotFound, actions.Refused) as exc:
        return RedirectResponse(
            f"/conflicts/{conflict_id}?error={exc}", status_code=303
        )
    return RedirectResponse(f"/conflicts/{conflict_id}", status_code=303)


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters(request: Request) -> HTMLResponse:
    rows = await _rows(request, "dead_letters")
    return templates.TemplateResponse(request, "dead_letters.html", {"rows": rows})


@router.post("/dead-letters/{event_id}/replay")
async def replay_dead_letter(request: Request, event_id: int) -> RedirectResponse:
    try:
        await actions.replay_event(request.app.state.services, event_id)
    except (actions.NotFound, actions.Refused) as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedirectResponse("/dead-letters", status_code=303)
