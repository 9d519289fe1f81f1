"""QBO's request limits: per minute and batch per minute for a realm; per second
and in flight for a realm *and app*, so one app's burst cannot throttle another."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .config import SimConfig

SECOND = 1.0
MINUTE = 60.0


@dataclass
class _Window:
    stamps: deque[float] = field(default_factory=deque)

    def count(self, now: float, span: float) -> int:
        while self.stamps and self.stamps[0] <= now - span:
            self.stamps.popleft()
        return len(self.stamps)


@dataclass
class _RealmUsage:
    second: _Window = field(default_factory=_Window)
    minute: _Window = field(default_factory=_Window)
    batches: _Window = field(default_factory=_Window)
    in_flight: int = 0


class Throttle:
    """Admit or refuse one API call; 0 for any limit means unlimited."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._usage: dict[str, _RealmUsage] = {}
        self._apps: dict[tuple[str, str], _RealmUsage] = {}

    def reset(self) -> None:
        self._usage.clear()
        self._apps.clear()

    def admit(self, realm_id: str, now: float, *, batch: bool, app: str = "") -> bool:
        usage = self._usage.setdefault(realm_id, _RealmUsage())
        mine = self._apps.setdefault((realm_id, app), _RealmUsage())
        cfg = self.config
        if cfg.max_concurrency and mine.in_flight >= cfg.max_concurrency:
            return False
        if (
            cfg.rate_per_second
            and mine.second.count(now, SECOND) >= cfg.rate_per_second
        ):
            return False
        if (
            cfg.rate_per_minute
            and usage.minute.count(now, MINUTE) >= cfg.rate_per_minute
        ):
            return False
        batch_limit = cfg.batch_per_minute
        if batch and batch_limit and usage.batches.count(now, MINUTE) >= batch_limit:
            return False
        mine.second.stamps.append(now)
        usage.minute.stamps.append(now)
        if batch:
            usage.batches.stamps.append(now)
        return True

    def enter(self, realm_id: str, app: str = "") -> None:
        self._apps.setdefault((realm_id, app), _RealmUsage()).in_flight += 1

    def leave(self, realm_id: str, app: str = "") -> None:
        usage = self._apps.setdefault((realm_id, app), _RealmUsage())
        usage.in_flight = max(0, usage.in_flight - 1)
