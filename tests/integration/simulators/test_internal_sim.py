"""The reference internal system over real HTTP: the contract and the control API."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from ledgerbridge.simulators.internal import SimConfig, create_app
from support.servers import serve_in_thread

TOKEN = "demo-internal-token"
SECRET = "demo-internal-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Receiver:
    """A webhook endpoint in another thread that records deliveries and can fail."""

    def __init__(self) -> None:
        self.url = ""
        self.lock = threading.Lock()
        self.reset()
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            raw = await request.body()
            event_id = json.loads(raw)["id"]
            with self.lock:
                first = event_id not in self.seen
                self.seen.add(event_id)
                self.received.append({"raw": raw, "headers": dict(request.headers)})
            if first and self.slow_first_seconds:
                await asyncio.sleep(self.slow_first_seconds)
            if self.fail_all or (first and self.fail_first):
                return Response(status_code=500)
            return Response(status_code=204)

    def reset(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.fail_first = False
        self.fail_all = False
        self.slow_first_seconds = 0.0

    def event_ids(self) -> list[str]:
        return [json.loads(r["raw"])["id"] for r in self.received]


def verify_signature(header: str, raw: bytes, secret: str = SECRET) -> bool:
    """The documented scheme: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + raw, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    with serve_in_thread(hook.app) as url:
        hook.url = f"{url}/hook"
        yield hook


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serve_in_thread(create_app(SimConfig(seed=7))) as url:
        yield url


