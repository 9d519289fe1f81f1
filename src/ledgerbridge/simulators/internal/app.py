"""The reference internal invoicing system as a FastAPI app, plus its control API."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import hmac
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ledgerbridge.simulators.internal import clock as clock_module
from ledgerbridge.simulators.internal import faults as faults_module
from ledgerbridge.simulators.internal import problems, store, validation, webhooks

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
CURSOR_PATTERN = re.compile(r"s(\d+)")
SINGULAR = {"invoices": "invoice", "customers": "customer", "items": "item"}
Record = dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimConfig:
    """How one simulator instance behaves; every field has a demo-friendly default."""

    webhook_url: str | None = None
    webhook_secret: str = "demo-internal-secret"
    api_token: str = "demo-internal-token"
    # None keeps everything in memory; a path survives restarts.
    state_path: Path | None = None
    webhook_retry_schedule_seconds: tuple[float, ...] = (1, 2, 5, 10)
    webhook_timeout_seconds: float = 3
    seed: int | None = None
    # The base time source; /_sim/clock/advance adds an offset on top of it.
    clock: Callable[[], dt.datetime] | None = None


class Simulator:
    """Everything one app instance owns: records, webhooks, faults, clock."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = clock_module.SimClock(config.clock)
        self.store = store.Store(
            clock=self.clock, seed=config.seed, state_path=config.state_path
        )
        self.webhooks = webhooks.WebhookDispatcher(
            clock=self.clock,
            secret=config.webhook_secret,
            url=config.webhook_url,
            retry_schedule_seconds=tuple(config.webhook_retry_schedule_seconds),
            timeout_seconds=config.webhook_timeout_seconds,
            seed=config.seed,
        )
        self.faults = faults_module.FaultBook()

    def changed(self, collection: str, action: str, record: Record) -> None:
        """Persist, then announce: a webhook never names a change that was lost."""
        self.store.save()
        self.webhooks.emit(
            f"{SINGULAR[collection]}.{action}", record["id"], record["version"]
        )

    def reset(self) -> None:
        self.store.reset()
        self.store.save()
        self.webhooks.reset()
        self.faults.reset()
        self.clock.reset()


def create_app(config: SimConfig) -> FastAPI:
    """Build the simulator app; state is loaded from ``config.state_path`` if set."""
    sim = Simulator(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sim.webhooks.start()
        try:
            yield
        finally:
            await sim.webhooks.stop()

    app = FastAPI(title="LedgerBridge reference internal system", lifespan=lifespan)
    app.state.sim = sim
    app.add_middleware(faults_module.FaultMiddleware, book=sim.faults)

    @app.exception_handler(problems.ApiError)
    async def render_api_error(
        request: Request, exc: problems.ApiError
    ) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status, headers=exc.headers)

    app.include_router(_api_router(sim))
    app.include_router(_control_router(sim))
    return app


# The contract: /api


