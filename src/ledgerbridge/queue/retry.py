"""When a failed sync job runs again: backoff with jitter, Retry-After honoured."""

from __future__ import annotations

import random
from typing import Any

from procrastinate import RetryDecision
from procrastinate.retry import BaseRetryStrategy

from ledgerbridge import errors

MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 600.0
# A disconnected QBO connection is not the job's fault: it waits for a person
# to reconnect, polling at this pace, and never becomes a dead letter.
CONNECTION_WAIT_SECONDS = 30.0


def backoff_seconds(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: half fixed, half random."""
    ceiling: float = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2**attempt)
    return ceiling / 2 + rng.random() * ceiling / 2


def retry_delay(
    exception: BaseException, attempts: int, rng: random.Random
) -> float | None:
    """Seconds until the next attempt, or ``None`` when the job is dead.

    Only the transient/permanent split decides; an unexpected exception (a
    bug) is retried like a transient one, so a fix can land before it dies.
    """
    if isinstance(exception, errors.ConnectionWaiting):
        return CONNECTION_WAIT_SECONDS
    if isinstance(exception, errors.PermanentError):
        return None
    if attempts + 1 >= MAX_ATTEMPTS:
        return None
    delay = backoff_seconds(attempts, rng)
    retry_after = getattr(exception, "retry_after_seconds", None)
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    return delay


class SyncRetryStrategy(BaseRetryStrategy):
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def get_retry_decision(
        self, *, exception: BaseException, job: Any
    ) -> RetryDecision | None:
        delay = retry_delay(exception, job.attempts, self.rng)
        if delay is None:
            return None
        decision: RetryDecision = RetryDecision(retry_in={"seconds": round(delay)})
        return decision
