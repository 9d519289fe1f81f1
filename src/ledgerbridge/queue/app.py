"""The procrastinate app: where jobs live and how they are deferred."""

from __future__ import annotations

import procrastinate

from ledgerbridge.db import pool as db_pool
from ledgerbridge.queue import tasks

SYNC_TASK = "sync_entity"
RECONCILE_TASK = "reconcile"


def create_app(
    database_url: str, *, max_size: int = 10, periodic: bool = True
) -> procrastinate.App:
    """A procrastinate app on its own pool (opened with ``open_async``).

    ``periodic=False`` leaves out the every-minute reconcile, for callers
    (tests, tools) that run the reconciler themselves when they mean to.
    """
    connector = procrastinate.PsycopgConnector(
        conninfo=db_pool.libpq_url(database_url), min_size=1, max_size=max_size
    )
    app = procrastinate.App(connector=connector)
    tasks.register(app, periodic=periodic)
    return app


def entity_key(connection_id: int, side: str, entity_type: str, entity_id: str) -> str:
    """The lock and queueing-lock string of one entity as one side names it."""
    return f"{connection_id}:{side}:{entity_type}:{entity_id}"


async def enqueue_sync(
    app: procrastinate.App,
    *,
    connection_id: int,
    side: str,
    entity_type: str,
    entity_id: str,
) -> int | None:
    """Defer a sync job for one entity; ``None`` when one is already waiting.

    The queueing lock coalesces pending duplicates (a waiting job will refetch
    anyway); the lock keeps one job per entity key running at a time. A job
    already running does not block a new one from waiting behind it, so a
    change made during a sync is never lost.
    """
    key = entity_key(connection_id, side, entity_type, entity_id)
    try:
        job_id: int = await app.configure_task(
            SYNC_TASK, lock=key, queueing_lock=key
        ).defer_async(
            connection_id=connection_id,
            side=side,
            entity_type=entity_type,
            entity_id=entity_id,
        )
    except procrastinate.exceptions.AlreadyEnqueued:
        return None
    return job_id
