"""The QBO connector against a loopback stand-in, for shapes the simulator lacks."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request, Response

from ledgerbridge import errors
from ledgerbridge.clock import FrozenClock
from ledgerbridge.connectors.qbo.auth import InvalidGrant, QboOAuth, TokenManager
from ledgerbridge.connectors.qbo.client import QboClient, client_for_connection
from ledgerbridge.connectors.qbo.errors import QboStaleObject, QboThrottled
from ledgerbridge.connectors.qbo.ratelimit import PgRateLimiter
from ledgerbridge.db import pool as db_pool
from support.servers import free_port, serve_in_thread

REALM = "9130355"
CLIENT_ID = "standin-client"
CLIENT_SECRET = "standin-secret"
SERVER_TIME = "2026-12-04T08:00:00.123-08:00"

THROTTLE_XML = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2026-12-04T09:00:00.000-08:00">
  <Fault type="SERVICE"><Error code="3001">
    <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>
    <Detail>The request limit was reached.</Detail>
  </Error></Fault>
</IntuitResponse>"""


def qbo_json(body: Any) -> str:
    """JSON as QBO writes it: amounts are numbers, with their digits intact."""
    text = json.dumps(body, default=lambda d: f"__decimal:{d}__")
    return re.sub(r'"__decimal:([^_"]+)__"', r"\1", text)


def fault(code: str, message: str, detail: str = "", element: str = "") -> dict:
    return {
        "Fault": {
            "Error": [
                {"Message": message, "Detail": detail, "code": code, "element": element}
            ],
            "type": "ValidationFault",
        },
        "time": SERVER_TIME,
    }


def unauthorized() -> Response:
    body = {
        "warnings": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; "
                    "statusCode=401",
                    "detail": "Token expired: xxx",
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "time": 1730024394085,
    }
    return Response(
        json.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"www-authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
    )


@dataclass
class StandIn:
    """State of the stand-in QBO; tests poke it directly (same process)."""

    access_tokens: set[str] = field(default_factory=set)
    refresh_token: str | None = None
    refresh_calls: int = 0
    token_calls: list[dict[str, str]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    invoices: dict[str, dict] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    requests: list[httpx.URL] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    replays: dict[str, bytes] = field(default_factory=dict)
    injected: list[Response] = field(default_factory=list)
    counter: itertools.count = field(default_factory=lambda: itertools.count(100))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self) -> dict[str, Any]:
        n = next(self.counter)
        access, refresh = f"access-{n}", f"refresh-{n}"
        self.access_tokens.add(access)
        self.refresh_token = refresh
        return {
            "token_type": "bearer",
            "access_token": access,
            "expires_in": 3600,
            "refresh_token": refresh,
            "x_refresh_token_expires_in": 8726400,
        }


