"""Signed, batched, retried webhook deliveries in QBO's legacy or CloudEvents format."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import clock, wire
from .company import Change
from .config import SimConfig

logger = logging.getLogger(__name__)

PAST_TENSE = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Merge": "merged",
    "Emailed": "emailed",
}


@dataclass
class Delivery:
    """One webhook request body, sent once and then retried as QBO does."""

    id: str
    realm_id: str
    body: str
    headers: dict[str, str]
    attempted: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "realm_id": self.realm_id,
            "body": self.body,
            "headers": self.headers,
        }


def sign(verifier_token: str, body: bytes) -> str:
    """``intuit-signature``: base64 of HMAC-SHA256 over the raw body."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class WebhookDispatcher:
    """Collect changes per realm for a window, then deliver them as one request."""

    def __init__(
        self,
        config: SimConfig,
        sim_clock: clock.SimClock,
        realm_format: Callable[[str], str],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.clock = sim_clock
        self.realm_format = realm_format
        self.rng = rng
        self.url = config.webhook_url
        self.hold = False
        self.pending: list[Delivery] = []
        self.log: list[dict[str, Any]] = []
        self._buffers: dict[str, list[Change]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._inflight: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._counter = 0
        digest = hashlib.sha256(config.client_id.encode("utf-8")).digest()
        self._source = "intuit." + base64.b64encode(digest).decode("ascii")

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient()

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self._cancel_tasks()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def reset(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._buffers.clear()
        await self._cancel_tasks()
        self._inflight.clear()
        self.pending.clear()
        self.log.clear()
        self.url = self.config.webhook_url
        self.hold = False

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- collecting -----------------------------------------------------------

    def record(self, change: Change) -> None:
        """Queue a change; the realm's window starts with its first change."""
        self._buffers.setdefault(change.realm_id, []).append(change)
        if change.realm_id in self._timers:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (state loaded at start-up): nothing to announce yet
        window = max(0.0, self.config.webhook_batch_window_seconds)
        self._timers[change.realm_id] = loop.call_later(
            window, self._cut, change.realm_id
        )

    def _cut(self, realm_id: str) -> None:
        self._timers.pop(realm_id, None)
        changes = self._buffers.pop(realm_id, [])
        if not changes:
            return
        delivery = self._build(realm_id, changes)
        if self.hold:
            self.pending.append(delivery)
            return
        if not self.url:
            self.log.append(self._entry(delivery, 0, None, "no webhook url configured"))
            return
        self._inflight[delivery.id] = delivery
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _build(self, realm_id: str, changes: list[Change]) -> Delivery:
        self._counter += 1
        delivery_id = f"wh-{self._counter}"
        fmt = self.realm_format(realm_id)
        if fmt == "cloudevents":
            payload: Any = [self._cloudevent(change) for change in changes]
            content_type = "application/cloudevents+json"
        else:
            entities = []
            for change in changes:
                entry = {
                    "name": change.entity,
                    "id": change.entity_id,
                    "operation": change.operation,
                    "lastUpdated": clock.utc_millis(change.when),
                }
                if change.deleted_id is not None:
                    entry["deletedId"] = change.deleted_id
                entities.append(entry)
            payload = {
                "eventNotifications": [
                    {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
                ]
            }
            content_type = "application/json"
        body = wire.dumps(payload)
        headers = {
            "content-type": content_type,
            "intuit-signature": sign(self.config.verifier_token, body.encode("utf-8")),
            "user-agent": "ledgerbridge-qbo-sim-webhooks",
        }
        return Delivery(delivery_id, realm_id, body, headers)

    def _cloudevent(self, change: Change) -> dict[str, Any]:
        event_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        data: dict[str, Any] = {}
        if change.deleted_id is not None:
            data["deletedid"] = change.deleted_id
        return {
            "specversion": "1.0",
            "id": str(event_id),
            "source": self._source,
            "type": f"qbo.{change.entity.lower()}.{PAST_TENSE[change.operation]}.v1",
            "datacontenttype": "application/json",
            "time": clock.utc_micros(change.when),
            "intuitentityid": change.entity_id,
            "intuitaccountid": change.realm_id,
            "data": data,
        }

    # -- sending --------------------------------------------------------------

    def _entry(
        self, delivery: Delivery, attempt: int, status: int | None, error: str | None
    ) -> dict[str, Any]:
        return {
            "delivery_id": delivery.id,
            "realm_id": delivery.realm_id,
            "attempt": attempt,
            "status": status,
            "error": error,
            "url": self.url,
            "at": clock.utc_millis(self.clock.now()),
        }

    async def _attempt(self, delivery: Delivery, attempt: int) -> int | None:
        if self._client is None:
            self._client = httpx.AsyncClient()
        client = self._client
        status: int | None = None
        error: str | None = None
        if not self.url:
            error = "no webhook url configured"
        else:
            try:
                response = await client.post(
                    self.url,
                    content=delivery.body.encode("utf-8"),
                    headers=delivery.headers,
                    timeout=self.config.webhook_timeout_seconds,
                )
                status = response.status_code
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        self.log.append(self._entry(delivery, attempt, status, error))
        return status

    async def _deliver(self, delivery: Delivery) -> None:
        """First attempt now, then QBO's (compressed) retry schedule."""
        try:
            delays = [0.0, *self.config.webhook_retry_schedule_seconds]
            for attempt, delay in enumerate(delays, start=1):
                if delay:
                    await asyncio.sleep(delay)
                status = await self._attempt(delivery, attempt)
                delivery.attempted.set()
                if status is not None and 200 <= status < 300:
                    return
            logger.warning(
                "webhook %s gave up after %d attempts", delivery.id, len(delays)
            )
        finally:
            delivery.attempted.set()
            delivery.finished.set()
            self._inflight.pop(delivery.id, None)

    async def flush(self, *, wait_retries: bool = False) -> None:
        """Cut every open window now and wait until each delivery was tried."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for realm_id in list(self._buffers):
            self._cut(realm_id)
        waiting = list(self._inflight.values())
        events = [d.finished if wait_retries else d.attempted for d in waiting]
        await asyncio.gather(*(event.wait() for event in events))

    def _select(self, ids: Iterable[str] | None) -> list[Delivery]:
        if ids is None:
            chosen = list(self.pending)
        else:
            wanted = set(ids)
            chosen = [d for d in self.pending if d.id in wanted]
        for delivery in chosen:
            self.pending.remove(delivery)
        return chosen

    async def release(
        self, ids: list[str] | None, *, repeat: int = 1, reverse: bool = False
    ) -> list[dict[str, Any]]:
        """Send held deliveries once each (``repeat`` times), no retries."""
        chosen = self._select(ids)
        if reverse:
            chosen.reverse()
        results = []
        for delivery in chosen:
            for attempt in range(1, max(1, repeat) + 1):
                status = await self._attempt(delivery, attempt)
                results.append({"id": delivery.id, "status": status})
        return results

    def drop(self, ids: list[str] | None) -> list[str]:
        return [delivery.id for delivery in self._select(ids)]
