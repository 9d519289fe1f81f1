"""Retry policy: only the transient/permanent split decides."""

from __future__ import annotations

import random

from ledgerbridge import errors
from ledgerbridge.queue import retry


def test_retry_permanent_errors_die_at_once():
    assert retry.retry_delay(errors.MappingError("bad"), 0, random.Random(1)) is None


def test_retry_transient_errors_back_off_with_jitter_until_the_cap():
    rng = random.Random(1)
    delays = [retry.retry_delay(errors.TransientError("x"), n, rng) for n in range(7)]
    assert all(d is not None for d in delays)
    for attempt, delay in enumerate(delays):
        ceiling = min(retry.MAX_DELAY_SECONDS, retry.BASE_DELAY_SECONDS * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert (
        retry.retry_delay(errors.TransientError("x"), retry.MAX_ATTEMPTS - 1, rng)
        is None
    )


def test_retry_honours_retry_after():
    exc = errors.RetryAfter("slow down", seconds=60)
    assert retry.retry_delay(exc, 0, random.Random(1)) == 60


def test_retry_waits_for_a_reconnect_forever():
    exc = errors.ConnectionWaiting("reconnect")
    assert (
        retry.retry_delay(exc, 500, random.Random(1)) == retry.CONNECTION_WAIT_SECONDS
    )


def test_retry_unexpected_exceptions_are_retried_like_transient_ones():
    assert retry.retry_delay(KeyError("bug"), 0, random.Random(1)) is not None
