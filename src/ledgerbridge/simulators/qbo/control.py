"""The unauthenticated ``/_sim`` control API used by tests and the demo."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import Response

from . import clock, faults, wire
from .sim import CONSOLE_CLIENT_ID, Simulator

ModelT = TypeVar("ModelT", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RealmCreate(_Body):
    name: str | None = None
    sample: bool = True


class RealmSettings(_Body):
    duplicate_docnum_check: bool | None = None
    custom_txn_numbers: bool | None = None
    webhook_format: Literal["legacy", "cloudevents"] | None = None
    throttle_as_xml: bool | None = None
    index_lag_seconds: Decimal | None = None


class TokenRequest(_Body):
    realm_id: str
    # The app the tokens are for; the console's own app by default.
    client_id: str | None = None


class WebhookConfig(_Body):
    url: str | None = None
    hold: bool | None = None


class Release(_Body):
    ids: list[str] | None = None
    repeat: int = 1
    reverse: bool = False


class Drop(_Body):
    ids: list[str] | None = None


class Flush(_Body):
    wait_retries: bool = False


class FaultSpec(_Body):
    kind: Literal["status", "timeout_after_commit", "timeout_before_commit", "throttle"]
    method: str | None = None
    path_regex: str | None = None
    operation: str | None = None
    status: int = 500
    times: int = 1
    hold_seconds: float = 5.0
    xml: bool = False


class PaymentRequest(_Body):
    invoice_id: str
    amount: Decimal


class ClockAdvance(_Body):
    seconds: float


class MergeRequest(_Body):
    into: str


async def _parse(request: Request, model: type[ModelT]) -> ModelT:
    """Parse a JSON body with Decimal numbers (an empty body means defaults)."""
    raw = await request.body()
    try:
        data = wire.loads(raw) if raw.strip() else {}
        return model.model_validate(data)
    except ValueError as exc:
        detail = exc.errors() if isinstance(exc, ValidationError) else str(exc)
        raise HTTPException(status_code=422, detail=detail) from exc


def _json(body: Any, status: int = 200) -> Response:
    return Response(wire.dumps(body), status_code=status, media_type="application/json")


def build_router(sim: Simulator) -> APIRouter:
    router = APIRouter(prefix="/_sim")

    def realm_or_404(realm_id: str) -> None:
        if realm_id not in sim.realms:
            raise HTTPException(status_code=404, detail=f"unknown realm {realm_id}")

    @router.get("/realms")
    async def list_realms() -> Response:
        return _json(
            [{"realm_id": r.realm_id, "name": r.name} for r in sim.realms.values()]
        )

    @router.post("/realms")
    async def create_realm(request: Request) -> Response:
        body = await _parse(request, RealmCreate)
        realm = sim.add_realm(body.name, sample=body.sample)
        sim.persist()
        return _json({"realm_id": realm.realm_id, "name": realm.name})

    @router.post("/realms/{realm_id}/settings")
    async def realm_settings(realm_id: str, request: Request) -> Response:
        realm_or_404(realm_id)
        body = await _parse(request, RealmSettings)
        realm = sim.realms[realm_id]
        realm.settings.update(body.model_dump(exclude_none=True))
        if body.index_lag_seconds:
            sim.company(realm_id).snapshot_index()
        sim.persist()
        return _json({"realm_id": realm_id, "settings": realm.settings})

    @router.post("/tokens")
    async def mint_tokens(request: Request) -> Response:
        body = await _parse(request, TokenRequest)
        realm_or_404(body.realm_id)
        tokens = sim.issue_tokens(
            body.realm_id, client_id=body.client_id or CONSOLE_CLIENT_ID
        )
        sim.persist()
        return _json({**tokens, "realm_id": body.realm_id})

    @router.get("/requests")
    async def requests_log(since: int = 0) -> Response:
        return _json([entry for entry in sim.requests if entry["seq"] > since])

    @router.post("/reset")
    async def reset() -> Response:
        await sim.reset()
        return _json({"ok": True})

    @router.post("/webhooks/config")
    async def webhook_config(request: Request) -> Response:
        body = await _parse(request, WebhookConfig)
        if "url" in body.model_fields_set:
            sim.dispatcher.url = body.url
        if body.hold is not None:
            sim.dispatcher.hold = body.hold
        return _json({"url": sim.dispatcher.url, "hold": sim.dispatcher.hold})

    @router.get("/webhooks/pending")
    async def webhook_pending() -> Response:
        return _json([delivery.describe() for delivery in sim.dispatcher.pending])

    @router.post("/webhooks/release")
    async def webhook_release(request: Request) -> Response:
        body = await _parse(request, Release)
        results = await sim.dispatcher.release(
            body.ids, repeat=body.repeat, reverse=body.reverse
        )
        return _json(results)

    @router.post("/webhooks/drop")
    async def webhook_drop(request: Request) -> Response:
        body = await _parse(request, Drop)
        return _json({"dropped": sim.dispatcher.drop(body.ids)})

    @router.get("/webhooks/deliveries")
    async def webhook_deliveries() -> Response:
        return _json(sim.dispatcher.log)

    @router.post("/webhooks/flush")
    async def webhook_flush(request: Request) -> Response:
        body = await _parse(request, Flush)
        await sim.dispatcher.flush(wait_retries=body.wait_retries)
        return _json({"ok": True, "pending": len(sim.dispatcher.pending)})

    @router.get("/faults")
    async def list_faults() -> Response:
        return _json([rule.describe() for rule in sim.fault_rules])

    @router.post("/faults")
    async def add_fault(request: Request) -> Response:
        body = await _parse(request, FaultSpec)
        return _json(sim.add_fault(body.model_dump()).describe())

    @router.delete("/faults")
    async def clear_faults() -> Response:
        cleared = len(sim.fault_rules)
        sim.fault_rules.clear()
        return _json({"cleared": cleared})

    @router.post("/realms/{realm_id}/payments")
    async def apply_payment(realm_id: str, request: Request) -> Response:
        realm_or_404(realm_id)
        body = await _parse(request, PaymentRequest)
        company = sim.company(realm_id)
        try:
            invoice = company.read("Invoice", body.invoice_id)
            result = company.write(
                "Payment",
                {
                    "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
                    "TotalAmt": body.amount,
                    "Line": [
                        {
                            "Amount": body.amount,
                            "LinkedTxn": [
                                {"TxnId": invoice["Id"], "TxnType": "Invoice"}
                            ],
                        }
                    ],
                },
                operation="create",
            )
        except faults.QboFault as fault:
            return _json(fault.body(clock.response_time(sim.clock.now())), fault.status)
        sim.persist()
        result["Invoice"] = company.read("Invoice", body.invoice_id)
        return _json(result)

    @router.post("/realms/{realm_id}/customers/{customer_id}/merge")
    async def merge_customer(
        realm_id: str, customer_id: str, request: Request
    ) -> Response:
        realm_or_404(realm_id)
        body = await _parse(request, MergeRequest)
        try:
            target = sim.company(realm_id).merge_customer(customer_id, body.into)
        except faults.QboFault as fault:
            return _json(fault.body(clock.response_time(sim.clock.now())), fault.status)
        sim.persist()
        return _json({"Customer": target})

    @router.post("/clock/advance")
    async def advance_clock(request: Request) -> Response:
        body = await _parse(request, ClockAdvance)
        sim.clock.advance(body.seconds)
        sim.persist()
        return _json({"now": sim.clock.now().isoformat()})

    @router.get("/clock")
    async def read_clock() -> Response:
        return _json({"now": sim.clock.now().isoformat()})

    return router
