"""The QBO Accounting API v3 surface: ``/v3/company/{realmId}/...``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from . import clock, faults, wire, xmlify
from .company import Company, entity_for
from .sim import FaultRule, Simulator

# URIs are case-sensitive in QBO; clients use the lower-case resource names.
RESOURCES = {
    "invoice": "Invoice",
    "customer": "Customer",
    "item": "Item",
    "payment": "Payment",
    "account": "Account",
}
WRITE_OPERATIONS = frozenset({"create", "update", "void", "delete", "batch", "send"})
DISCONNECT_POLL_SECONDS = 0.05


def new_tid(sim: Simulator) -> str:
    return f"1-{sim.rng.getrandbits(32):08x}-{sim.rng.getrandbits(96):024x}"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(wire.dumps(body), status_code=status, media_type="application/json")


class ApiCall:
    """One request through auth, throttling, fault injection, replay and the logic."""

    def __init__(
        self, sim: Simulator, request: Request, realm_id: str, rest: str
    ) -> None:
        self.sim = sim
        self.request = request
        self.realm_id = realm_id
        self.segments = [part for part in rest.split("/") if part]
        self.method = request.method.upper()
        self.params = request.query_params
        self.requestid = self.params.get("requestid")
        self.raw = b""
        self.entity: str | None = None
        self.operation = "unknown"

    def now_text(self) -> str:
        return clock.response_time(self.sim.clock.now())

    async def run(self) -> Response:
        self.raw = await self.request.body()
        self._classify()
        entry: dict[str, Any] = {
            "method": self.method,
            "path": self.request.url.path,
            "query": self.request.url.query,
            "status": None,
            "requestid": self.requestid,
            "realm_id": self.realm_id,
            "operation": self.operation,
        }
        response = await self._handle()
        response.headers["intuit_tid"] = new_tid(self.sim)
        entry["status"] = response.status_code
        self.sim.log_request(entry)
        return response

    def _classify(self) -> None:
        segs = self.segments
        if segs == ["query"]:
            self.operation = "query"
        elif segs == ["cdc"] and self.method == "GET":
            self.operation = "cdc"
        elif segs == ["batch"] and self.method == "POST":
            self.operation = "batch"
        elif segs == ["preferences"] and self.method == "GET":
            self.operation = "preferences"
        elif len(segs) == 2 and segs[0] == "companyinfo" and self.method == "GET":
            self.operation = "companyinfo"
        elif len(segs) == 1 and segs[0] in RESOURCES and self.method == "POST":
            self.entity = RESOURCES[segs[0]]
            requested = (self.params.get("operation") or "").lower()
            if requested in {"void", "delete"}:
                self.operation = requested
            else:
                try:
                    body = wire.loads(self.raw) if self.raw else None
                except ValueError:
                    body = None
                has_id = isinstance(body, dict) and body.get("Id") not in (None, "")
                self.operation = "update" if has_id else "create"
                # A payment is voided by an update with include=void.
                if self.entity == "Payment" and has_id and "void" in self._include():
                    self.operation = "void"
        elif segs[:1] == ["invoice"] and segs[2:] == ["send"] and self.method == "POST":
            self.entity = "Invoice"
            self.operation = "send"
        elif len(segs) == 2 and segs[0] in RESOURCES and self.method == "GET":
            self.entity = RESOURCES[segs[0]]
            self.operation = "read"

    async def _handle(self) -> Response:
        if self.operation == "unknown":
            return Response("Not Found", status_code=404, media_type="text/plain")
        realm_id, reason = self.sim.check_access(self._bearer())
        if realm_id is None:
            epoch_millis = int(self.sim.clock.timestamp() * 1000)
            return Response(
                wire.dumps(faults.authentication_body(reason, epoch_millis)),
                status_code=401,
                media_type="application/json",
                headers={
                    "www-authenticate": 'Bearer realm="Intuit", error="invalid_token"'
                },
            )
        if realm_id != self.realm_id or self.realm_id not in self.sim.realms:
            fault = faults.forbidden()
            return self._respond(fault.body(self.now_text()), fault.status)
        realm = self.sim.realms[self.realm_id]
        app = self.sim.app_of(self._bearer())
        admitted = self.sim.throttle.admit(
            self.realm_id,
            self.sim.clock.timestamp(),
            batch=self.operation == "batch",
            app=app,
        )
        if not admitted:
            return self._throttled(bool(realm.settings.get("throttle_as_xml")))
        self.sim.throttle.enter(self.realm_id, app)
        try:
            return await self._guarded()
        finally:
            self.sim.throttle.leave(self.realm_id, app)

    def _bearer(self) -> str | None:
        header = self.request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def _throttled(self, xml: bool) -> Response:
        if xml:
            return Response(
                faults.throttle_xml(self.now_text()),
                status_code=429,
                media_type="application/xml",
            )
        fault = faults.throttled()
        return self._respond(fault.body(self.now_text()), fault.status)

    async def _guarded(self) -> Response:
        rule = self.sim.take_fault(self.method, self.request.url.path, self.operation)
        if rule is not None and rule.kind != "timeout_after_commit":
            return await self._injected(rule)
        response = self._replay_or_execute()
        if rule is not None:
            # The write is committed; now keep the client waiting past its
            # timeout so it cannot know the write landed.
            await self._hold(rule.hold_seconds)
        return response

    async def _injected(self, rule: FaultRule) -> Response:
        if rule.kind == "throttle":
            realm = self.sim.realms[self.realm_id]
            return self._throttled(
                rule.xml or bool(realm.settings.get("throttle_as_xml"))
            )
        if rule.kind == "timeout_before_commit":
            await self._hold(rule.hold_seconds)
            fault = faults.system_fault(504)
            return self._respond(fault.body(self.now_text()), fault.status)
        fault = faults.system_fault(rule.status)
        return self._respond(fault.body(self.now_text()), fault.status)

    async def _hold(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, seconds)
        while (remaining := deadline - loop.time()) > 0:
            # Stop early once the client gave up, so shutdown never waits.
            if await self.request.is_disconnected():
                return
            await asyncio.sleep(min(DISCONNECT_POLL_SECONDS, remaining))

    def _replay_or_execute(self) -> Response:
        realm = self.sim.realms[self.realm_id]
        is_write = self.operation in WRITE_OPERATIONS and self.method == "POST"
        if is_write and self.requestid:
            first = realm.replies.get(self.requestid)
            if first is not None:
                # Same requestid: the first answer again, and nothing changes.
                return self._respond(wire.loads(first["body"]), int(first["status"]))
        try:
            status, body = 200, self._execute()
        except faults.QboFault as fault:
            status, body = fault.status, fault.body(self.now_text())
        text = wire.dumps(body)
        if is_write:
            if self.requestid:
                realm.remember_reply(self.requestid, status, text)
            self.sim.persist()
        return self._respond(body, status)

    def _respond(self, body: dict[str, Any], status: int = 200) -> Response:
        """JSON when the client asks for it; otherwise XML, QBO's default."""
        if "json" in self.request.headers.get("accept", "").lower():
            return json_response(body, status)
        return Response(
            xmlify.render(body), status_code=status, media_type="application/xml"
        )

    def _include(self) -> set[str]:
        values = self.params.getlist("include")
        return {part.strip().lower() for value in values for part in value.split(",")}

    def _json_body(self) -> Any:
        if not self.raw.strip():
            raise faults.invalid_property("", "request body is empty")
        try:
            return wire.loads(self.raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise faults.unsupported("Request payload is not valid UTF-8") from None
        except ValueError:
            raise faults.invalid_property(
                "", "request body is not valid JSON"
            ) from None

    def _execute(self) -> dict[str, Any]:
        company = self.sim.company(self.realm_id)
        time = self.now_text()
        op = self.operation
        if op == "query":
            statement = self.params.get("query")
            if self.method == "POST" and self.raw.strip():
                statement = self.raw.decode("utf-8", errors="replace")
            if not statement or not statement.strip():
                raise faults.query_parse('Encountered "<EOF>" at line 1, column 1.')
            return {"QueryResponse": company.query(statement), "time": time}
        if op == "cdc":
            found = company.cdc(
                self.params.get("entities"), self.params.get("changedSince")
            )
            return {"CDCResponse": [{"QueryResponse": found}], "time": time}
        if op == "batch":
            return {"BatchItemResponse": self._batch(self._json_body()), "time": time}
        if op == "preferences":
            return {"Preferences": self._preferences(), "time": time}
        if op == "companyinfo":
            return {"CompanyInfo": self._company_info(), "time": time}
        if self.entity is None:
            raise faults.unsupported("Unknown resource")
        if op == "send":
            invoice = company.send_invoice(self.segments[1], self.params.get("sendTo"))
            return {"Invoice": invoice, "time": time}
        if op == "read":
            return {
                self.entity: company.read(self.entity, self.segments[1]),
                "time": time,
            }
        allow_dup = "allowduplicatedocnum" in self._include()
        result = company.write(
            self.entity, self._json_body(), operation=op, allow_dup=allow_dup
        )
        result["time"] = time
        return result

    def _batch(self, body: Any) -> list[dict[str, Any]]:
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise faults.required("BatchItemRequest")
        limit = self.sim.config.batch_max_items
        if limit and len(items) > limit:
            raise faults.QboFault(
                "1000",
                "Batch size exceeded",
                f"The batch request has {len(items)} items; the maximum is {limit}.",
                element="BatchItemRequest",
            )
        hidden: set[tuple[str, str]] = set()
        company = self.sim.company(self.realm_id, hidden=hidden)
        answers: list[dict[str, Any]] = []
        for item in items:
            bid = item.get("bId") if isinstance(item, dict) else None
            answer: dict[str, Any] = {"bId": bid}
            try:
                answer.update(self._batch_item(company, item, hidden))
            except faults.QboFault as fault:
                answer["Fault"] = fault.fault()
            answers.append(answer)
        return answers

    def _batch_item(
        self, company: Company, item: Any, hidden: set[tuple[str, str]]
    ) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise faults.invalid_property("BatchItemRequest", "BatchItemRequest")
        if "Query" in item:
            return {"QueryResponse": company.query(str(item["Query"]))}
        entity = next((name for name in item if entity_for(name) == name), None)
        if entity is None:
            raise faults.required("BatchItemRequest entity")
        operation = str(item.get("operation", "")).lower()
        options = {
            part.strip().lower() for part in str(item.get("optionsData", "")).split(",")
        }
        if operation == "update" and "void" in options:
            operation = "void"
        if operation not in {"create", "update", "delete", "void"}:
            raise faults.unsupported(
                f"Unsupported batch operation: {operation or 'none'}"
            )
        result: dict[str, Any] = company.write(
            entity,
            item[entity],
            operation=operation,
            allow_dup="allowduplicatedocnum" in options,
        )
        if operation == "create":
            # Later items of the same batch must not see this object.
            hidden.add((entity, str(result[entity]["Id"])))
        return result

    def _preferences(self) -> dict[str, Any]:
        realm = self.sim.realms[self.realm_id]
        return {
            "Id": "1",
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "SalesFormsPrefs": {
                "CustomTxnNumbers": bool(
                    realm.settings.get("custom_txn_numbers", True)
                ),
                "AllowDeposit": False,
                "AllowDiscount": True,
                "DefaultTerms": {"value": "3"},
            },
            "CurrencyPrefs": {
                "MultiCurrencyEnabled": False,
                "HomeCurrency": {"value": "USD"},
            },
            "TaxPrefs": {"UsingSalesTax": False},
            "MetaData": {"CreateTime": realm.created, "LastUpdatedTime": realm.created},
        }

    def _company_info(self) -> dict[str, Any]:
        realm = self.sim.realms[self.realm_id]
        return {
            "Id": "1",
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "CompanyName": realm.name,
            "LegalName": realm.name,
            "Country": "US",
            "MetaData": {"CreateTime": realm.created, "LastUpdatedTime": realm.created},
        }


def build_router(sim: Simulator) -> APIRouter:
    router = APIRouter()

    @router.api_route("/v3/company/{realm_id}/{rest:path}", methods=["GET", "POST"])
    async def company_api(realm_id: str, rest: str, request: Request) -> Response:
        return await ApiCall(sim, request, realm_id, rest).run()

    return router