def standin_app(state: StandIn) -> FastAPI:
    app = FastAPI()

    def reply(body: Any, status: int = 200) -> Response:
        return Response(
            qbo_json(body),
            status_code=status,
            media_type="application/json",
            headers={"intuit_tid": f"tid-{next(state.counter)}"},
        )

    @app.post("/oauth2/v1/tokens/bearer")
    async def token(request: Request) -> Response:
        form = dict((await request.form()).items())
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return Response('{"error": "invalid_client"}', 401)
        with state.lock:
            state.token_calls.append({k: str(v) for k, v in form.items()})
            if form.get("grant_type") == "authorization_code":
                if form.get("code") != "good-code":
                    return Response('{"error": "invalid_grant"}', 400)
                return reply(state.issue())
            state.refresh_calls += 1
            if form.get("refresh_token") != state.refresh_token:
                return Response(
                    '{"error": "invalid_grant", "error_description": "superseded"}',
                    400,
                    media_type="application/json",
                )
            return reply(state.issue())

    @app.post("/oauth2/v1/tokens/revoke")
    async def revoke(request: Request) -> Response:
        form = dict((await request.form()).items())
        state.revoked.append(str(form.get("token")))
        state.refresh_token = None
        return Response(status_code=200)

    @app.api_route("/v3/company/{realm}/{path:path}", methods=["GET", "POST"])
    async def company(realm: str, path: str, request: Request) -> Response:
        state.requests.append(httpx.URL(str(request.url)))
        body_bytes = await request.body()
        state.bodies.append(body_bytes)
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in state.access_tokens:
            return unauthorized()
        if state.injected:
            return state.injected.pop(0)
        params = request.query_params
        request_id = params.get("requestid")
        if request_id and request_id in state.replays:
            return Response(state.replays[request_id], media_type="application/json")
        response = handle(path, params, body_bytes)
        if request_id and response.status_code == 200:
            state.replays[request_id] = bytes(response.body)
        return response

    def handle(path: str, params: Any, raw: bytes) -> Response:
        if path == "query":
            return run_query(params["query"])
        if path == "cdc":
            return cdc(params)
        if path.startswith("invoice/"):
            invoice_id = path.split("/", 1)[1]
            if invoice_id not in state.invoices:
                return reply(fault("610", "Object Not Found", "deleted"), 400)
            return reply({"Invoice": state.invoices[invoice_id], "time": SERVER_TIME})
        if path == "invoice":
            body = json.loads(raw, parse_float=Decimal)
            operation = params.get("operation")
            if "Id" not in body:
                invoice_id = str(next(state.counter))
                body.update(Id=invoice_id, SyncToken="0")
                state.invoices[invoice_id] = body
                return reply({"Invoice": body, "time": SERVER_TIME})
            current = state.invoices.get(body["Id"])
            if current is None:
                return reply(fault("610", "Object Not Found", "deleted"), 400)
            if body["SyncToken"] != current["SyncToken"]:
                return reply(fault("5010", "Stale Object Error", "Stale"), 400)
            if operation == "delete":
                del state.invoices[body["Id"]]
                state.deleted.add(body["Id"])
                return reply(
                    {
                        "Invoice": {"Id": body["Id"], "status": "Deleted"},
                        "time": SERVER_TIME,
                    }
                )
            if operation == "void":
                current.update(TotalAmt=Decimal(0), PrivateNote="Voided")
            else:
                current.update({k: v for k, v in body.items() if k != "SyncToken"})
            current["SyncToken"] = str(int(current["SyncToken"]) + 1)
            return reply({"Invoice": current, "time": SERVER_TIME})
        if path == "batch":
            items = json.loads(raw)["BatchItemRequest"]
            answers = []
            for item in items:
                if "Query" in item:
                    answers.append({"bId": item["bId"], "QueryResponse": {}})
                else:
                    answers.append(
                        {"bId": item["bId"], **fault("6140", "Duplicate DocNum Error")}
                    )
            return reply({"BatchItemResponse": answers, "time": SERVER_TIME})
        return Response("Not Found", 404)

    def run_query(statement: str) -> Response:
        # Understands exactly what QboClient sends: an equality on DocNumber
        # with backslash escapes, or everything, plus paging.
        words = statement.split()
        start = int(words[words.index("startposition") + 1])
        size = int(words[words.index("maxresults") + 1])
        rows = sorted(state.invoices.values(), key=lambda i: int(i["Id"]))
        if " where " in statement:
            literal = statement.split(" = ", 1)[1].rsplit(" startposition", 1)[0]
            if not (literal.startswith("'") and literal.endswith("'")):
                return reply(
                    fault("4000", "Error parsing query", "QueryParserError"), 400
                )
            inner = literal[1:-1]
            value, i = "", 0
            while i < len(inner):
                if inner[i] == "\\":
                    value += inner[i + 1]
                    i += 2
                    continue
                if inner[i] == "'":
                    return reply(
                        fault("4000", "Error parsing query", "QueryParserError"), 400
                    )
                value += inner[i]
                i += 1
            rows = [r for r in rows if r.get("DocNumber") == value]
        page = rows[start - 1 : start - 1 + size]
        if not page:
            return reply({"QueryResponse": {}, "time": SERVER_TIME})
        return reply(
            {
                "QueryResponse": {
                    "Invoice": page,
                    "startPosition": start,
                    "maxResults": len(page),
                },
                "time": SERVER_TIME,
            }
        )

    def cdc(params: Any) -> Response:
        entities = params["entities"].split(",")
        found = [{"Invoice": list(state.invoices.values())}]
        found[0]["Invoice"] += [{"Id": i, "status": "Deleted"} for i in state.deleted]
        found.append({e: [] for e in entities if e != "Invoice"})
        return reply({"CDCResponse": [{"QueryResponse": found}], "time": SERVER_TIME})

    return app