@pytest.fixture
async def api(sim_url: str, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    receiver.reset()
    async with httpx.AsyncClient(
        base_url=sim_url, headers=AUTH, trust_env=False, timeout=5
    ) as client:
        (await client.post("/_sim/reset")).raise_for_status()
        yield client


async def seed(api: httpx.AsyncClient) -> tuple[str, str]:
    seeded = (await api.post("/_sim/seed", json={"customers": 1, "items": 1})).json()
    return seeded["customers"][0]["id"], seeded["items"][0]["id"]


def invoice_body(customer_id: str, item_id: str, /, **overrides: Any) -> dict[str, Any]:
    body = {
        "number": "INV-1001",
        "customer_id": customer_id,
        "currency": "USD",
        "issue_date": "2026-12-04",
        "due_date": "2027-01-03",
        "lines": [
            {
                "item_id": item_id,
                "description": "Consulting, December",
                "quantity": "2",
                "unit_price": "150.00",
            }
        ],
        "memo": "Thank you for your business",
    }
    body.update(overrides)
    return body


async def create_invoice(
    api: httpx.AsyncClient, customer_id: str, item_id: str, key: str, **overrides: Any
) -> dict[str, Any]:
    response = await api.post(
        "/api/invoices",
        json=invoice_body(customer_id, item_id, **overrides),
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    return response.json()


# Auth and reads


async def test_sim_api_requires_bearer_token(api: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        response = await api.get("/api/invoices", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert (await api.get("/api/invoices")).status_code == 200


async def test_sim_get_returns_etag_and_404_for_unknown(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    created = await create_invoice(api, customer_id, item_id, "k1")

    response = await api.get(f"/api/invoices/{created['id']}")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == created
    assert created["lines"][0]["amount"] == "300.00"
    assert created["status"] == "open"
    assert created["updated_at"].endswith("Z")
    assert (await api.get("/api/invoices/inv_nope")).status_code == 404


# Idempotent create


async def test_sim_create_replays_first_response_for_same_key(
    api: httpx.AsyncClient,
) -> None:
    customer_id, item_id = await seed(api)
    body = invoice_body(customer_id, item_id)
    headers = {"Idempotency-Key": "create-inv-1"}

    first = await api.post("/api/invoices", json=body, headers=headers)
    await api.post("/_sim/clock/advance", json={"seconds": 30})
    second = await api.post("/api/invoices", json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    listing = (await api.get("/api/invoices")).json()
    assert [invoice["id"] for invoice in listing["data"]] == [first.json()["id"]]


async def test_sim_create_refuses_reused_key_with_other_body(
    api: httpx.AsyncClient,
) -> None:
    customer_id, item_id = await seed(api)
    headers = {"Idempotency-Key": "k"}
    await api.post(
        "/api/invoices", json=invoice_body(customer_id, item_id), headers=headers
    )

    other = invoice_body(customer_id, item_id, memo="changed")
    response = await api.post("/api/invoices", json=other, headers=headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


async def test_sim_create_requires_idempotency_key(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    response = await api.post("/api/invoices", json=invoice_body(customer_id, item_id))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"


async def test_sim_failed_create_does_not_burn_the_key(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    headers = {"Idempotency-Key": "k"}
    body = invoice_body("cus_missing", item_id)
    assert (
        await api.post("/api/invoices", json=body, headers=headers)
    ).status_code == 422

    body = invoice_body(customer_id, item_id)
    assert (
        await api.post("/api/invoices", json=body, headers=headers)
    ).status_code == 201


# Validation


async def test_sim_rejects_json_numbers_for_money(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    body = invoice_body(customer_id, item_id)
    raw = json.dumps(body).replace('"150.00"', "150.10").replace('"2"', "2")

    response = await api.post(
        "/api/invoices",
        content=raw,
        headers={"Idempotency-Key": "k", "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    error = response.json()["error"]
    fields = {detail["field"]: detail["message"] for detail in error["details"]}
    assert set(fields) == {"lines[0].quantity", "lines[0].unit_price"}
    assert "JSON string" in fields["lines[0].unit_price"]
    # Parsed as Decimal, so the message quotes the exact digits sent, not a float.
    assert '"150.10"' in fields["lines[0].unit_price"]


async def test_sim_rejects_amount_that_is_not_quantity_times_price(
    api: httpx.AsyncClient,
) -> None:
    customer_id, item_id = await seed(api)
    lines = [
        {
            "item_id": item_id,
            "quantity": "2",
            "unit_price": "150.00",
            "amount": "301.00",
        }
    ]
    response = await api.post(
        "/api/invoices",
        json=invoice_body(customer_id, item_id, lines=lines),
        headers={"Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "lines[0].amount"


async def test_sim_computes_amount_rounding_half_up(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    # 3 x 0.335 = 1.005: half-up gives 1.01 where banker's rounding gives 1.00.
    lines = [{"item_id": item_id, "quantity": "3", "unit_price": "0.335"}]
    created = await create_invoice(api, customer_id, item_id, "k", lines=lines)
    assert created["lines"][0]["amount"] == "1.01"

    lines[0]["amount"] = "1.010"
    created = await create_invoice(
        api, customer_id, item_id, "k2", number="N2", lines=lines
    )
    assert created["lines"][0]["amount"] == "1.01"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customer_id": "cus_missing"}, "customer_id"),
        ({"issue_date": "04/12/2026"}, "issue_date"),
        ({"due_date": "2026-02-30"}, "due_date"),
        ({"currency": "usd"}, "currency"),
        ({"lines": []}, "lines"),
        ({"number": ""}, "number"),
        ({"id": "inv_mine"}, "id"),
        ({"status": "void"}, "status"),
    ],
)
async def test_sim_create_rejects_bad_fields(
    api: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    customer_id, item_id = await seed(api)
    response = await api.post(
        "/api/invoices",
        json=invoice_body(customer_id, item_id, **overrides),
        headers={"Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_sim_rejects_unknown_item_and_malformed_json(
    api: httpx.AsyncClient,
) -> None:
    customer_id, _ = await seed(api)
    response = await api.post(
        "/api/invoices",
        json=invoice_body(customer_id, "itm_missing"),
        headers={"Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_reference"

    response = await api.post(
        "/api/invoices", content=b"{not json", headers={"Idempotency-Key": "k2"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


async def test_sim_number_is_unique_among_live_invoices(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    first = await create_invoice(api, customer_id, item_id, "k1")

    response = await api.post(
        "/api/invoices",
        json=invoice_body(customer_id, item_id),
        headers={"Idempotency-Key": "k2"},
    )
    assert response.status_code == 409

    await api.delete(f"/api/invoices/{first['id']}")
    await create_invoice(api, customer_id, item_id, "k3")


# Updates, void, delete


async def test_sim_patch_needs_current_version(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    invoice = await create_invoice(api, customer_id, item_id, "k")
    path = f"/api/invoices/{invoice['id']}"

    missing = await api.patch(path, json={"memo": "x"})
    assert missing.status_code == 428

    updated = await api.patch(
        path, json={"memo": "new memo"}, headers={"If-Match": "1"}
    )
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    assert updated.json()["memo"] == "new memo"
    assert updated.headers["etag"] == '"2"'

    stale = await api.patch(path, json={"memo": "lost"}, headers={"If-Match": "1"})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "version_mismatch"

    # An entity tag in quotes works too; a patch that changes nothing keeps the version.
    same = await api.patch(path, json={"memo": "new memo"}, headers={"If-Match": '"2"'})
    assert same.json()["version"] == 2


async def test_sim_patch_validates_like_create(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    invoice = await create_invoice(api, customer_id, item_id, "k")
    path = f"/api/invoices/{invoice['id']}"

    lines = [{"item_id": item_id, "quantity": "1", "unit_price": 10}]
    response = await api.patch(path, json={"lines": lines}, headers={"If-Match": "1"})
    assert response.status_code == 422

    lines = [{"item_id": item_id, "quantity": "1.5", "unit_price": "10.00"}]
    response = await api.patch(path, json={"lines": lines}, headers={"If-Match": "1"})
    assert response.json()["lines"][0]["amount"] == "15.00"


async def test_sim_void_is_idempotent_and_locks_the_invoice(
    api: httpx.AsyncClient,
) -> None:
    customer_id, item_id = await seed(api)
    invoice = await create_invoice(api, customer_id, item_id, "k")
    path = f"/api/invoices/{invoice['id']}"

    voided = (await api.post(f"{path}/void")).json()
    again = (await api.post(f"{path}/void")).json()
    assert voided["status"] == again["status"] == "void"
    assert voided["version"] == again["version"] == 2

    edit = await api.patch(path, json={"memo": "x"}, headers={"If-Match": "2"})
    assert edit.status_code == 409


async def test_sim_delete_makes_invoice_gone(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    invoice = await create_invoice(api, customer_id, item_id, "k")
    path = f"/api/invoices/{invoice['id']}"

    deleted = await api.delete(path)
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "deleted"
    assert deleted.json()["version"] == 2

    assert (await api.get(path)).status_code == 410
    assert (await api.delete(path)).status_code == 410
    assert (await api.get("/api/invoices", params={"number": "INV-1001"})).json()[
        "data"
    ] == []
    since = {"updated_since": "2000-01-01T00:00:00Z"}
    changed = (await api.get("/api/invoices", params=since)).json()["data"]
    assert [(i["id"], i["status"]) for i in changed] == [(invoice["id"], "deleted")]


# Listings


async def test_sim_updated_since_pages_in_change_order(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    invoices = [
        await create_invoice(api, customer_id, item_id, f"k{n}", number=f"N{n}")
        for n in range(5)
    ]
    now = (await api.post("/_sim/clock/advance", json={"seconds": 60})).json()["now"]

    # Nothing changed since the advance yet.
    page = (await api.get("/api/invoices", params={"updated_since": now})).json()
    assert page == {"data": [], "next_cursor": None}

    for invoice in (invoices[3], invoices[1], invoices[4]):
        await api.patch(
            f"/api/invoices/{invoice['id']}",
            json={"memo": "later"},
            headers={"If-Match": "1"},
        )

    first = (
        await api.get("/api/invoices", params={"updated_since": now, "limit": 2})
    ).json()
    assert [i["id"] for i in first["data"]] == [invoices[3]["id"], invoices[1]["id"]]
    assert first["next_cursor"]

    # A record changed while we page moves behind the cursor, so it is not missed.
    await api.patch(
        f"/api/invoices/{invoices[3]['id']}",
        json={"memo": "again"},
        headers={"If-Match": "2"},
    )
    params = {"updated_since": now, "limit": 2, "cursor": first["next_cursor"]}
    second = (await api.get("/api/invoices", params=params)).json()
    assert [i["id"] for i in second["data"]] == [invoices[4]["id"], invoices[3]["id"]]
    assert second["next_cursor"] is None


async def test_sim_list_rejects_bad_query(api: httpx.AsyncClient) -> None:
    for params in (
        {"limit": "0"},
        {"cursor": "bogus"},
        {"updated_since": "yesterday"},
        {"updated_since": "2026-12-04T00:00:00"},
        {"colour": "red"},
    ):
        response = await api.get("/api/invoices", params=params)
        assert response.status_code == 400, params


async def test_sim_customers_and_items_filter_and_patch(api: httpx.AsyncClient) -> None:
    customer = (
        await api.post(
            "/api/customers",
            json={"name": "Acme", "email": "ap@acme.test"},
            headers={"Idempotency-Key": "c1"},
        )
    ).json()
    item = (
        await api.post(
            "/api/items",
            json={"sku": "CONS-1", "name": "Consulting", "unit_price": "150.00"},
            headers={"Idempotency-Key": "i1"},
        )
    ).json()
    assert customer["id"].startswith("cus_") and customer["version"] == 1
    assert item["unit_price"] == "150.00"

    by_name = (await api.get("/api/customers", params={"name": "Acme"})).json()
    assert [c["id"] for c in by_name["data"]] == [customer["id"]]
    by_sku = (await api.get("/api/items", params={"sku": "CONS-1"})).json()
    assert [i["id"] for i in by_sku["data"]] == [item["id"]]
    assert (await api.get("/api/items", params={"sku": "nope"})).json()["data"] == []

    patched = await api.patch(
        f"/api/items/{item['id']}",
        json={"unit_price": "175.50"},
        headers={"If-Match": "1"},
    )
    assert patched.json()["unit_price"] == "175.50"
    assert patched.json()["version"] == 2
    bad = await api.patch(
        f"/api/customers/{customer['id']}", json={"name": ""}, headers={"If-Match": "1"}
    )
    assert bad.status_code == 422
    assert (await api.delete(f"/api/customers/{customer['id']}")).status_code == 405


async def test_sim_reset_reseeds_ids(api: httpx.AsyncClient) -> None:
    first = (await api.post("/_sim/seed", json={"customers": 2})).json()
    await api.post("/_sim/reset")
    again = (await api.post("/_sim/seed", json={"customers": 2})).json()
    assert [c["id"] for c in first["customers"]] == [
        c["id"] for c in again["customers"]
    ]


# Webhooks


async def test_sim_webhook_is_signed_and_retried_with_same_id(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_first = True
    await api.post("/_sim/webhooks/config", json={"url": receiver.url})
    customer = (
        await api.post(
            "/api/customers", json={"name": "Acme"}, headers={"Idempotency-Key": "c"}
        )
    ).json()

    await api.post("/_sim/webhooks/flush")
    assert len(receiver.received) == 1
    # Not due yet: the first retry waits one (simulated) second.
    assert (await api.post("/_sim/webhooks/flush")).json() == []
    assert len(receiver.received) == 1

    await api.post("/_sim/clock/advance", json={"seconds": 1})
    await api.post("/_sim/webhooks/flush")

    assert len(receiver.received) == 2
    first, second = receiver.received
    assert first["raw"] == second["raw"]
    event = json.loads(second["raw"])
    assert event["id"].startswith("evt_")
    assert event["type"] == "customer.created"
    assert event["data"] == {"id": customer["id"], "version": 1}
    assert event["occurred_at"].endswith("Z")
    for delivery in receiver.received:
        assert verify_signature(delivery["headers"]["x-signature"], delivery["raw"])
    assert not verify_signature(second["headers"]["x-signature"], second["raw"] + b" ")

    log = (await api.get("/_sim/webhooks/deliveries")).json()
    assert [(d["id"], d["attempt"], d["status"]) for d in log] == [
        (event["id"], 1, 500),
        (event["id"], 2, 204),
    ]
    assert (await api.get("/_sim/webhooks/pending")).json() == []


async def test_sim_webhook_gives_up_after_schedule(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_all = True
    await api.post("/_sim/webhooks/config", json={"url": receiver.url})
    await api.post(
        "/api/customers", json={"name": "Acme"}, headers={"Idempotency-Key": "c"}
    )

    await api.post("/_sim/webhooks/flush")
    for delay in (1, 2, 5, 10):
        await api.post("/_sim/clock/advance", json={"seconds": delay})
        await api.post("/_sim/webhooks/flush")

    assert len(receiver.received) == 5
    assert len(set(receiver.event_ids())) == 1
    assert (await api.get("/_sim/webhooks/pending")).json() == []


async def test_sim_webhook_events_cover_every_change(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post("/_sim/webhooks/config", json={"url": receiver.url})
    customer_id, item_id = await seed(api)
    invoice = await create_invoice(api, customer_id, item_id, "k")
    path = f"/api/invoices/{invoice['id']}"
    await api.patch(path, json={"memo": "m"}, headers={"If-Match": "1"})
    await api.post(f"{path}/void")
    await api.delete(path)
    await api.patch(
        f"/api/items/{item_id}", json={"name": "n"}, headers={"If-Match": "1"}
    )
    await api.post("/_sim/webhooks/flush")

    events = sorted(
        (json.loads(r["raw"]) for r in receiver.received),
        key=lambda e: (e["type"], e["data"]["version"]),
    )
    assert [(e["type"], e["data"]["version"]) for e in events] == [
        ("customer.created", 1),
        ("invoice.created", 1),
        ("invoice.deleted", 4),
        ("invoice.updated", 2),
        ("invoice.voided", 3),
        ("item.created", 1),
        ("item.updated", 2),
    ]


async def test_sim_webhook_hold_then_release_reversed_and_repeated(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(
        "/_sim/webhooks/config",
        json={"url": receiver.url, "hold": True},
    )
    await seed(api)
    await api.post("/_sim/webhooks/flush")
    assert receiver.received == []

    pending = (await api.get("/_sim/webhooks/pending")).json()
    assert [p["body"]["type"] for p in pending] == ["customer.created", "item.created"]
    for held in pending:
        raw = held["raw_body"].encode()
        assert json.loads(raw) == held["body"]
        assert verify_signature(held["headers"]["X-Signature"], raw)

    results = (
        await api.post("/_sim/webhooks/release", json={"reverse": True, "repeat": 2})
    ).json()
    assert [r["status"] for r in results] == [204] * 4
    ids = [p["id"] for p in pending]
    assert receiver.event_ids() == [ids[1], ids[1], ids[0], ids[0]]
    assert (await api.get("/_sim/webhooks/pending")).json() == []


async def test_sim_webhook_drop_and_release_by_id(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(
        "/_sim/webhooks/config",
        json={"url": receiver.url, "hold": True},
    )
    await api.post("/_sim/seed", json={"customers": 3})
    ids = [p["id"] for p in (await api.get("/_sim/webhooks/pending")).json()]

    dropped = (await api.post("/_sim/webhooks/drop", json={"ids": [ids[0]]})).json()
    assert dropped == {"dropped": [ids[0]]}
    await api.post("/_sim/webhooks/release", json={"ids": [ids[2]]})
    assert receiver.event_ids() == [ids[2]]
    missing = await api.post("/_sim/webhooks/release", json={"ids": [ids[0]]})
    assert missing.status_code == 404

    # Lifting the hold lets the rest go out on schedule.
    await api.post("/_sim/webhooks/config", json={"hold": False})
    await api.post("/_sim/webhooks/flush")
    assert receiver.event_ids() == [ids[2], ids[1]]


async def test_sim_webhook_timeout_counts_as_failed_attempt(receiver: Receiver) -> None:
    receiver.reset()
    receiver.slow_first_seconds = 0.3
    config = SimConfig(webhook_url=receiver.url, webhook_timeout_seconds=0.05)
    with serve_in_thread(create_app(config)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers=AUTH, trust_env=False
        ) as api:
            await api.post(
                "/api/customers", json={"name": "A"}, headers={"Idempotency-Key": "c"}
            )
            await api.post("/_sim/webhooks/flush")
            await api.post("/_sim/clock/advance", json={"seconds": 1})
            await api.post("/_sim/webhooks/flush")
            log = (await api.get("/_sim/webhooks/deliveries")).json()
    assert [(d["attempt"], d["status"], d["error"]) for d in log] == [
        (1, None, "timeout"),
        (2, 204, None),
    ]


# Faults and the request log


async def test_sim_status_fault_applies_given_times(api: httpx.AsyncClient) -> None:
    await api.post(
        "/_sim/faults",
        json={
            "kind": "status",
            "status": 503,
            "times": 2,
            "method": "GET",
            "path_regex": "^/api/customers$",
            "retry_after": "3",
        },
    )
    first = await api.get("/api/customers")
    assert first.status_code == 503
    assert first.headers["retry-after"] == "3"
    assert (await api.get("/api/items")).status_code == 200
    assert (await api.get("/api/customers")).status_code == 503
    assert (await api.get("/api/customers")).status_code == 200


async def test_sim_timeout_faults_commit_or_not(api: httpx.AsyncClient) -> None:
    for kind, key in (
        ("timeout_before_commit", "before"),
        ("timeout_after_commit", "after"),
    ):
        await api.post(
            "/_sim/faults", json={"kind": kind, "method": "POST", "hold_seconds": 5}
        )
        with pytest.raises(httpx.ReadTimeout):
            await api.post(
                "/api/customers",
                json={"name": key},
                headers={"Idempotency-Key": key},
                timeout=0.2,
            )
    names = [c["name"] for c in (await api.get("/api/customers")).json()["data"]]
    assert names == ["after"]
    cleared = await api.delete("/_sim/faults")
    assert cleared.json() == {"cleared": 0}


async def test_sim_request_log_names_operations(api: httpx.AsyncClient) -> None:
    customer_id, item_id = await seed(api)
    invoice = await create_invoice(api, customer_id, item_id, "key-1")
    path = f"/api/invoices/{invoice['id']}"
    await api.get(path)
    await api.get("/api/invoices", params={"number": "INV-1001"})
    await api.patch(path, json={"memo": "m"}, headers={"If-Match": "1"})
    await api.post(f"{path}/void")
    await api.delete(path)

    log = (await api.get("/_sim/requests")).json()
    assert [(r["method"], r["operation"], r["status"]) for r in log] == [
        ("POST", "create", 201),
        ("GET", "read", 200),
        ("GET", "list", 200),
        ("PATCH", "update", 200),
        ("POST", "void", 200),
        ("DELETE", "delete", 200),
    ]
    assert log[0]["idempotency_key"] == "key-1"
    assert log[2]["query"] == "number=INV-1001"
    later = (await api.get("/_sim/requests", params={"since": log[3]["seq"]})).json()
    assert [r["operation"] for r in later] == ["void", "delete"]


# Persistence


async def test_sim_state_survives_restart(tmp_path: Any) -> None:
    state_path = tmp_path / "internal.json"
    config = SimConfig(state_path=state_path, seed=3)
    with serve_in_thread(create_app(config)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers=AUTH, trust_env=False
        ) as api:
            customer_id, item_id = await seed(api)
            body = invoice_body(customer_id, item_id)
            created = await api.post(
                "/api/invoices", json=body, headers={"Idempotency-Key": "k"}
            )
            invoice = created.json()
            await api.patch(
                f"/api/invoices/{invoice['id']}",
                json={"memo": "m"},
                headers={"If-Match": "1"},
            )

    saved = json.loads(state_path.read_text())
    stored_line = saved["records"]["invoices"][invoice["id"]]["lines"][0]
    assert stored_line["amount"] == "300.00"
    assert not list(tmp_path.glob(".state-*"))

    with serve_in_thread(create_app(config)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers=AUTH, trust_env=False
        ) as api:
            reread = (await api.get(f"/api/invoices/{invoice['id']}")).json()
            replay = await api.post(
                "/api/invoices", json=body, headers={"Idempotency-Key": "k"}
            )
            other = (await api.post("/_sim/seed", json={"customers": 1})).json()

    assert reread["version"] == 2
    assert reread["memo"] == "m"
    assert Decimal(reread["lines"][0]["amount"]) == Decimal("300")
    assert replay.status_code == 201
    assert replay.content == created.content
    assert other["customers"][0]["id"] != customer_id


# The one clock


async def test_sim_reads_time_from_the_injected_clock() -> None:
    start = dt.datetime(2026, 12, 4, 15, 4, 5, tzinfo=dt.UTC)
    with serve_in_thread(create_app(SimConfig(clock=lambda: start))) as url:
        async with httpx.AsyncClient(
            base_url=url, headers=AUTH, trust_env=False
        ) as api:
            await api.post("/_sim/webhooks/config", json={"hold": True})
            first = (await api.post("/_sim/seed", json={"customers": 1})).json()
            await api.post("/_sim/clock/advance", json={"seconds": 60})
            second = (await api.post("/_sim/seed", json={"customers": 1})).json()
            pending = (await api.get("/_sim/webhooks/pending")).json()

    assert first["customers"][0]["updated_at"] == "2026-12-04T15:04:05Z"
    assert second["customers"][0]["updated_at"] == "2026-12-04T15:05:05Z"
    assert [p["body"]["occurred_at"] for p in pending] == [
        "2026-12-04T15:04:05Z",
        "2026-12-04T15:05:05Z",
    ]
    # Signatures are stamped when sent (here: listed), by the same clock.
    signed_at = int(start.timestamp()) + 60
    assert pending[0]["headers"]["X-Signature"].startswith(f"t={signed_at},")


async def test_sim_void_and_delete_honour_an_optional_if_match(
    api: httpx.AsyncClient,
) -> None:
    customer_id, item_id = await seed(api)
    invoice = await create_invoice(api, customer_id, item_id, "k")
    path = f"/api/invoices/{invoice['id']}"

    assert (
        await api.post(f"{path}/void", headers={"If-Match": "5"})
    ).status_code == 412
    assert (await api.delete(path, headers={"If-Match": "5"})).status_code == 412
    assert (await api.delete(path, headers={"If-Match": "1"})).status_code == 200
