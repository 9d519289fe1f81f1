"""Knobs for one simulator instance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

# QBO retries at 10 s, 20 s, 30 s, 5 min, 20 min, ...; compressed for demos.
DEFAULT_RETRY_SCHEDULE_SECONDS: tuple[float, ...] = (1, 2, 3, 5, 10)


@dataclass(kw_only=True)
class SimConfig:
    """How the simulated QBO behaves; every limit of 0 means unlimited."""

    webhook_url: str | None = None
    verifier_token: str = "demo-qbo-verifier"
    client_id: str = "demo-client-id"
    client_secret: str = "demo-client-secret"
    state_path: Path | None = None
    access_token_ttl_seconds: int = 3600
    refresh_token_ttl_seconds: int = 8726400
    refresh_token_grace_seconds: float = 0
    webhook_format: str = "legacy"
    webhook_batch_window_seconds: float = 0.2
    webhook_retry_schedule_seconds: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE_SECONDS
    webhook_timeout_seconds: float = 3
    rate_per_minute: int = 500
    rate_per_second: int = 10
    batch_per_minute: int = 40
    max_concurrency: int = 10
    batch_max_items: int = 30
    seed: int | None = None
    # None follows the wall clock; a datetime freezes the clock there so
    # only /_sim/clock/advance moves it (deterministic tests).
    clock_start: dt.datetime | None = None
    duplicate_docnum_check: bool = False
    custom_txn_numbers: bool = True