@pytest.fixture(scope="module")
def server():
    state = StandIn()
    with serve_in_thread(standin_app(state)) as url:
        yield state, url


@pytest.fixture
def standin(server):
    state, url = server
    with state.lock:
        state.access_tokens.clear()
        state.refresh_token = None
        state.refresh_calls = 0
        state.token_calls.clear()
        state.revoked.clear()
        state.invoices.clear()
        state.deleted.clear()
        state.requests.clear()
        state.bodies.clear()
        state.replays.clear()
        state.injected.clear()
    return state, url


class StaticTokens:
    """A token source that hands out a fixed token until told to refresh."""

    def __init__(self, state: StandIn, token: str) -> None:
        self.state = state
        self.token = token
        self.refreshed: list[str] = []

    async def access_token(self) -> str:
        return self.token

    async def refresh_access_token(self, rejected: str) -> str:
        self.refreshed.append(rejected)
        self.token = self.state.issue()["access_token"]
        return self.token


@pytest.fixture
async def qbo(standin):
    state, url = standin
    tokens = StaticTokens(state, state.issue()["access_token"])
    async with httpx.AsyncClient() as http:
        yield (
            QboClient(http, base_url=url, realm_id=REALM, tokens=tokens),
            state,
            tokens,
        )


def invoice_body(doc: str, amount: str = "150.00") -> dict:
    return {
        "DocNumber": doc,
        "CustomerRef": {"value": "1"},
        "Line": [
            {
                "Amount": Decimal(amount),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "1"},
                    "Qty": 1,
                    "UnitPrice": Decimal(amount),
                },
            }
        ],
    }


async def test_qbo_client_create_read_update_round_trip(qbo):
    client, state, _ = qbo
    created = await client.create(
        "Invoice", invoice_body("A-1", "300.10"), request_id="r1"
    )
    assert created["SyncToken"] == "0"
    # The amount travelled as the JSON number 300.10, digits intact.
    assert b'"Amount":300.10' in state.bodies[-1]
    assert state.requests[-1].params["requestid"] == "r1"
    assert state.requests[-1].params["minorversion"] == "75"

    read = await client.get("Invoice", created["Id"])
    assert read["Line"][0]["Amount"] == Decimal("300.10")
    assert isinstance(read["Line"][0]["SalesItemLineDetail"]["Qty"], int)
    assert "requestid" not in state.requests[-1].params

    updated = await client.update(
        "Invoice",
        {"Id": created["Id"], "SyncToken": "0", "PrivateNote": "x"},
        request_id="r2",
    )
    assert updated["SyncToken"] == "1"
    assert json.loads(state.bodies[-1])["sparse"] is True


async def test_qbo_client_create_with_same_request_id_is_replayed(qbo):
    client, state, _ = qbo
    first = await client.create("Invoice", invoice_body("A-2"), request_id="same")
    second = await client.create("Invoice", invoice_body("A-2"), request_id="same")
    assert first["Id"] == second["Id"]
    assert len(state.invoices) == 1


async def test_qbo_client_stale_update_raises_5010(qbo):
    client, _, _ = qbo
    created = await client.create("Invoice", invoice_body("A-3"), request_id="c")
    await client.update(
        "Invoice", {"Id": created["Id"], "SyncToken": "0"}, request_id="u1"
    )
    with pytest.raises(QboStaleObject) as info:
        await client.update(
            "Invoice", {"Id": created["Id"], "SyncToken": "0"}, request_id="u2"
        )
    assert info.value.code == "5010"
    assert isinstance(info.value, errors.QboTransientError)
    assert info.value.intuit_tid.startswith("tid-")


async def test_qbo_client_void_and_delete(qbo):
    client, state, _ = qbo
    created = await client.create("Invoice", invoice_body("A-4"), request_id="c")
    voided = await client.void_invoice(created["Id"], "0", request_id="v")
    assert voided["TotalAmt"] == 0
    assert state.requests[-1].params["operation"] == "void"
    await client.delete("Invoice", created["Id"], voided["SyncToken"], request_id="d")
    assert state.requests[-1].params["operation"] == "delete"
    with pytest.raises(errors.QboNotFound) as info:
        await client.get("Invoice", created["Id"])
    assert info.value.code == "610"


