"""A per-realm QBO request budget shared by every worker through Postgres."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, LiteralString

from psycopg_pool import AsyncConnectionPool

from ledgerbridge.clock import Clock
from ledgerbridge.connectors.qbo.errors import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

# Intuit allows 500 requests/minute per realm and 10/second per realm and app;
# the defaults leave headroom for clocks that disagree by a little.
DEFAULT_PER_MINUTE = 450
DEFAULT_PER_SECOND = 8
# Request stamps older than this are deleted.
PRUNE_AFTER_SECONDS = 120

# All workers of all machines serialise on one advisory lock per realm while
# they count and take a unit; the critical section is two short statements.
lock_realm: LiteralString = """
SELECT pg_advisory_xact_lock(hashtext('ledgerbridge:qbo-rate:' || %(realm_id)s))
"""

# The log holds one row per instant a request was granted (window_seconds 0),
# so both budgets are counted over exact sliding windows, as QBO counts them.
count_recent: LiteralString = """
SELECT coalesce(sum(used) FILTER (WHERE window_start > %(second_ago)s), 0) AS second_used,
       min(window_start) FILTER (WHERE window_start > %(second_ago)s) AS second_oldest,
       coalesce(sum(used), 0) AS minute_used,
       min(window_start) AS minute_oldest
FROM qbo_rate_windows
WHERE realm_id = %(realm_id)s AND window_seconds = 0
  AND window_start > %(minute_ago)s
"""

take_unit: LiteralString = """
INSERT INTO qbo_rate_windows AS w (realm_id, window_seconds, window_start, used)
VALUES (%(realm_id)s, 0, %(now)s, 1)
ON CONFLICT (realm_id, window_seconds, window_start)
DO UPDATE SET used = w.used + 1
"""

prune_windows: LiteralString = """
DELETE FROM qbo_rate_windows
WHERE realm_id = %(realm_id)s AND window_start < %(before)s
"""

Sleep = Callable[[float], Awaitable[None]]

SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(seconds=60)


class PgRateLimiter:
    """Sliding one-second and sixty-second budgets per realm, kept in Postgres.

    ``acquire`` counts the requests granted in the last second and the last
    minute and takes a unit only when both are under their limits, all under
    one advisory lock per realm, so ten workers on three machines see one
    budget and together stay under Intuit's limits. Counting over sliding
    windows (not fixed ones) matters: two full fixed windows back to back
    would put twice the limit inside one second. Each machine's clock stamps
    its own requests, so the defaults keep some headroom for clock skew.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        clock: Clock,
        *,
        per_second: int = DEFAULT_PER_SECOND,
        per_minute: int = DEFAULT_PER_MINUTE,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_second < 1 or per_minute < 1:
            raise ValueError("rate limits must be positive")
        self._pool = pool
        self._clock = clock
        self._per_second = per_second
        self._per_minute = per_minute
        self._sleep = sleep

    async def acquire(self, realm_id: str) -> None:
        """Take one request from the realm's budget, waiting while it is spent."""
        while True:
            now = self._clock.now()
            wait = await self._try_take(realm_id, now)
            if wait is None:
                return
            logger.debug(
                "qbo rate budget spent, waiting %.3fs",
                wait,
                extra={"action": "rate_wait", "realm_id": realm_id, "intuit_tid": None},
            )
            await self._sleep(wait)

    async def _try_take(self, realm_id: str, now: dt.datetime) -> float | None:
        """Take a unit, or return how long until the oldest counted one expires."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(lock_realm, {"realm_id": realm_id})
            cur = await conn.execute(
                count_recent,
                {
                    "realm_id": realm_id,
                    "second_ago": now - SECOND,
                    "minute_ago": now - MINUTE,
                },
            )
            row = await cur.fetchone()
            if row is None:  # an aggregate always yields a row
                raise RuntimeError("rate budget count returned no row")
            if int(row["second_used"]) >= self._per_second:
                return _until(row["second_oldest"] + SECOND, now)
            if int(row["minute_used"]) >= self._per_minute:
                return _until(row["minute_oldest"] + MINUTE, now)
            await conn.execute(take_unit, {"realm_id": realm_id, "now": now})
            await conn.execute(
                prune_windows,
                {
                    "realm_id": realm_id,
                    "before": now - dt.timedelta(seconds=PRUNE_AFTER_SECONDS),
                },
            )
        return None


def _until(moment: dt.datetime, now: dt.datetime) -> float:
    return max((moment - now).total_seconds(), 0.001)
