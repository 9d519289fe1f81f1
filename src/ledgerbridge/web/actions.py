"""What people ask for from the dashboard, API and CLI: replays and resolutions.

Each turns into an event and a queued job; nothing here talks to QBO or the
internal system.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from ledgerbridge.db.queries import QUERIES
from ledgerbridge.ingest import store
from ledgerbridge.ingest.parse import Signal
from ledgerbridge.sync import mapping, merge, sides


class NotFound(LookupError):
    pass


class Refused(ValueError):
    pass


async def replay_event(
    services: Any, event_id: int, *, origin: str = "replay"
) -> dict[str, Any]:
    """Enqueue the entity of an event again. Always safe: the job refetches."""
    async with services.pool.connection() as conn:
        cur = await conn.execute(QUERIES["get_event"], {"event_id": event_id})
        event = await cur.fetchone()
    if event is None:
        raise NotFound(f"no event {event_id}")
    if event["connection_id"] is None:
        raise Refused(f"event {event_id} belongs to no connection; connect QBO first")
    return await enqueue_entity(
        services,
        connection_id=event["connection_id"],
        side=event["side"],
        entity_type=event["entity_type"],
        entity_id=event["entity_id"],
        origin=origin,
    )


async def enqueue_entity(
    services: Any,
    *,
    connection_id: int,
    side: str,
    entity_type: str,
    entity_id: str,
    origin: str,
) -> dict[str, Any]:
    signal = Signal(
        side=side,
        entity_type=entity_type,
        entity_id=entity_id,
        operation=origin,
        # Every manual request is its own event, never deduplicated away.
        dedupe_key=f"{origin}:{uuid.uuid4()}",
        occurred_at=services.clock.now(),
        connection_id=connection_id,
    )
    result = await store.record_signals(
        services.pool, services.queue, [signal], origin=origin
    )
    return {
        "enqueued": result.accepted,
        "side": side,
        "entity_type": entity_type,
        "entity_id": entity_id,
    }


async def replay_dead_letters(services: Any) -> int:
    async with services.pool.connection() as conn:
        cur = await conn.execute(QUERIES["dead_letters"])
        rows = await cur.fetchall()
    for row in rows:
        await replay_event(services, row["id"])
    return len(rows)


async def resolve_conflict(
    services: Any, conflict_id: int, choices: dict[str, Any], *, resolved_by: str
) -> dict[str, Any]:
    """Record a person's per-field choices and queue the write of the result.

    Every conflicting field needs a choice: ``"internal"``, ``"qbo"`` or
    ``{"value": …}`` in the canonical JSON form.
    """
    async with services.pool.connection() as conn:
        cur = await conn.execute(QUERIES["get_conflict"], {"conflict_id": conflict_id})
        conflict = await cur.fetchone()
    if conflict is None:
        raise NotFound(f"no conflict {conflict_id}")
    if conflict["status"] != "open":
        raise Refused(f"conflict {conflict_id} is already {conflict['status']}")
    missing = [f["field"] for f in conflict["fields"] if f["field"] not in choices]
    if missing:
        raise Refused(
            f"choose a value for every conflicting field: {', '.join(missing)}"
        )
    if not _storable(choices):
        raise Refused("values may not contain NUL or unpaired surrogate characters")
    try:
        decoded = sides.choices_from_json(sides.MODEL[conflict["entity_type"]], choices)
    except (ValueError, TypeError, KeyError) as exc:
        raise Refused(str(exc)) from exc
    typed_lines = decoded.get("lines")
    if isinstance(typed_lines, merge.Value):
        await _check_lines(services, conflict["connection_id"], typed_lines.value)
    async with services.pool.connection() as conn:
        await conn.execute(
            QUERIES["request_resolution"],
            {
                "conflict_id": conflict_id,
                "resolution": Jsonb(choices),
                "resolved_by": resolved_by,
            },
        )
    return await enqueue_entity(
        services,
        connection_id=conflict["connection_id"],
        side="internal",
        entity_type=conflict["entity_type"],
        entity_id=conflict["internal_id"],
        origin="resolve",
    )


def _storable(value: Any) -> bool:
    """Can PostgreSQL store every string inside ``value`` as text?"""
    if isinstance(value, str):
        return "\x00" not in value and not any(
            0xD800 <= ord(c) <= 0xDFFF for c in value
        )
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


async def _check_lines(services: Any, connection_id: int, lines: Any) -> None:
    """Typed lines must be writable: known items, amounts as QBO checks them."""
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT internal_id FROM links WHERE connection_id = %(c)s"
            " AND entity_type = 'item' AND internal_id IS NOT NULL",
            {"c": connection_id},
        )
        known = {row["internal_id"] for row in await cur.fetchall()}
    for n, line in enumerate(lines, start=1):
        expected = mapping.line_amount(line.quantity, line.unit_price)
        if line.amount != expected:
            raise Refused(
                f"line {n}: amount {line.amount} is not quantity x unit price "
                f"({expected})"
            )
        if line.item_key not in known:
            raise Refused(f"line {n}: no linked item {line.item_key!r}")