async def test_qbo_client_find_by_escapes_apostrophe(qbo):
    client, state, _ = qbo
    await client.create("Invoice", invoice_body("O'Brien-1"), request_id="a")
    await client.create("Invoice", invoice_body("Other"), request_id="b")
    found = await client.find_by("Invoice", "DocNumber", "O'Brien-1")
    assert [row["DocNumber"] for row in found] == ["O'Brien-1"]
    assert "DocNumber = 'O\\'Brien-1'" in state.requests[-1].params["query"]
    assert await client.find_by("Invoice", "DocNumber", "missing") == []


async def test_qbo_client_query_follows_pages(qbo):
    client, state, _ = qbo
    for n in range(1001):
        state.invoices[str(n + 1)] = {"Id": str(n + 1), "DocNumber": f"P-{n}"}
    rows = await client.query("select * from Invoice")
    assert len(rows) == 1001
    starts = [url.params["query"].split()[-3] for url in state.requests]
    assert starts == ["1", "1001"]


async def test_qbo_client_query_error_is_raised_not_empty(qbo):
    client, _, _ = qbo
    with pytest.raises(errors.QboPermanentError) as info:
        await client.query("select * from Invoice where DocNumber = 'it's'")
    assert info.value.code == "4000"


async def test_qbo_client_cdc_returns_deleted_and_server_time(qbo):
    client, _, _ = qbo
    created = await client.create("Invoice", invoice_body("C-1"), request_id="c1")
    gone = await client.create("Invoice", invoice_body("C-2"), request_id="c2")
    await client.delete("Invoice", gone["Id"], "0", request_id="d")
    since = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
    changes, cursor = await client.cdc(["Invoice", "Customer"], since)
    by_id = {row["Id"]: row for row in changes["Invoice"]}
    assert by_id[gone["Id"]]["status"] == "Deleted"
    assert by_id[created["Id"]]["DocNumber"] == "C-1"
    assert changes["Customer"] == []
    assert cursor == dt.datetime(2026, 12, 4, 16, 0, 0, 123000, tzinfo=dt.UTC)


async def test_qbo_client_cdc_warns_when_answer_hits_the_cap(qbo, caplog):
    client, state, _ = qbo
    caplog.set_level(logging.WARNING, logger="ledgerbridge.connectors.qbo")
    for n in range(1000):
        state.invoices[str(n + 1)] = {"Id": str(n + 1)}
    since = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
    changes, _ = await client.cdc(["Invoice"], since)
    assert len(changes["Invoice"]) == 1000
    [record] = caplog.records
    assert record.action == "cdc_truncated"
    assert record.realm_id == REALM


async def test_qbo_client_batch_returns_item_faults_in_place(qbo):
    client, _, _ = qbo
    results = await client.batch(
        [
            {"bId": "q", "Query": "select * from Invoice"},
            {"bId": "c", "operation": "create", "Invoice": invoice_body("B-1")},
        ],
        request_id="b1",
    )
    assert results[0] == {"bId": "q", "QueryResponse": {}}
    assert isinstance(results[1], errors.QboPermanentError)
    assert results[1].code == "6140"


async def test_qbo_client_401_refreshes_once_and_retries(qbo, caplog):
    client, state, tokens = qbo
    caplog.set_level(logging.DEBUG, logger="ledgerbridge.connectors.qbo")
    rejected = tokens.token
    state.access_tokens.discard(rejected)
    created = await client.create("Invoice", invoice_body("R-1"), request_id="r")
    assert created["DocNumber"] == "R-1"
    assert tokens.refreshed == [rejected]
    assert len(state.requests) == 2
    # Nothing logged carries the token.
    for record in caplog.records:
        assert rejected not in record.getMessage()
        assert record.realm_id == REALM


async def test_qbo_client_401_after_refresh_is_auth_error(qbo):
    client, state, tokens = qbo
    state.access_tokens.clear()

    async def useless_refresh(rejected):
        tokens.refreshed.append(rejected)
        return "never-valid"

    tokens.refresh_access_token = useless_refresh
    with pytest.raises(errors.QboAuthError) as info:
        await client.get("Invoice", "1")
    assert info.value.status_code == 401
    assert len(tokens.refreshed) == 1


