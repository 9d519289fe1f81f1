"""Time as a collaborator, so tests can control it."""

from __future__ import annotations

import datetime as dt
import random
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """The wall clock, always timezone-aware UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self._now = start

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)


def make_rng(seed: int | None) -> random.Random:
    """A random source; tests pass a seed so jitter is reproducible."""
    return random.Random(seed)  # noqa: S311 - jitter, not cryptography
