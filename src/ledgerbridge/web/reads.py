"""What the API and the dashboard read, written once for both."""

from __future__ import annotations

from typing import Any

from ledgerbridge.db.queries import QUERIES


async def rows(services: Any, query: str, **params: Any) -> list[dict[str, Any]]:
    """Run a named query and return all its rows."""
    async with services.pool.connection() as conn:
        cur = await conn.execute(QUERIES[query], params)
        found: list[dict[str, Any]] = await cur.fetchall()
    return found


async def link_with_events(services: Any, link_id: int) -> dict[str, Any] | None:
    """A link and its timeline: events of either side's id, newest first."""
    links = await rows(services, "get_link", link_id=link_id)
    if not links:
        return None
    link = links[0]
    link["events"] = await rows(
        services,
        "link_events",
        link_id=link_id,
        connection_id=link["connection_id"],
        entity_type=link["entity_type"],
        internal_id=link["internal_id"],
        qbo_id=link["qbo_id"],
    )
    return link


async def connections(services: Any) -> list[dict[str, Any]]:
    """Connected companies, without their tokens."""
    return await rows(services, "list_connections")