async def test_qbo_client_429_json_and_xml(qbo):
    client, state, _ = qbo
    state.injected.append(
        Response(
            json.dumps(fault("3001", "ThrottleExceeded")),
            status_code=429,
            media_type="application/json",
            headers={"Retry-After": "5", "intuit_tid": "tid-429"},
        )
    )
    with pytest.raises(QboThrottled) as info:
        await client.get("Invoice", "1")
    assert info.value.retry_after_seconds == 5.0
    assert info.value.intuit_tid == "tid-429"

    state.injected.append(
        Response(THROTTLE_XML, status_code=429, media_type="application/xml")
    )
    with pytest.raises(QboThrottled) as info:
        await client.get("Invoice", "1")
    assert info.value.retry_after_seconds == 60.0
    assert info.value.code == "3001"


async def test_qbo_client_fault_inside_200(qbo):
    client, state, _ = qbo
    state.injected.append(
        Response(
            json.dumps(fault("6000", "A business validation error has occurred")),
            media_type="application/json",
        )
    )
    with pytest.raises(errors.QboPermanentError) as info:
        await client.create("Invoice", invoice_body("F-1"), request_id="f")
    assert info.value.status_code == 200
    assert info.value.code == "6000"


async def test_qbo_client_5xx_and_refused_connection_are_transient(qbo):
    client, state, tokens = qbo
    state.injected.append(Response("upstream down", status_code=503))
    with pytest.raises(errors.QboTransientError) as info:
        await client.get("Invoice", "1")
    assert info.value.status_code == 503

    # A port nobody listens on: the connection is refused.
    async with httpx.AsyncClient() as http:
        unreachable = QboClient(
            http,
            base_url=f"http://127.0.0.1:{free_port()}",
            realm_id=REALM,
            tokens=tokens,
        )
        with pytest.raises(errors.QboTransientError):
            await unreachable.get("Invoice", "1")


# -- OAuth and the token manager ----------------------------------------------

T0 = dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC)


def make_oauth(
    url: str, clock: FrozenClock, *, secret: str = CLIENT_SECRET
) -> QboOAuth:
    return QboOAuth(
        client_id=CLIENT_ID,
        client_secret=secret,
        authorize_url=f"{url}/connect",
        token_url=f"{url}/oauth2/v1/tokens/bearer",
        revoke_url=f"{url}/oauth2/v1/tokens/revoke",
        redirect_uri="http://127.0.0.1:8000/oauth/qbo/callback",
        scope="com.intuit.quickbooks.accounting",
        clock=clock,
    )


@pytest.fixture
def clock():
    return FrozenClock(T0)


@pytest.fixture
def fernet():
    return Fernet(Fernet.generate_key())


@pytest.fixture
def manager(pool, standin, clock, fernet):
    _, url = standin
    return TokenManager(pool, make_oauth(url, clock), fernet, clock)


async def connection_row(pool, connection_id):
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM connections WHERE id = %s", (connection_id,)
        )
        return await cur.fetchone()


def test_qbo_oauth_authorization_url(standin, clock):
    _, url = standin
    link = httpx.URL(make_oauth(url, clock).authorization_url("st4te"))
    assert str(link).startswith(f"{url}/connect?")
    assert link.params["client_id"] == CLIENT_ID
    assert link.params["response_type"] == "code"
    assert link.params["scope"] == "com.intuit.quickbooks.accounting"
    assert link.params["state"] == "st4te"
    assert link.params["redirect_uri"] == "http://127.0.0.1:8000/oauth/qbo/callback"


async def test_qbo_tokens_exchanged_and_stored_encrypted(
    manager, standin, pool, fernet
):
    state, _ = standin
    connection_id = await manager.connect_with_code(REALM, "good-code", name="Acme")
    call = state.token_calls[-1]
    assert call["grant_type"] == "authorization_code"
    assert call["redirect_uri"] == "http://127.0.0.1:8000/oauth/qbo/callback"

    row = await connection_row(pool, connection_id)
    assert row["status"] == "connected"
    assert row["realm_id"] == REALM
    assert row["token_generation"] == 1
    assert row["access_expires_at"] == T0 + dt.timedelta(hours=1)
    assert "access-" not in row["access_token_enc"]
    assert fernet.decrypt(row["refresh_token_enc"].encode()).decode() == (
        state.refresh_token
    )
    # A fresh token is handed out without asking Intuit.
    token = await manager.get_access_token(connection_id)
    assert token in state.access_tokens
    assert state.refresh_calls == 0


