"""The long-lived collaborators of a LedgerBridge process, built once."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import procrastinate
from psycopg_pool import AsyncConnectionPool

from ledgerbridge import clock as clock_module
from ledgerbridge.connectors.internal.client import InternalClient
from ledgerbridge.connectors.qbo import auth, ratelimit
from ledgerbridge.connectors.qbo.client import QboClient
from ledgerbridge.db import embedded
from ledgerbridge.db import pool as db_pool
from ledgerbridge.metrics import Metrics
from ledgerbridge.queue import app as queue_app
from ledgerbridge.settings import Settings

logger = logging.getLogger(__name__)


@dataclasses.dataclass(kw_only=True)
class Services:
    settings: Settings
    database_url: str
    pool: AsyncConnectionPool[Any]
    queue: procrastinate.App
    clock: clock_module.Clock
    rng: random.Random
    http: httpx.AsyncClient
    internal: InternalClient
    oauth: auth.QboOAuth
    tokens: auth.TokenManager
    rate_limiter: ratelimit.PgRateLimiter
    metrics: Metrics

    async def qbo_for(self, connection_id: int) -> QboClient:
        """A QBO client for one connection, sharing this process's HTTP pool."""
        return QboClient(
            self.http,
            base_url=self.settings.qbo_base_url,
            realm_id=await self.tokens.realm_id(connection_id),
            tokens=self.tokens.token_source(connection_id),
            minorversion=self.settings.qbo_minorversion,
            rate_limiter=self.rate_limiter,
            timeout=self.settings.http_timeout_seconds,
        )


def resolve_database_url(settings: Settings) -> str:
    """``DATABASE_URL`` when set; otherwise the embedded server, started if needed."""
    if settings.database_url:
        return settings.database_url
    return embedded.start(settings.data_dir)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    database_url: str | None = None,
    clock: clock_module.Clock | None = None,
    rng: random.Random | None = None,
    pool_size: int = 10,
    periodic: bool = True,
) -> AsyncIterator[Services]:
    """Open the pool, the queue and the HTTP clients; close them on exit."""
    url = database_url or resolve_database_url(settings)
    # An embedded server this call started is stopped again on the way out
    # (unless another process, such as a running demo, still uses it).
    started_embedded = database_url is None and settings.database_url is None
    clock = clock or clock_module.SystemClock()
    pool = db_pool.create_pool(url, max_size=pool_size)
    await pool.open(wait=True)
    queue = queue_app.create_app(url, periodic=periodic)
    http = httpx.AsyncClient(timeout=settings.http_timeout_seconds)
    oauth = auth.QboOAuth.from_settings(settings, clock)
    try:
        async with queue.open_async():
            yield Services(
                settings=settings,
                database_url=url,
                pool=pool,
                queue=queue,
                clock=clock,
                rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
                http=http,
                internal=InternalClient(
                    base_url=settings.internal_base_url,
                    api_token=settings.internal_api_token,
                    http=http,
                    timeout_seconds=settings.http_timeout_seconds,
                ),
                oauth=oauth,
                tokens=auth.TokenManager(
                    pool, oauth, auth.load_fernet(settings), clock
                ),
                rate_limiter=ratelimit.PgRateLimiter(pool, clock),
                metrics=Metrics(),
            )
    finally:
        await http.aclose()
        await pool.close()
        if started_embedded:
            embedded.stop(settings.data_dir)
