"""The JSON API the dashboard and the CLI read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request

from ledgerbridge.web import actions, reads

router = APIRouter(prefix="/api")

MAX_BIGINT = 2**63 - 1
# Query parameters are checked here, so nothing odd reaches SQL (422 instead).
Limit = Annotated[int, Query(ge=1, le=1000)]
EntityType = Literal["invoice", "customer", "item"]
EventStatus = Literal[
    "received",
    "enqueued",
    "coalesced",
    "applied",
    "echo",
    "noop",
    "conflict",
    "held",
    "dead_letter",
    "failed",
]


def _services(request: Request) -> Any:
    return request.app.state.services


async def _all(request: Request, query: str, **params: Any) -> list[dict[str, Any]]:
    return await reads.rows(_services(request), query, **params)


async def _one(
    request: Request, query: str, what: str, **params: Any
) -> dict[str, Any]:
    rows = await _all(request, query, **params)
    if not rows:
        raise HTTPException(404, f"no such {what}")
    return rows[0]


@router.get("/events")
async def list_events(
    request: Request,
    status: EventStatus | None = None,
    after_id: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    return await _all(
        request,
        "recent_events",
        status=status,
        after_id=after_id,
        limit=limit,
    )


@router.post("/events/{event_id}/replay")
async def replay_event(request: Request, event_id: int) -> dict[str, Any]:
    try:
        return await actions.replay_event(_services(request), event_id)
    except actions.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except actions.Refused as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/links")
async def list_links(
    request: Request, entity_type: EntityType | None = None, limit: Limit = 200
) -> list[dict[str, Any]]:
    return await _all(request, "list_links", entity_type=entity_type, limit=limit)


@router.get("/links/{link_id}")
async def get_link(request: Request, link_id: int) -> dict[str, Any]:
    link = await reads.link_with_events(_services(request), link_id)
    if link is None:
        raise HTTPException(404, "no such link")
    return link


@router.get("/conflicts")
async def list_conflicts(
    request: Request,
    status: Literal["open", "resolved", "all"] = "open",
    limit: Limit = 200,
) -> list[dict[str, Any]]:
    wanted = None if status == "all" else status
    return await _all(request, "list_conflicts", status=wanted, limit=limit)


@router.get("/conflicts/{conflict_id}")
async def get_conflict(request: Request, conflict_id: int) -> dict[str, Any]:
    return await _one(request, "get_conflict", "conflict", conflict_id=conflict_id)


@router.post("/conflicts/{conflict_id}/resolve")
async def resolve_conflict(
    request: Request,
    conflict_id: int,
    payload: dict[str, Any] = Body(...),  # noqa: B008 - FastAPI's way to take a body
) -> dict[str, Any]:
    """Body: ``{"choices": {field: "internal" | "qbo" | {"value": …}}, "resolved_by": …}``."""
    choices = payload.get("choices")
    if not isinstance(choices, dict):
        raise HTTPException(400, "body needs {'choices': {field: choice}}")
    by = str(payload.get("resolved_by") or "api")
    try:
        return await actions.resolve_conflict(
            _services(request), conflict_id, choices, resolved_by=by
        )
    except actions.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except actions.Refused as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/dead-letters")
async def list_dead_letters(request: Request) -> list[dict[str, Any]]:
    return await _all(request, "dead_letters")


@router.post("/dead-letters/{event_id}/replay")
async def replay_dead_letter(request: Request, event_id: int) -> dict[str, Any]:
    return await replay_event(request, event_id)


@router.get("/connections")
async def list_connections(request: Request) -> list[dict[str, Any]]:
    return await reads.connections(_services(request))