async def test_qbo_tokens_bad_code_and_bad_client(manager, standin, clock):
    _, url = standin
    with pytest.raises(InvalidGrant):
        await manager.connect_with_code(REALM, "bad-code")
    with pytest.raises(errors.QboAuthError):
        await make_oauth(url, clock, secret="wrong").exchange_code("good-code")


async def test_qbo_tokens_refresh_near_expiry_rotates(
    manager, standin, pool, clock, fernet
):
    state, _ = standin
    connection_id = await manager.connect_with_code(REALM, "good-code")
    first = await manager.get_access_token(connection_id)
    clock.advance(3600 - 299)  # inside the five-minute margin
    second = await manager.get_access_token(connection_id)
    assert second != first
    assert state.refresh_calls == 1
    row = await connection_row(pool, connection_id)
    assert row["token_generation"] == 2
    # The rotated refresh token was stored before the new access token was used.
    assert fernet.decrypt(row["refresh_token_enc"].encode()).decode() == (
        state.refresh_token
    )
    assert row["access_expires_at"] == clock.now() + dt.timedelta(hours=1)


async def test_qbo_tokens_invalid_grant_disconnects(manager, standin, pool, clock):
    state, _ = standin
    connection_id = await manager.connect_with_code(REALM, "good-code")
    state.refresh_token = "rotated-elsewhere"
    clock.advance(3600)
    with pytest.raises(errors.ConnectionWaiting) as info:
        await manager.get_access_token(connection_id)
    assert info.value.realm_id == REALM
    row = await connection_row(pool, connection_id)
    assert row["status"] == "disconnected"
    assert row["last_error"].startswith("invalid_grant")

    # Waiting jobs do not hammer the token endpoint.
    calls = state.refresh_calls
    with pytest.raises(errors.ConnectionWaiting):
        await manager.get_access_token(connection_id)
    assert state.refresh_calls == calls

    # Re-consent reconnects the same row.
    assert await manager.connect_with_code(REALM, "good-code") == connection_id
    assert await manager.get_access_token(connection_id) in state.access_tokens


async def test_qbo_tokens_concurrent_refresh_calls_token_endpoint_once(
    db_url, standin, clock, fernet
):
    state, url = standin
    pools = [db_pool.create_pool(db_url, min_size=1, max_size=2) for _ in range(2)]
    for p in pools:
        await p.open(wait=True)
    try:
        # Two workers, each with its own pool, sharing one connection row.
        managers = [
            TokenManager(p, make_oauth(url, clock), fernet, clock) for p in pools
        ]
        connection_id = await managers[0].connect_with_code(REALM, "good-code")
        clock.advance(3600)
        tokens = await asyncio.gather(
            *(m.get_access_token(connection_id) for m in managers * 2)
        )
        assert state.refresh_calls == 1
        assert len(set(tokens)) == 1
        assert tokens[0] in state.access_tokens
        row = await connection_row(pools[0], connection_id)
        assert row["token_generation"] == 2
        assert row["status"] == "connected"
    finally:
        for p in pools:
            await p.close()


async def test_qbo_client_401_refreshes_through_token_manager(manager, standin, pool):
    state, url = standin
    connection_id = await manager.connect_with_code(REALM, "good-code")
    async with httpx.AsyncClient() as http:
        client = await client_for_connection(http, manager, connection_id, base_url=url)
        assert client.realm_id == REALM
        # QBO stops honouring the access token before its stated expiry.
        state.access_tokens.clear()
        created = await client.create("Invoice", invoice_body("T-1"), request_id="t")
    assert created["DocNumber"] == "T-1"
    assert state.refresh_calls == 1
    row = await connection_row(pool, connection_id)
    assert row["token_generation"] == 2


