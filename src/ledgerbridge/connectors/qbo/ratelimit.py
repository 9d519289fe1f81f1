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
# Windows this much older than the current minute are deleted.
PRUNE_AFTER_SECONDS = 300

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

take_unit: LiteralString = """
INSERT INTO qbo_rate_windows AS w (realm_id, window_seconds, window_start, used)
VALUES (%(realm_id)s, %(window_seconds)s, %(window_start)s, 1)
ON CONFLICT (realm_id, window_seconds, window_start)
DO UPDATE SET used = w.used + 1
WHERE w.used < %(limit)s
RETURNING used
"""

prune_windows: LiteralString = """
DELETE FROM qbo_rate_windows
WHERE realm_id = %(realm_id)s AND window_start < %(before)s
"""

Sleep = Callable[[float], Awaitable[None]]


def window_start(now: dt.datetime, window_seconds: int) -> dt.datetime:
    """The start of the fixed window of ``window_seconds`` holding ``now``."""
    elapsed = (now - _EPOCH) // dt.timedelta(seconds=window_seconds)
    return _EPOCH + dt.timedelta(seconds=elapsed * window_seconds)


class PgRateLimiter:
    """Fixed 1-second and 60-second windows per realm, counted in Postgres.

    ``acquire`` takes one unit from both current windows in one transaction,
    so a unit is never spent from one window when the other is full. When a
    window is full it waits until that window ends and tries again. Ten
    workers on three machines see the same rows, so together they stay under
    Intuit's limits; each machine's clock decides which window is current, so
    the defaults keep some headroom for clock skew.
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
        self._limits = ((60, per_minute), (1, per_second))
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
        """Take a unit from every window, or return how long to wait."""
        fresh_minute = False
        async with self._pool.connection() as conn:
            # Raising inside the transaction block rolls back, returning the
            # units already taken from the other windows.
            try:
                async with conn.transaction():
                    for seconds, limit in self._limits:
                        start = window_start(now, seconds)
                        cur = await conn.execute(
                            take_unit,
                            {
                                "realm_id": realm_id,
                                "window_seconds": seconds,
                                "window_start": start,
                                "limit": limit,
                            },
                        )
                        row = await cur.fetchone()
                        if row is None:
                            raise _WindowFull(start + dt.timedelta(seconds=seconds))
                        if seconds == 60 and _used(row) == 1:
                            fresh_minute = True
            except _WindowFull as full:
                return max((full.ends - now).total_seconds(), 0.001)

            # The first request of a minute clears out long-gone windows.
            if fresh_minute:
                await conn.execute(
                    prune_windows,
                    {
                        "realm_id": realm_id,
                        "before": now - dt.timedelta(seconds=PRUNE_AFTER_SECONDS),
                    },
                )
        return None


class _WindowFull(Exception):
    def __init__(self, ends: dt.datetime) -> None:
        super().__init__("rate window full")
        self.ends = ends


def _used(row: Any) -> int:
    # The pool hands out dict rows; a plain tuple cursor is accepted too.
    return int(row["used"] if isinstance(row, dict) else row[0])
