"""Signed webhook delivery with retries, hold/release and flush for tests."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
from typing import Any

import httpx

from ledgerbridge.simulators.internal import clock as clock_module

logger = logging.getLogger(__name__)

# The dispatcher re-reads the clock at least this often, so an injected base
# clock that moves without telling us still makes retries due.
MAX_IDLE_SECONDS = 0.5
# The delivery log is for inspection; a long demo must not grow it forever.
MAX_LOG_ENTRIES = 10_000
USER_AGENT = "ledgerbridge-internal-sim/1"


def sign(secret: str, timestamp: int, raw_body: bytes) -> str:
    """The ``X-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")>``."""
    message = f"{timestamp}.".encode() + raw_body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Delivery:
    """One event and its delivery state; every attempt carries the same body."""

    def __init__(
        self, *, event_id: str, event_type: str, raw_body: bytes, due_at: dt.datetime
    ) -> None:
        self.event_id = event_id
        self.event_type = event_type
        self.raw_body = raw_body
        self.due_at = due_at
        self.attempts = 0
        self.task: asyncio.Task[None] | None = None


class WebhookDispatcher:
    """Queues events and sends them from background tasks on the app's loop."""

    def __init__(
        self,
        *,
        clock: clock_module.SimClock,
        secret: str,
        url: str | None,
        retry_schedule_seconds: tuple[float, ...],
        timeout_seconds: float,
        seed: int | None,
    ) -> None:
        self._clock = clock
        self._secret = secret
        self._initial_url = url
        self._retry_schedule = retry_schedule_seconds
        self._timeout_seconds = timeout_seconds
        self._seed = seed
        self._http: httpx.AsyncClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        self.url = self._initial_url
        self.hold = False
        # A separate generator, so webhook traffic never shifts record ids.
        self._rng = random.Random(  # noqa: S311 - ids, not secrets
            None if self._seed is None else f"events-{self._seed}"
        )
        for delivery in getattr(self, "_queue", {}).values():
            if delivery.task is not None:
                delivery.task.cancel()
        self._queue: dict[str, Delivery] = {}
        self.log: list[dict[str, Any]] = []
        self._wake.set()

    # Lifecycle

    async def start(self) -> None:
        # trust_env=False: deliveries go where they are configured, never via
        # a proxy taken from the environment.
        self._http = httpx.AsyncClient(trust_env=False)
        self._runner = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        tasks = [d.task for d in self._queue.values() if d.task is not None]
        if self._runner is not None:
            tasks.append(self._runner)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    # Producing

    def emit(self, event_type: str, record_id: str, version: int) -> None:
        """Queue an event for a change; without a URL or hold it goes nowhere."""
        if self.url is None and not self.hold:
            return
        now = self._clock.now()
        event_id = f"evt_{self._rng.getrandbits(64):016x}"
        body = {
            "id": event_id,
            "type": event_type,
            "occurred_at": clock_module.format_timestamp(now),
            "data": {"id": record_id, "version": version},
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        self._queue[event_id] = Delivery(
            event_id=event_id, event_type=event_type, raw_body=raw, due_at=now
        )
        self._wake.set()

    def configure(self, *, url: str | None, set_url: bool, hold: bool | None) -> None:
        if set_url:
            self.url = url
        if hold is not None:
            self.hold = hold
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # Inspecting and steering (the control API)

    def headers_for(self, raw_body: bytes) -> dict[str, str]:
        timestamp = int(self._clock.now().timestamp())
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Signature": sign(self._secret, timestamp, raw_body),
        }

    def pending(self) -> list[Delivery]:
        return [d for d in self._queue.values() if d.task is None]

    def select(self, ids: list[str] | None) -> list[Delivery]:
        """Pending deliveries by id (all when ``ids`` is None), in queue order."""
        pending = self.pending()
        if ids is None:
            return pending
        by_id = {d.event_id: d for d in pending}
        missing = [event_id for event_id in ids if event_id not in by_id]
        if missing:
            raise KeyError(", ".join(missing))
        return [by_id[event_id] for event_id in ids]

    async def release(
        self, deliveries: list[Delivery], *, repeat: int
    ) -> list[dict[str, Any]]:
        """Send each delivery ``repeat`` times in a row, one after another.

        Sequential on purpose: a test that releases in reverse order gets
        exactly that order at the receiver.
        """
        results: list[dict[str, Any]] = []

        async def send_in_order() -> None:
            for delivery in deliveries:
                await self._deliver(
                    delivery, trigger="release", repeat=repeat, out=results
                )

        # Claim every chosen delivery before the first send, so the background
        # dispatcher cannot pick up a later one while an earlier one is sent.
        task = asyncio.create_task(send_in_order())
        for delivery in deliveries:
            delivery.task = task
        await task
        return results

    def drop(self, deliveries: list[Delivery]) -> list[str]:
        for delivery in deliveries:
            del self._queue[delivery.event_id]
            self._record(delivery, trigger="drop", status=None, error="dropped")
        return [d.event_id for d in deliveries]

    async def flush(self) -> list[dict[str, Any]]:
        """Attempt every delivery that is due now once, and wait for the answers.

        Deliveries already in flight are awaited too. Held deliveries are not
        due: they wait for ``release``.
        """
        results: list[dict[str, Any]] = []
        tasks = [d.task for d in self._queue.values() if d.task is not None]
        if not self.hold and self.url is not None:
            now = self._clock.now()
            for delivery in self.pending():
                if delivery.due_at <= now:
                    tasks.append(self._start(delivery, trigger="flush", out=results))
        await asyncio.gather(*tasks, return_exceptions=True)
        return results

    # Sending

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            wait_seconds = MAX_IDLE_SECONDS
            if not self.hold and self.url is not None:
                now = self._clock.now()
                for delivery in self.pending():
                    if delivery.due_at <= now:
                        self._start(delivery, trigger="schedule", out=None)
                    else:
                        ahead = (delivery.due_at - now).total_seconds()
                        wait_seconds = min(wait_seconds, ahead)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait_seconds)

    def _start(
        self, delivery: Delivery, *, trigger: str, out: list[dict[str, Any]] | None
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(
            self._deliver(delivery, trigger=trigger, repeat=1, out=out)
        )
        delivery.task = task
        return task

    async def _deliver(
        self,
        delivery: Delivery,
        *,
        trigger: str,
        repeat: int,
        out: list[dict[str, Any]] | None,
    ) -> None:
        try:
            delivered = False
            for _ in range(repeat):
                entry = await self._attempt(delivery, trigger=trigger)
                if out is not None:
                    out.append(entry)
                status = entry["status"]
                delivered = delivered or (status is not None and 200 <= status < 300)
            self._settle(delivery, delivered=delivered)
        finally:
            delivery.task = None
            self._wake.set()

    async def _attempt(self, delivery: Delivery, *, trigger: str) -> dict[str, Any]:
        delivery.attempts += 1
        url = self.url
        if url is None or self._http is None:
            return self._record(
                delivery, trigger=trigger, status=None, error="no webhook url"
            )
        try:
            response = await self._http.post(
                url,
                content=delivery.raw_body,
                headers=self.headers_for(delivery.raw_body),
                timeout=self._timeout_seconds,
            )
        except httpx.TimeoutException:
            return self._record(delivery, trigger=trigger, status=None, error="timeout")
        except httpx.HTTPError as exc:
            return self._record(
                delivery, trigger=trigger, status=None, error=type(exc).__name__
            )
        return self._record(delivery, trigger=trigger, status=response.status_code)

    def _settle(self, delivery: Delivery, *, delivered: bool) -> None:
        if delivery.event_id not in self._queue:
            return  # dropped or reset while the attempt was in flight
        if delivered:
            del self._queue[delivery.event_id]
            return
        if delivery.attempts > len(self._retry_schedule):
            logger.warning("giving up on webhook %s", delivery.event_id)
            del self._queue[delivery.event_id]
            return
        delay = self._retry_schedule[delivery.attempts - 1]
        delivery.due_at = self._clock.now() + dt.timedelta(seconds=delay)

    def _record(
        self,
        delivery: Delivery,
        *,
        trigger: str,
        status: int | None,
        error: str | None = None,
    ) -> dict[str, Any]:
        entry = {
            "id": delivery.event_id,
            "type": delivery.event_type,
            "attempt": delivery.attempts,
            "trigger": trigger,
            "url": self.url,
            "status": status,
            "error": error,
            "at": clock_module.format_timestamp(self._clock.now()),
        }
        self.log.append(entry)
        if len(self.log) > MAX_LOG_ENTRIES:
            del self.log[: len(self.log) - MAX_LOG_ENTRIES]
        return entry