def _require_token(sim: Simulator, request: Request) -> None:
    supplied = request.headers.get("authorization", "")
    expected = f"Bearer {sim.config.api_token}"
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise problems.ApiError(
            401,
            "unauthorized",
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _check_collection(collection: str) -> None:
    if collection not in store.COLLECTIONS:
        raise problems.ApiError(404, "not_found", f"no collection {collection!r}")


def _record_response(record: Record, status: int = 200) -> JSONResponse:
    return JSONResponse(
        record, status_code=status, headers={"ETag": f'"{record["version"]}"'}
    )


def _parse_version(value: str | None, *, required: bool) -> int | None:
    """Read ``If-Match``: a bare ``3`` or an entity tag ``"3"`` / ``W/"3"``."""
    if value is None:
        if required:
            raise problems.ApiError(
                428,
                "precondition_required",
                "If-Match: <version> is required, so a stale write cannot land",
            )
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise problems.ApiError(
            400, "bad_if_match", f"If-Match must be an integer version, got {value!r}"
        )
    return int(text)


def _check_version(record: Record, expected: int | None) -> None:
    if expected is not None and expected != record["version"]:
        raise problems.ApiError(
            412,
            "version_mismatch",
            f"{record['id']} is at version {record['version']}, not {expected}",
            headers={"ETag": f'"{record["version"]}"'},
        )


def _parse_list_query(
    collection: str, query: dict[str, str]
) -> tuple[dt.datetime | None, int, int, dict[str, str]]:
    allowed = {"updated_since", "cursor", "limit", *store.LIST_FILTERS[collection]}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise problems.ApiError(
            400,
            "bad_query",
            f"unknown query parameter(s) {', '.join(unknown)}; "
            f"{collection} accepts {', '.join(sorted(allowed))}",
        )
    since = query.get("updated_since")
    updated_since = (
        validation.parse_timestamp(since, "updated_since") if since else None
    )
    after_seq = 0
    if "cursor" in query:
        match = CURSOR_PATTERN.fullmatch(query["cursor"])
        if match is None:
            raise problems.ApiError(400, "bad_cursor", "cursor is not one we issued")
        after_seq = int(match.group(1))
    limit = DEFAULT_PAGE_SIZE
    if "limit" in query:
        text = query["limit"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
            raise problems.ApiError(
                400, "bad_query", f"limit must be an integer from 1 to {MAX_PAGE_SIZE}"
            )
        limit = int(text)
    filters = {k: v for k, v in query.items() if k in store.LIST_FILTERS[collection]}
    return updated_since, after_seq, limit, filters


def _api_router(sim: Simulator) -> APIRouter:
    router = APIRouter(prefix="/api")
    records = sim.store

    @router.get("/{collection}/{record_id}")
    async def read_record(
        collection: str, record_id: str, request: Request
    ) -> JSONResponse:
        _require_token(sim, request)
        _check_collection(collection)
        return _record_response(records.get(collection, record_id))

    @router.get("/{collection}")
    async def list_records(collection: str, request: Request) -> JSONResponse:
        _require_token(sim, request)
        _check_collection(collection)
        updated_since, after_seq, limit, filters = _parse_list_query(
            collection, dict(request.query_params)
        )
        page, next_seq = records.list(
            collection,
            updated_since=updated_since,
            after_seq=after_seq,
            limit=limit,
            filters=filters,
        )
        next_cursor = None if next_seq is None else f"s{next_seq}"
        return JSONResponse({"data": page, "next_cursor": next_cursor})

    @router.post("/{collection}")
    async def create_record(collection: str, request: Request) -> JSONResponse:
        _require_token(sim, request)
        _check_collection(collection)
        key = request.headers.get("idempotency-key")
        if not key:
            raise problems.ApiError(
                400,
                "idempotency_key_required",
                "POST needs an Idempotency-Key header so a retry never creates twice",
            )
        body = validation.parse_json_object(await request.body())

        # Replay: same key and same body answer exactly as the first time.
        fingerprint = store.fingerprint_body(body)
        stored = records.recall_response(collection, key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise problems.ApiError(
                    422,
                    "idempotency_key_reused",
                    f"Idempotency-Key {key!r} was used with a different body",
                )
            response = _record_response(stored.body, stored.status)
            response.headers["Idempotent-Replayed"] = "true"
            return response

        fields = validation.validate_body(collection, body, partial=False)
        if collection == "invoices":
            records.check_references(fields)
            records.check_number_free(fields["number"])
        record = records.insert(collection, fields)

        # Only successes are remembered: a create refused for an unknown
        # customer may be retried with the same key once the customer exists.
        records.remember_response(
            collection,
            key,
            store.StoredResponse(
                fingerprint=fingerprint, status=201, body=copy.deepcopy(record)
            ),
        )
        sim.changed(collection, "created", record)
        return _record_response(record, 201)

    @router.patch("/{collection}/{record_id}")
    async def update_record(
        collection: str, record_id: str, request: Request
    ) -> JSONResponse:
        _require_token(sim, request)
        _check_collection(collection)
        record = records.get(collection, record_id)
        expected = _parse_version(request.headers.get("if-match"), required=True)
        _check_version(record, expected)
        body = validation.parse_json_object(await request.body())
        changes = validation.validate_body(collection, body, partial=True)
        if collection == "invoices":
            if record["status"] == "void" and changes:
                raise problems.ApiError(
                    409, "invoice_void", f"{record_id} is void and cannot be edited"
                )
            records.check_references(changes)
            if "number" in changes:
                records.check_number_free(changes["number"], except_id=record_id)
        if records.update(collection, record, changes):
            sim.changed(collection, "updated", record)
        return _record_response(record)

    @router.post("/invoices/{record_id}/void")
    async def void_invoice(record_id: str, request: Request) -> JSONResponse:
        _require_token(sim, request)
        record = records.get("invoices", record_id)
        _check_version(
            record, _parse_version(request.headers.get("if-match"), required=False)
        )
        # Voiding a void invoice changes nothing: 200, same version, no webhook.
        if records.update("invoices", record, {"status": "void"}):
            sim.changed("invoices", "voided", record)
        return _record_response(record)

    @router.delete("/{collection}/{record_id}")
    async def delete_record(
        collection: str, record_id: str, request: Request
    ) -> JSONResponse:
        _require_token(sim, request)
        _check_collection(collection)
        if collection != "invoices":
            raise problems.ApiError(
                405, "not_supported", f"{collection} cannot be deleted"
            )
        record = records.get("invoices", record_id)
        _check_version(
            record, _parse_version(request.headers.get("if-match"), required=False)
        )
        records.update("invoices", record, {"status": "deleted"})
        sim.changed("invoices", "deleted", record)
        return _record_response(record)

    return router


# The control API: /_sim, unauthenticated, for tests and the demo


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookConfigBody(_Body):
    url: str | None = None
    hold: bool | None = None


class ReleaseBody(_Body):
    ids: list[str] | None = None
    repeat: int = Field(default=1, ge=1, le=100)
    reverse: bool = False


class DropBody(_Body):
    ids: list[str] | None = None


class FaultBody(_Body):
    kind: faults_module.FaultKind
    method: str | None = None
    path_regex: str | None = None
    status: int | None = Field(default=None, ge=100, le=599)
    times: int = Field(default=1, ge=1)
    hold_seconds: float | None = Field(default=None, ge=0)
    # Sent as the Retry-After header with a "status" fault (e.g. 429 or 503).
    retry_after: str | None = None


class AdvanceBody(_Body):
    seconds: float


class SeedBody(_Body):
    customers: int = Field(default=0, ge=0, le=1000)
    items: int = Field(default=0, ge=0, le=1000)


def _select_pending(sim: Simulator, ids: list[str] | None) -> list[webhooks.Delivery]:
    try:
        return sim.webhooks.select(ids)
    except KeyError as exc:
        raise problems.ApiError(
            404, "not_pending", f"not pending: {exc.args[0]}"
        ) from exc


def _control_router(sim: Simulator) -> APIRouter:
    router = APIRouter(prefix="/_sim")

    @router.get("/requests")
    async def list_requests(since: int = 0) -> list[dict[str, Any]]:
        return [entry for entry in sim.faults.requests if entry["seq"] > since]

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        sim.reset()
        return {"ok": True}

    @router.get("/webhooks/config")
    async def webhook_config() -> dict[str, Any]:
        return {"url": sim.webhooks.url, "hold": sim.webhooks.hold}

    @router.post("/webhooks/config")
    async def configure_webhooks(body: WebhookConfigBody) -> dict[str, Any]:
        sim.webhooks.configure(
            url=body.url, set_url="url" in body.model_fields_set, hold=body.hold
        )
        return {"url": sim.webhooks.url, "hold": sim.webhooks.hold}

    @router.get("/webhooks/pending")
    async def pending_webhooks() -> list[dict[str, Any]]:
        return [
            {
                "id": d.event_id,
                "body": validation.parse_json_object(d.raw_body),
                "raw_body": d.raw_body.decode(),
                "headers": sim.webhooks.headers_for(d.raw_body),
            }
            for d in sim.webhooks.pending()
        ]

    @router.post("/webhooks/release")
    async def release_webhooks(body: ReleaseBody) -> list[dict[str, Any]]:
        chosen = _select_pending(sim, body.ids)
        if body.reverse:
            chosen.reverse()
        return await sim.webhooks.release(chosen, repeat=body.repeat)

    @router.post("/webhooks/drop")
    async def drop_webhooks(body: DropBody) -> dict[str, Any]:
        return {"dropped": sim.webhooks.drop(_select_pending(sim, body.ids))}

    @router.get("/webhooks/deliveries")
    async def webhook_deliveries() -> list[dict[str, Any]]:
        return sim.webhooks.log

    @router.post("/webhooks/flush")
    async def flush_webhooks() -> list[dict[str, Any]]:
        return await sim.webhooks.flush()

    @router.get("/faults")
    async def list_faults() -> list[dict[str, Any]]:
        return [fault.describe() for fault in sim.faults.faults]

    @router.post("/faults")
    async def arm_fault(body: FaultBody) -> dict[str, Any]:
        if body.kind == "status" and body.status is None:
            raise problems.ApiError(
                422, "validation_error", "a status fault needs status"
            )
        if body.path_regex is not None:
            try:
                re.compile(body.path_regex)
            except re.error as exc:
                raise problems.ApiError(
                    422, "validation_error", f"path_regex: {exc}"
                ) from exc
        fault = sim.faults.arm(**body.model_dump())
        return fault.describe()

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        cleared = len(sim.faults.faults)
        sim.faults.faults.clear()
        return {"cleared": cleared}

    @router.get("/clock")
    async def read_clock() -> dict[str, Any]:
        return {"now": clock_module.format_timestamp(sim.clock.now())}

    @router.post("/clock/advance")
    async def advance_clock(body: AdvanceBody) -> dict[str, Any]:
        sim.clock.advance(body.seconds)
        sim.webhooks.wake()
        return {"now": clock_module.format_timestamp(sim.clock.now())}

    @router.post("/seed")
    async def seed(body: SeedBody) -> dict[str, Any]:
        created: dict[str, list[Record]] = {"customers": [], "items": []}
        offset = len(sim.store.records["customers"])
        for n in range(offset + 1, offset + body.customers + 1):
            fields = {"name": f"Customer {n}", "email": f"customer{n}@example.com"}
            record = sim.store.insert("customers", fields)
            sim.changed("customers", "created", record)
            created["customers"].append(record)
        offset = len(sim.store.records["items"])
        for n in range(offset + 1, offset + body.items + 1):
            price = f"{sim.store.rng.randint(10, 500)}.00"
            fields = {"sku": f"SKU-{n}", "name": f"Item {n}", "unit_price": price}
            record = sim.store.insert("items", fields)
            sim.changed("items", "created", record)
            created["items"].append(record)
        return created

    return router
