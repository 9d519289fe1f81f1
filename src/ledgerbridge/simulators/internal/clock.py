"""The simulator's one clock: a base time source plus an offset the tests advance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_timestamp(moment: dt.datetime) -> str:
    """Render a moment as the wire format, ``2026-12-04T15:04:05Z`` (whole seconds)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimClock:
    """Every timestamp, retry schedule and signature time is read from here.

    ``advance`` moves the offset, so a test can make a webhook retry due without
    sleeping; ``base`` may be injected to share a frozen clock with other servers.
    """

    def __init__(self, base: Callable[[], dt.datetime] | None = None) -> None:
        self._base = base or utc_now
        self._offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return self._base() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += dt.timedelta(seconds=seconds)

    def reset(self) -> None:
        self._offset = dt.timedelta(0)