async def test_qbo_tokens_revoke_forgets_tokens(manager, standin, pool):
    state, _ = standin
    connection_id = await manager.connect_with_code(REALM, "good-code")
    refresh = state.refresh_token
    await manager.revoke(connection_id)
    assert state.revoked == [refresh]
    row = await connection_row(pool, connection_id)
    assert row["status"] == "disconnected"
    assert row["refresh_token_enc"] is None
    with pytest.raises(errors.ConnectionWaiting):
        await manager.get_access_token(connection_id)


# -- the shared rate budget -----------------------------------------------------


class SteppingSleep:
    """An injected sleep that moves the frozen clock instead of waiting."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


async def rate_rows(pool):
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT window_seconds, window_start, used FROM qbo_rate_windows "
            "ORDER BY window_seconds, window_start"
        )
        return await cur.fetchall()


async def test_qbo_rate_limit_counts_a_sliding_second(pool):
    clock = FrozenClock(T0 + dt.timedelta(milliseconds=250))
    sleep = SteppingSleep(clock)
    limiter = PgRateLimiter(pool, clock, per_second=3, per_minute=100, sleep=sleep)
    granted = []
    for _ in range(7):
        await limiter.acquire(REALM)
        granted.append(clock.now())
    start = T0 + dt.timedelta(milliseconds=250)
    # Three at once, then each waits until the oldest counted request is a
    # full second old: never more than three inside any one second.
    assert granted == [start] * 3 + [start + dt.timedelta(seconds=1)] * 3 + [
        start + dt.timedelta(seconds=2)
    ]
    assert sleep.delays == [1.0, 1.0]
    for stamp in granted:
        inside = [g for g in granted if stamp - dt.timedelta(seconds=1) < g <= stamp]
        assert len(inside) <= 3


async def test_qbo_rate_limit_full_minute_waits_for_its_oldest_request(pool):
    clock = FrozenClock(T0 + dt.timedelta(seconds=58))
    sleep = SteppingSleep(clock)
    limiter = PgRateLimiter(pool, clock, per_second=10, per_minute=2, sleep=sleep)
    for _ in range(3):
        await limiter.acquire(REALM)
    # The third request waited a whole minute after the first two, not just
    # until the next fixed minute two seconds away.
    assert sleep.delays == [60.0]
    rows = await rate_rows(pool)
    assert sum(r["used"] for r in rows) == 3


async def test_qbo_rate_limit_prunes_old_windows(pool):
    clock = FrozenClock(T0)
    limiter = PgRateLimiter(pool, clock, sleep=SteppingSleep(clock))
    await limiter.acquire(REALM)
    await limiter.acquire("other-realm")
    clock.advance(3600)
    await limiter.acquire(REALM)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT realm_id, count(*) AS n FROM qbo_rate_windows GROUP BY realm_id"
        )
        counts = {r["realm_id"]: r["n"] for r in await cur.fetchall()}
    # The realm's hour-old stamp is gone; the other realm's is pruned only
    # when that realm is used again.
    assert counts == {REALM: 1, "other-realm": 1}


async def test_qbo_rate_budget_shared_by_two_clients(db_url, standin):
    state, url = standin
    clock = FrozenClock(T0)
    sleep = SteppingSleep(clock)
    tokens = StaticTokens(state, state.issue()["access_token"])
    pools = [db_pool.create_pool(db_url, min_size=1, max_size=4) for _ in range(2)]
    for p in pools:
        await p.open(wait=True)
    try:
        async with httpx.AsyncClient() as http:
            clients = [
                QboClient(
                    http,
                    base_url=url,
                    realm_id=REALM,
                    tokens=tokens,
                    rate_limiter=PgRateLimiter(
                        p, clock, per_second=4, per_minute=100, sleep=sleep
                    ),
                )
                for p in pools
            ]
            found = await asyncio.gather(
                *(c.find_by("Invoice", "DocNumber", "x") for c in clients * 5)
            )
        assert found == [[]] * 10
        assert len(state.requests) == 10
        rows = await rate_rows(pools[0])
        stamps = [(r["window_start"], r["used"]) for r in rows]
        assert sum(used for _, used in stamps) == 10
        for at, _ in stamps:
            inside = sum(u for t, u in stamps if at - dt.timedelta(seconds=1) < t <= at)
            assert inside <= 4
        assert sleep.delays
    finally:
        for p in pools:
            await p.close()
