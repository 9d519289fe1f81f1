"""Periodic sweep: QBO change data capture, the internal changed-since listing,
and a hash comparison of linked pairs. Everything found goes through the queue.

A finding's dedupe key names the record and the version seen, so the same
drift found by two sweeps is enqueued once, and a record already in step
(its version equals the one stored on its link) is not enqueued at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import procrastinate

from ledgerbridge import errors
from ledgerbridge.db.queries import QUERIES
from ledgerbridge.ingest import store
from ledgerbridge.ingest.parse import Signal

logger = logging.getLogger(__name__)

# Sweeps overlap the previous window: clocks differ and QBO's change index
# may lag a write by a moment.
OVERLAP_SECONDS = 300
# QBO answers change data capture for at most 30 days back.
CDC_MAX_DAYS = 29
# A record left "received" this long was never handed to the queue.
STUCK_RECEIVED_SECONDS = 30

QBO_TYPES = {"Invoice": "invoice", "Customer": "customer", "Item": "item"}
INTERNAL_TYPES = {"invoices": "invoice", "customers": "customer", "items": "item"}


async def reconcile_all(
    services: Any, *, connection_id: int | None = None, full: bool = False
) -> int:
    """Sweep every connected company (or one); return how many records drifted."""
    found = await requeue_received(services)
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            QUERIES["connected_connections"], {"connection_id": connection_id}
        )
        connections = await cur.fetchall()
    for row in connections:
        try:
            found += await reconcile_connection(services, int(row["id"]), full=full)
        except errors.TransientError as exc:
            logger.warning(
                "reconcile postponed: %s",
                exc,
                extra={"action": "reconcile_postponed", "connection_id": row["id"]},
            )
    return found


async def requeue_received(services: Any) -> int:
    """Hand events that were recorded but never enqueued to the queue."""
    before = services.clock.now() - dt.timedelta(seconds=STUCK_RECEIVED_SECONDS)
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            QUERIES["events_left_received"], {"before": before, "limit": 500}
        )
        rows = await cur.fetchall()
    for row in rows:
        signal = Signal(
            side=row["side"],
            entity_type=row["entity_type"],
            entity_id=row["entity_id"],
            operation="",
            dedupe_key="",
            occurred_at=None,
        )
        await store.enqueue_event(
            services.pool, services.queue, row["id"], row["connection_id"], signal
        )
    return len(rows)


async def _cursor(conn: Any, connection_id: int, name: str) -> dt.datetime | None:
    cur = await conn.execute(
        QUERIES["get_cursor"], {"connection_id": connection_id, "name": name}
    )
    row = await cur.fetchone()
    return row["position"] if row else None


async def reconcile_connection(
    services: Any, connection_id: int, *, full: bool = False
) -> int:
    """One sweep of one company: both sides' changes since the stored cursors.

    ``full`` compares every record instead: all of QBO through paged queries
    (change data capture reaches back only 30 days) and the whole internal
    listing, against the versions stored on the links.
    """
    now = services.clock.now()
    async with services.pool.connection() as conn:
        qbo_since = await _cursor(conn, connection_id, "qbo_cdc")
        internal_since = (
            None if full else await _cursor(conn, connection_id, "internal_changed")
        )
        cur = await conn.execute(
            QUERIES["link_versions"], {"connection_id": connection_id}
        )
        links = await cur.fetchall()
    qbo_seen = {(r["entity_type"], r["qbo_id"]): r["qbo_sync_token"] for r in links}
    internal_seen = {
        (r["entity_type"], r["internal_id"]): r["internal_version"] for r in links
    }

    signals: list[Signal] = []

    # QBO: change data capture since the cursor, overlapped, within 30 days.
    earliest = now - dt.timedelta(days=CDC_MAX_DAYS)
    start = max(
        earliest, (qbo_since or earliest) - dt.timedelta(seconds=OVERLAP_SECONDS)
    )
    qbo = await services.qbo_for(connection_id)
    changed, server_time = await qbo.cdc(list(QBO_TYPES), start)
    if full:
        # Deleted records appear only in CDC; everything alive is listed.
        for name in QBO_TYPES:
            alive = await qbo.query(f"select * from {name}")
            deleted = [o for o in changed.get(name, []) if o.get("status") == "Deleted"]
            changed[name] = alive + deleted
    for name, objects in changed.items():
        entity_type = QBO_TYPES.get(name)
        if entity_type is None:
            continue
        for obj in objects:
            qbo_id = str(obj.get("Id"))
            deleted = obj.get("status") == "Deleted"
            version = "deleted" if deleted else str(obj.get("SyncToken"))
            if not deleted and qbo_seen.get((entity_type, qbo_id)) == version:
                continue
            signals.append(_finding("qbo", entity_type, qbo_id, version, connection_id))

    # Internal: the changed-since listing, page by page.
    for resource, entity_type in INTERNAL_TYPES.items():
        cursor: str | None = None
        since = (
            internal_since - dt.timedelta(seconds=OVERLAP_SECONDS)
            if internal_since
            else None
        )
        while True:
            rows, cursor = await services.internal.list_changed(
                resource, updated_since=since, cursor=cursor
            )
            for obj in rows:
                internal_id = str(obj["id"])
                version = obj.get("version")
                if internal_seen.get((entity_type, internal_id)) == version:
                    continue
                signals.append(
                    _finding(
                        "internal",
                        entity_type,
                        internal_id,
                        str(version),
                        connection_id,
                    )
                )
            if not cursor:
                break

    async with services.pool.connection() as conn:
        await conn.execute(
            QUERIES["set_cursor"],
            {
                "connection_id": connection_id,
                "name": "qbo_cdc",
                "position": server_time,
            },
        )
        await conn.execute(
            QUERIES["set_cursor"],
            {
                "connection_id": connection_id,
                "name": "internal_changed",
                "position": now,
            },
        )
    if signals:
        result = await store.record_signals(
            services.pool, services.queue, signals, origin="reconciler"
        )
        for signal in signals:
            services.metrics.reconciler_findings.labels(side=signal.side).inc()
        logger.info(
            "reconciler found %d records out of step (%d new)",
            len(signals),
            result.accepted,
            extra={"action": "reconcile_found", "connection_id": connection_id},
        )
        return result.accepted
    return 0


def _finding(
    side: str, entity_type: str, entity_id: str, version: str, connection_id: int
) -> Signal:
    return Signal(
        side=side,
        entity_type=entity_type,
        entity_id=entity_id,
        operation="drift",
        dedupe_key=f"reconcile:{connection_id}:{side}:{entity_type}:{entity_id}:{version}",
        occurred_at=None,
        connection_id=connection_id,
    )


async def recover_stalled(services: Any, app: procrastinate.App) -> int:
    """Retry jobs whose worker stopped sending heartbeats (it died mid-job).

    The job's transaction died with its worker, so nothing was half applied;
    running it again is safe.
    """
    stalled = await app.job_manager.get_stalled_jobs()
    count = 0
    for job in stalled:
        await app.job_manager.retry_job(job)
        count += 1
        logger.warning(
            "retrying stalled job %s",
            job.id,
            extra={"action": "job_stalled_retry", "job_id": job.id},
        )
    return count
