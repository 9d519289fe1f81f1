"""The jobs workers run: sync one entity, reconcile, recover stalled work."""

from __future__ import annotations

import logging
from typing import Any

import procrastinate

from ledgerbridge.queue import retry

logger = logging.getLogger(__name__)


def _services(context: procrastinate.JobContext) -> Any:
    return context.additional_context["services"]


async def sync_entity(
    context: procrastinate.JobContext,
    *,
    connection_id: int,
    side: str,
    entity_type: str,
    entity_id: str,
) -> None:
    """Refetch one entity and bring both sides into agreement."""
    from ledgerbridge.sync import engine

    services = _services(context)
    job = context.job
    try:
        await engine.sync_entity(
            services,
            connection_id=connection_id,
            side=side,
            entity_type=entity_type,
            entity_id=entity_id,
            job_id=job.id,
        )
    except Exception as exc:
        dead = retry.retry_delay(exc, job.attempts, services.rng) is None
        await engine.record_failure(
            services,
            connection_id=connection_id,
            side=side,
            entity_type=entity_type,
            entity_id=entity_id,
            error=exc,
            dead=dead,
        )
        raise


async def reconcile(
    context: procrastinate.JobContext, *, connection_id: int | None = None
) -> None:
    """Find drift from dropped webhooks and enqueue refetches for it."""
    from ledgerbridge.reconciler import reconciler

    await reconciler.reconcile_all(_services(context), connection_id=connection_id)


async def reconcile_periodic(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every minute: reconcile every connection and recover stalled work."""
    from ledgerbridge.reconciler import reconciler

    services = _services(context)
    await reconciler.recover_stalled(services, context.app)
    await reconciler.reconcile_all(services, connection_id=None)


async def reconcile_daily(context: procrastinate.JobContext, timestamp: int) -> None:
    """Once a day: compare every record, beyond change data capture's 30 days."""
    from ledgerbridge.reconciler import reconciler

    await reconciler.reconcile_all(_services(context), connection_id=None, full=True)


def register(app: procrastinate.App, *, periodic: bool = True) -> None:
    """Register the tasks on one app. Each app gets its own task objects:
    procrastinate binds a task to the app that registered it."""
    app.task(name="sync_entity", pass_context=True, retry=retry.SyncRetryStrategy())(
        sync_entity
    )
    app.task(name="reconcile", pass_context=True)(reconcile)
    every_minute = app.task(name="reconcile_periodic", pass_context=True)(
        reconcile_periodic
    )
    daily = app.task(name="reconcile_daily", pass_context=True)(reconcile_daily)
    if periodic:
        app.periodic(cron="* * * * *", periodic_id="reconcile")(every_minute)
        app.periodic(cron="17 3 * * *", periodic_id="reconcile_full")(daily)
