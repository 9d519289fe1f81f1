"""QBO's per-realm request limits: per second, per minute, batch per minute, in flight."""

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

    def reset(self) -> None:
        self._usage.clear()

    def admit(self, realm_id: str, now: float, *, batch: bool) -> bool:
        usage = self._usage.setdefault(realm_id, _RealmUsage())
        cfg = self.config
        if cfg.max_concurrency and usage.in_flight >= cfg.max_concurrency:
            return False
        if (
            cfg.rate_per_second
            and usage.second.count(now, SECOND) >= cfg.rate_per_second
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
        usage.second.stamps.append(now)
        usage.minute.stamps.append(now)
        if batch:
            usage.batches.stamps.append(now)
        return True

    def enter(self, realm_id: str) -> None:
        self._usage.setdefault(realm_id, _RealmUsage()).in_flight += 1

    def leave(self, realm_id: str) -> None:
        usage = self._usage.setdefault(realm_id, _RealmUsage())
        usage.in_flight = max(0, usage.in_flight - 1)
