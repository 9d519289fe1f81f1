"""Run a procrastinate worker with LedgerBridge's services in its job context."""

from __future__ import annotations

import logging

from ledgerbridge import runtime
from ledgerbridge.settings import Settings

logger = logging.getLogger(__name__)


async def run(
    settings: Settings,
    *,
    concurrency: int,
    wait: bool = True,
    install_signal_handlers: bool = True,
) -> None:
    """Work until stopped (or, with ``wait=False``, until the queue is empty)."""
    async with runtime.open_services(
        settings, pool_size=concurrency * 2 + 2
    ) as services:
        logger.info("worker started", extra={"action": "worker_started"})
        await services.queue.run_worker_async(
            concurrency=concurrency,
            wait=wait,
            additional_context={"services": services},
            install_signal_handlers=install_signal_handlers,
            name="ledgerbridge",
            fetch_job_polling_interval=1.0,
            # The event log keeps the history; finished jobs would only grow
            # the queue's table. Failed ones stay, as dead letters.
            delete_jobs="successful",
        )
