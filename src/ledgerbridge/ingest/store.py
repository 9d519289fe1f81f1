"""Record deliveries and events, dedupe them, hand new ones to the queue."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import procrastinate
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ledgerbridge.db.queries import QUERIES
from ledgerbridge.ingest.parse import Signal
from ledgerbridge.queue import app as queue_app

logger = logging.getLogger(__name__)

# Headers worth keeping with a delivery; never Authorization or cookies.
KEPT_HEADERS = ("content-type", "user-agent", "intuit-signature", "x-signature")


@dataclasses.dataclass(kw_only=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    coalesced: int = 0
    unrouted: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def kept_headers(headers: Any) -> dict[str, str]:
    return {k: headers[k] for k in KEPT_HEADERS if k in headers}


async def record_delivery(
    pool: AsyncConnectionPool[Any],
    *,
    source: str,
    signature_ok: bool,
    status_code: int,
    error: str | None,
    headers: dict[str, str],
    body: bytes,
) -> int:
    """Append one delivery, valid or not, to the log."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            QUERIES["insert_delivery"],
            {
                "source": source,
                "signature_ok": signature_ok,
                "status_code": status_code,
                "error": error,
                "headers": Jsonb(headers),
                # Undecodable bytes and NULs (which a text column refuses) are
                # kept visibly as U+FFFD rather than dropped.
                "body": body.decode("utf-8", errors="replace").replace(
                    "\x00", "\ufffd"
                ),
            },
        )
        row = await cur.fetchone()
    if row is None:
        raise RuntimeError("INSERT … RETURNING returned no row")
    return int(row["id"])


async def _connection_for(
    conn: Any, signal: Signal, realm_hint: str | None
) -> int | None:
    if signal.connection_id is not None:
        return signal.connection_id
    realm = signal.realm_id or realm_hint
    if realm:
        cur = await conn.execute(
            QUERIES["find_connection_by_realm"], {"realm_id": realm}
        )
    else:
        cur = await conn.execute(QUERIES["default_connection"])
    row = await cur.fetchone()
    return int(row["id"]) if row else None


async def record_signals(
    pool: AsyncConnectionPool[Any],
    queue: procrastinate.App,
    signals: Sequence[Signal],
    *,
    origin: str,
    delivery_id: int | None = None,
    realm_hint: str | None = None,
) -> IngestResult:
    """Store each signal as an event and enqueue its entity once.

    Events are committed before anything is deferred, so a crash between the
    two leaves them ``received``; the reconciler's sweep enqueues those.
    """
    result = IngestResult()
    fresh: list[tuple[int, int, Signal]] = []
    async with pool.connection() as conn, conn.transaction():
        for signal in signals:
            connection_id = await _connection_for(conn, signal, realm_hint)
            cur = await conn.execute(
                QUERIES["insert_event"],
                {
                    "connection_id": connection_id,
                    "delivery_id": delivery_id,
                    "origin": origin,
                    "side": signal.side,
                    "entity_type": signal.entity_type,
                    "entity_id": signal.entity_id,
                    "operation": signal.operation,
                    "dedupe_key": signal.dedupe_key or None,
                    "occurred_at": signal.occurred_at,
                    "detail": "" if connection_id else "no connection for this realm",
                },
            )
            row = await cur.fetchone()
            if row is not None and connection_id is not None:
                await _maybe_repoint_merged(conn, connection_id, signal)
            if row is None:
                result.duplicates += 1
            elif connection_id is None:
                result.unrouted += 1
            else:
                fresh.append((int(row["id"]), connection_id, signal))
    for event_id, connection_id, signal in fresh:
        await enqueue_event(pool, queue, event_id, connection_id, signal)
        result.accepted += 1
    return result


async def _maybe_repoint_merged(conn: Any, connection_id: int, signal: Signal) -> None:
    """After a QBO customer merge, let the survivor inherit the merged link.

    Only the webhook names the customer that was merged away (``deletedId``);
    a refetch shows it merely inactive. Repointing here, in the transaction
    that records the event, happens before any job for the merged customer's
    invoices runs, so they map to the same internal customer as before and
    nothing is rewritten. When the survivor already has a link of its own the
    merged link is left as it is: its invoices follow the survivor on their
    next sync, and the internal customer keeps a link to an inactive QBO
    customer, which new invoices report as a dead letter.
    """
    if signal.side != "qbo" or signal.entity_type != "customer":
        return
    if not signal.merged_from or signal.merged_from == signal.entity_id:
        return
    await conn.execute(
        QUERIES["repoint_merged_qbo_id"],
        {
            "connection_id": connection_id,
            "entity_type": signal.entity_type,
            "old_qbo_id": signal.merged_from,
            "new_qbo_id": signal.entity_id,
        },
    )


async def enqueue_event(
    pool: AsyncConnectionPool[Any],
    queue: procrastinate.App,
    event_id: int,
    connection_id: int,
    signal: Signal,
) -> int | None:
    """Defer the entity's sync job and note on the event where it went."""
    job_id = await queue_app.enqueue_sync(
        queue,
        connection_id=connection_id,
        side=signal.side,
        entity_type=signal.entity_type,
        entity_id=signal.entity_id,
    )
    async with pool.connection() as conn:
        await conn.execute(
            QUERIES["mark_event_enqueued"],
            {
                "event_id": event_id,
                "status": "enqueued" if job_id else "coalesced",
                "job_id": job_id,
            },
        )
    return job_id
