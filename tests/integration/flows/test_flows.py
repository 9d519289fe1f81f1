"""The named end-to-end flows of docs/flows.md, against the real servers."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest

from ledgerbridge import errors
from ledgerbridge.db.queries import QUERIES
from ledgerbridge.reconciler import reconciler
from ledgerbridge.sync import engine, mapping, sides
from ledgerbridge.web import actions
from support import factories
from support.stack import run_stack


def _writes(requests, *, exclude_reads=True):
    reads = {"read", "query", "cdc", "list"}
    return [
        r for r in requests if r.get("operation") not in reads and r["method"] != "GET"
    ]


async def test_flow_01_internal_create_reaches_qbo(stack):
    invoice = await factories.internal_invoice(stack, number="INV-7001", quantity="3")

    await stack.settle()

    found = await stack.qbo_invoice_by_number("INV-7001")
    assert len(found) == 1
    qbo_invoice = found[0]
    assert qbo_invoice["CustomerMemo"]["value"] == invoice["memo"]
    sales = [
        line
        for line in qbo_invoice["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]
    assert Decimal(str(sales[0]["Amount"])) == Decimal(invoice["lines"][0]["amount"])
    statuses = [e["status"] for e in await stack.events()]
    assert "applied" in statuses


async def test_flow_03_internal_edit_updates_qbo_and_echoes_stop(stack):
    invoice = await factories.internal_invoice(stack, number="INV-7003")
    await stack.settle()
    qbo_seq = (await stack.qbo_requests())[-1]["seq"]
    await factories.internal_patch(stack, invoice["id"], {"memo": "Paid by card"})
    internal_seq = (await stack.internal_requests())[-1]["seq"]

    await stack.settle()

    found = await stack.qbo_invoice_by_number("INV-7003")
    assert found[0]["CustomerMemo"]["value"] == "Paid by card"
    qbo_writes = _writes(await stack.qbo_requests(qbo_seq))
    internal_writes = _writes(await stack.internal_requests(internal_seq))
    assert len(qbo_writes) == 1, qbo_writes
    assert internal_writes == [], internal_writes
    assert "echo" in [e["status"] for e in await stack.events()]


async def test_flow_04_qbo_edit_updates_internal(stack):
    invoice = await factories.internal_invoice(stack, number="INV-7004")
    await stack.settle()
    qbo_id = (await stack.qbo_invoice_by_number("INV-7004"))[0]["Id"]
    qbo_seq = (await stack.qbo_requests())[-1]["seq"]
    internal_seq = (await stack.internal_requests())[-1]["seq"]

    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "Net 15"}}
    )
    await stack.settle()

    current = (await stack.internal.get(f"/api/invoices/{invoice['id']}")).json()
    assert current["memo"] == "Net 15"
    internal_writes = _writes(await stack.internal_requests(internal_seq))
    assert len(internal_writes) == 1, internal_writes
    # The person's own sparse update is the only write QBO saw.
    assert len(_writes(await stack.qbo_requests(qbo_seq))) == 1


# -- helpers: the systems as people and operators see them ---------------------

SAMPLE_CUSTOMER_QBO_ID = "1"  # "Amy's Bird Sanctuary" in every fresh sandbox
SAMPLE_ITEM_QBO_ID = "1"  # "Services", 150.00


def _control(stack, side):
    return stack.qbo_control if side == "qbo" else stack.internal_control


async def _hold(stack, side, hold=True):
    resp = await _control(stack, side).post(
        "/_sim/webhooks/config", json={"hold": hold}
    )
    resp.raise_for_status()


async def _cut(stack, side):
    """Close QBO's batching window now, so the next change is its own delivery."""
    if side == "qbo":
        await stack.qbo_control.post("/_sim/webhooks/flush", json={})


async def _pending(stack, side):
    resp = await _control(stack, side).get("/_sim/webhooks/pending")
    resp.raise_for_status()
    return resp.json()


async def _release(stack, side, **options):
    await _cut(stack, side)
    resp = await _control(stack, side).post("/_sim/webhooks/release", json=options)
    resp.raise_for_status()
    return resp.json()


async def _drop(stack, side):
    await _cut(stack, side)
    resp = await _control(stack, side).post("/_sim/webhooks/drop", json={})
    resp.raise_for_status()
    return resp.json()["dropped"]


async def _rows(stack, statement, params=None):
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(statement, params or {})
        return list(await cur.fetchall())


async def _link(stack, *, internal_id=None, qbo_id=None, entity_type="invoice"):
    rows = await _rows(
        stack,
        "SELECT * FROM links WHERE entity_type = %(t)s"
        " AND (internal_id = %(i)s OR qbo_id = %(q)s)",
        {"t": entity_type, "i": internal_id, "q": qbo_id},
    )
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


async def _entity_events(stack, side, entity_id, entity_type="invoice"):
    return await _rows(
        stack,
        "SELECT * FROM events WHERE side = %(s)s AND entity_type = %(t)s"
        " AND entity_id = %(i)s ORDER BY id",
        {"s": side, "t": entity_type, "i": entity_id},
    )


async def _internal_get(stack, invoice_id):
    resp = await stack.internal.get(f"/api/invoices/{invoice_id}")
    if resp.status_code == 410:
        return None
    resp.raise_for_status()
    return resp.json()


async def _qbo_get(stack, qbo_id, entity="invoice"):
    resp = await stack.qbo.get(f"/v3/company/{stack.realm_id}/{entity}/{qbo_id}")
    if resp.status_code == 400 and "610" in resp.text:
        return None
    resp.raise_for_status()
    # Money stays Decimal from the wire on, as in the connector.
    return next(iter(json.loads(resp.text, parse_float=Decimal).values()))


async def _qbo_create_invoice(stack, number, *, memo="Made in QBO", qty="2"):
    resp = await stack.qbo.post(
        f"/v3/company/{stack.realm_id}/invoice",
        json={
            "DocNumber": number,
            "CustomerRef": {"value": SAMPLE_CUSTOMER_QBO_ID},
            "TxnDate": "2026-12-05",
            "DueDate": "2027-01-04",
            "CustomerMemo": {"value": memo},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": str(Decimal(qty) * Decimal("150.00")),
                    "Description": "Bird baths",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": SAMPLE_ITEM_QBO_ID},
                        "Qty": qty,
                        "UnitPrice": "150.00",
                    },
                }
            ],
        },
    )
    resp.raise_for_status()
    return resp.json()["Invoice"]


async def _qbo_void(stack, qbo_id):
    current = await _qbo_get(stack, qbo_id)
    resp = await stack.qbo.post(
        f"/v3/company/{stack.realm_id}/invoice",
        params={"operation": "void"},
        json={"Id": qbo_id, "SyncToken": current["SyncToken"]},
    )
    resp.raise_for_status()
    return resp.json()["Invoice"]


async def _linked_invoice(stack, number, **kwargs):
    """An internal invoice already synced to QBO: (internal record, QBO id)."""
    invoice = await factories.internal_invoice(stack, number=number, **kwargs)
    await stack.settle()
    found = await stack.qbo_invoice_by_number(number)
    assert len(found) == 1, found
    return invoice, found[0]["Id"]


def _seq(requests):
    return requests[-1]["seq"] if requests else 0


async def _marks(stack):
    """Where both systems' request logs stand now."""
    return _seq(await stack.qbo_requests()), _seq(await stack.internal_requests())


async def _writes_since(stack, marks):
    qbo_seq, internal_seq = marks
    return (
        _writes(await stack.qbo_requests(qbo_seq)),
        _writes(await stack.internal_requests(internal_seq)),
    )


async def assert_ledgers_agree(stack):
    """The checks that matter, over every linked invoice.

    Active pairs agree field by field in canonical form; held pairs have an
    open conflict listing both values; no DocNumber exists twice in QBO.
    """
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            QUERIES["reference_links"], {"connection_id": stack.connection_id}
        )
        refs = sides.RefMaps.from_rows(await cur.fetchall())
    links = await _rows(stack, "SELECT * FROM links WHERE entity_type = 'invoice'")
    for link in links:
        if link["internal_id"] is None or link["qbo_id"] is None:
            continue
        internal = await _internal_get(stack, link["internal_id"])
        qbo = await _qbo_get(stack, link["qbo_id"])
        if link["state"] == "deleted":
            assert internal is None or internal["status"] in ("deleted", "void")
            assert qbo is None or mapping.is_qbo_void(qbo)
            continue
        left = sides.internal_to_canonical("invoice", internal)
        right = sides.qbo_to_canonical("invoice", qbo, refs)
        if link["state"] == "held":
            conflicts = await _rows(
                stack,
                "SELECT * FROM conflicts WHERE link_id = %(l)s AND status = 'open'",
                {"l": link["id"]},
            )
            assert len(conflicts) == 1, link
            for field in conflicts[0]["fields"]:
                assert {"base", "internal", "qbo"} <= set(field), field
            continue
        assert left == right, (link["natural_key"], left, right)
    numbers = [
        i.get("DocNumber") for i in await stack.qbo_query("select * from Invoice")
    ]
    duplicated = {n for n in numbers if n and numbers.count(n) > 1}
    assert not duplicated, duplicated


# -- flows -----------------------------------------------------------------------


async def test_flow_02_qbo_create_reaches_internal(stack):
    created = await _qbo_create_invoice(stack, "Q-2002", memo="Made in QBO")

    await stack.settle()

    link = await _link(stack, qbo_id=created["Id"])
    assert link is not None and link["internal_id"]
    internal = await _internal_get(stack, link["internal_id"])
    assert internal["number"] == "Q-2002"
    assert internal["memo"] == "Made in QBO"
    assert Decimal(internal["lines"][0]["amount"]) == Decimal("300.00")
    customer = (
        await stack.internal.get(f"/api/customers/{internal['customer_id']}")
    ).json()
    item = (
        await stack.internal.get(f"/api/items/{internal['lines'][0]['item_id']}")
    ).json()
    assert customer["name"] == "Amy's Bird Sanctuary"
    assert item["name"] == "Services"
    for entity_type, qbo_id in (("customer", "1"), ("item", "1")):
        ref = await _link(stack, qbo_id=qbo_id, entity_type=entity_type)
        assert ref is not None and ref["internal_id"]
    # Our create came back to us as an internal webhook: an echo, not a write.
    assert len(await stack.qbo_invoice_by_number("Q-2002")) == 1
    await assert_ledgers_agree(stack)


async def test_flow_05_same_webhook_ten_times_applies_once(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7005")
    await _hold(stack, "internal")
    await factories.internal_patch(
        stack, invoice["id"], {"memo": "Delivered ten times"}
    )
    pending = await _pending(stack, "internal")
    assert len(pending) == 1
    marks = await _marks(stack)
    deliveries_before = len(await _rows(stack, "SELECT id FROM deliveries"))

    results = await _release(stack, "internal", repeat=10)
    await stack.settle()

    assert [r["status"] for r in results] == [200] * 10
    qbo_writes, internal_writes = await _writes_since(stack, marks)
    assert len(qbo_writes) == 1, qbo_writes
    assert internal_writes == []
    # Every delivery is in the log; only one of them became an event.
    deliveries = await _rows(stack, "SELECT id FROM deliveries")
    assert len(deliveries) - deliveries_before == 10
    events = [
        e
        for e in await _entity_events(stack, "internal", invoice["id"])
        if e["dedupe_key"] == f"internal:{pending[0]['id']}"
    ]
    assert len(events) == 1 and events[0]["status"] == "applied", events
    assert (await _qbo_get(stack, qbo_id))["CustomerMemo"][
        "value"
    ] == "Delivered ten times"
    await assert_ledgers_agree(stack)


async def test_flow_06_older_webhook_after_newer_ends_on_newest(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7006")
    await _hold(stack, "qbo")
    await _hold(stack, "internal")
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "first"}}
    )
    await _cut(stack, "qbo")
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "second"}}
    )
    await _cut(stack, "qbo")
    assert len(await _pending(stack, "qbo")) == 2
    marks = await _marks(stack)

    await _release(stack, "qbo", reverse=True)
    await stack.settle()

    assert (await _internal_get(stack, invoice["id"]))["memo"] == "second"
    _, internal_writes = await _writes_since(stack, marks)
    assert len(internal_writes) == 1, internal_writes

    # The same on the other side: two internal edits, delivered newest first
    # (after the echo of our own write, held meanwhile, has gone through).
    await _release(stack, "internal")
    await stack.settle()
    await factories.internal_patch(stack, invoice["id"], {"memo": "third"})
    await factories.internal_patch(stack, invoice["id"], {"memo": "fourth"})
    assert len(await _pending(stack, "internal")) == 2
    await _hold(stack, "qbo", hold=False)
    await _release(stack, "internal", reverse=True)
    await stack.settle()

    assert (await _qbo_get(stack, qbo_id))["CustomerMemo"]["value"] == "fourth"
    assert (await _internal_get(stack, invoice["id"]))["memo"] == "fourth"
    await assert_ledgers_agree(stack)


async def test_flow_07_dropped_webhook_caught_by_reconciler(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7007")
    await _hold(stack, "internal")
    await _hold(stack, "qbo")
    await factories.internal_patch(stack, invoice["id"], {"memo": "never announced"})
    await factories.qbo_sparse_update(stack, qbo_id, {"DueDate": "2027-02-01"})
    assert len(await _drop(stack, "internal")) == 1
    assert len(await _drop(stack, "qbo")) == 1
    await stack.settle()
    assert (await _qbo_get(stack, qbo_id))["CustomerMemo"]["value"] != "never announced"

    found = await reconciler.reconcile_all(stack.services)
    await stack.settle()

    assert found >= 1
    qbo = await _qbo_get(stack, qbo_id)
    internal = await _internal_get(stack, invoice["id"])
    assert qbo["CustomerMemo"]["value"] == "never announced"
    assert internal["memo"] == "never announced"
    assert internal["due_date"] == "2027-02-01"
    origins = {e["origin"] for e in await stack.events() if e["status"] == "applied"}
    assert "reconciler" in origins
    await assert_ledgers_agree(stack)


@pytest.fixture
async def impatient_stack(db_url, tmp_path):
    """The stack with a client that gives up on QBO after half a second."""
    async with run_stack(db_url, tmp_path, http_timeout_seconds=0.5) as running:
        yield running


async def _create_that_times_out(stack, number):
    """An internal invoice whose QBO create lands but whose answer is lost;
    QBO's webhooks are held so nothing else finds it first."""
    # Customers and items go through first, so the fault meets the invoice.
    customer = await factories.internal_customer(stack)
    item = await factories.internal_item(stack)
    await stack.settle()
    await stack.arm_qbo_create_timeout(3)
    await _hold(stack, "qbo")
    invoice = await factories.internal_invoice(
        stack, number=number, customer=customer, item=item
    )
    await stack.settle()
    return invoice


async def test_flow_08_qbo_create_timeout_after_commit_is_adopted(impatient_stack):
    stack = impatient_stack
    invoice = await _create_that_times_out(stack, "INV-7008")

    # QBO has the invoice, but the job could not know it: it failed for retry.
    assert len(await stack.qbo_invoice_by_number("INV-7008")) == 1
    events = await _entity_events(stack, "internal", invoice["id"])
    assert events[-1]["status"] == "failed", events
    assert "Timeout" in events[-1]["detail"] or "timed out" in events[-1]["detail"]
    assert await _link(stack, internal_id=invoice["id"]) is None

    # The retry (run now rather than after the backoff) finds it by number.
    outcome = await engine.sync_entity(
        stack.services,
        connection_id=stack.connection_id,
        side="internal",
        entity_type="invoice",
        entity_id=invoice["id"],
    )
    await _hold(stack, "qbo", hold=False)
    await _release(stack, "qbo")
    await stack.settle()

    assert outcome.status in ("noop", "applied"), outcome
    found = await stack.qbo_invoice_by_number("INV-7008")
    assert len(found) == 1, found
    link = await _link(stack, internal_id=invoice["id"])
    assert link["qbo_id"] == found[0]["Id"] and link["state"] == "active"
    creates = [
        r
        for r in await stack.qbo_requests()
        if r["operation"] == "create" and r["path"].endswith("/invoice")
    ]
    assert len(creates) == 1, creates
    await assert_ledgers_agree(stack)


async def _open_conflict(stack, link_id):
    rows = await _rows(
        stack,
        "SELECT * FROM conflicts WHERE link_id = %(l)s AND status = 'open'",
        {"l": link_id},
    )
    assert len(rows) == 1, rows
    return rows[0]


async def test_flow_09_same_field_conflict_held_then_resolved(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7009")
    await factories.internal_patch(stack, invoice["id"], {"memo": "internal says"})
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "qbo says"}}
    )
    marks = await _marks(stack)

    await stack.settle()

    link = await _link(stack, internal_id=invoice["id"])
    assert link["state"] == "held"
    listed = (await _lb_get(stack, "/api/conflicts")).json()
    assert len(listed) == 1
    (field,) = listed[0]["fields"]
    assert field["field"] == "memo"
    assert field["internal"] == "internal says" and field["qbo"] == "qbo says"
    assert field["base"] == "Thank you for your business"
    assert await _writes_since(stack, marks) == ([], [])

    # While held, more edits on both sides are recorded, and nothing is written.
    await factories.internal_patch(stack, invoice["id"], {"due_date": "2027-03-01"})
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "qbo says again"}}
    )
    marks = await _marks(stack)
    await stack.settle()

    assert await _writes_since(stack, marks) == ([], [])
    conflict = await _open_conflict(stack, link["id"])
    assert conflict["events_held"] >= 2
    assert conflict["fields"][0]["qbo"] == "qbo says again"
    held = [
        e["status"] for e in await _entity_events(stack, "internal", invoice["id"])
    ][-1:] + [e["status"] for e in await _entity_events(stack, "qbo", qbo_id)][-1:]
    assert held == ["held", "held"]

    # A person takes QBO's memo; the internal-only due date edit survives.
    await actions.resolve_conflict(
        stack.services, conflict["id"], {"memo": "qbo"}, resolved_by="ana"
    )
    await stack.settle()

    internal = await _internal_get(stack, invoice["id"])
    qbo = await _qbo_get(stack, qbo_id)
    assert internal["memo"] == qbo["CustomerMemo"]["value"] == "qbo says again"
    assert internal["due_date"] == qbo["DueDate"] == "2027-03-01"
    assert (await _link(stack, internal_id=invoice["id"]))["state"] == "active"
    closed = await _rows(
        stack, "SELECT * FROM conflicts WHERE id = %(c)s", {"c": conflict["id"]}
    )
    assert closed[0]["status"] == "resolved" and closed[0]["resolved_by"] == "ana"

    # Again, resolved through the HTTP API with a typed value this time.
    await factories.internal_patch(stack, invoice["id"], {"memo": "mine"})
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "no, mine"}}
    )
    await stack.settle()
    conflict = await _open_conflict(stack, link["id"])
    resp = await _lb_post(
        stack,
        f"/api/conflicts/{conflict['id']}/resolve",
        {"choices": {"memo": {"value": "ours"}}, "resolved_by": "ben"},
    )
    assert resp.status_code == 200, resp.text
    await stack.settle()

    assert (await _internal_get(stack, invoice["id"]))["memo"] == "ours"
    assert (await _qbo_get(stack, qbo_id))["CustomerMemo"]["value"] == "ours"
    assert (await _lb_get(stack, "/api/conflicts")).json() == []
    await assert_ledgers_agree(stack)


async def _lb_get(stack, path):
    async with httpx.AsyncClient(base_url=stack.lb_url) as client:
        return await client.get(path)


async def _lb_post(stack, path, body):
    async with httpx.AsyncClient(base_url=stack.lb_url) as client:
        return await client.post(path, json=body)


async def test_flow_10_different_fields_merge_without_conflict(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7010")
    await factories.internal_patch(stack, invoice["id"], {"memo": "edited inside"})
    await factories.qbo_sparse_update(stack, qbo_id, {"DueDate": "2027-01-31"})

    await stack.settle()

    internal = await _internal_get(stack, invoice["id"])
    qbo = await _qbo_get(stack, qbo_id)
    assert internal["memo"] == qbo["CustomerMemo"]["value"] == "edited inside"
    assert internal["due_date"] == qbo["DueDate"] == "2027-01-31"
    assert (await _rows(stack, "SELECT id FROM conflicts")) == []
    assert (await _link(stack, internal_id=invoice["id"]))["state"] == "active"
    await assert_ledgers_agree(stack)


async def test_flow_11_void_in_qbo_voids_internally(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7011")

    await _qbo_void(stack, qbo_id)
    await stack.settle()

    assert (await _internal_get(stack, invoice["id"]))["status"] == "void"
    assert mapping.is_qbo_void(await _qbo_get(stack, qbo_id))
    assert (await _rows(stack, "SELECT id FROM conflicts")) == []
    await assert_ledgers_agree(stack)


async def test_flow_12_internal_delete_follows_the_payment_policy(stack):
    unpaid, unpaid_qbo_id = await _linked_invoice(stack, "INV-7012")
    paid, paid_qbo_id = await _linked_invoice(stack, "INV-7112")
    marks = await _marks(stack)
    payment = await stack.qbo_control.post(
        f"/_sim/realms/{stack.realm_id}/payments",
        json={"invoice_id": paid_qbo_id, "amount": "100.00"},
    )
    payment.raise_for_status()
    await stack.settle()
    # A payment touches only QBO-owned fields: nothing to write, no conflict.
    qbo_writes, internal_writes = await _writes_since(stack, marks)
    assert internal_writes == [], internal_writes
    assert qbo_writes == [], qbo_writes
    assert (await _rows(stack, "SELECT id FROM conflicts")) == []

    for invoice in (unpaid, paid):
        resp = await stack.internal.delete(f"/api/invoices/{invoice['id']}")
        resp.raise_for_status()
    await stack.settle()

    # No money received: QBO deletes it. Money received: QBO keeps and voids it.
    assert await _qbo_get(stack, unpaid_qbo_id) is None
    voided = await _qbo_get(stack, paid_qbo_id)
    assert voided is not None and mapping.is_qbo_void(voided)
    for invoice in (unpaid, paid):
        assert (await _link(stack, internal_id=invoice["id"]))["state"] == "deleted"
    await assert_ledgers_agree(stack)


class _EditFirst:
    """A QBO client whose next update lets a person edit the invoice first.

    The servers are real; only the timing is arranged: the person's edit lands
    between the engine's read and its write.
    """

    def __init__(self, inner, edit):
        self._inner = inner
        self._edit = edit

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def update(self, entity, body, *, request_id):
        if self._edit is not None:
            edit, self._edit = self._edit, None
            await edit()
        return await self._inner.update(entity, body, request_id=request_id)


class _ServicesWith:
    def __init__(self, inner, wrap):
        self._inner = inner
        self._wrap = wrap

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def qbo_for(self, connection_id):
        return self._wrap(await self._inner.qbo_for(connection_id))


async def test_flow_13_qbo_edit_between_read_and_write_is_not_lost(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7013")
    await _hold(stack, "internal")
    await factories.internal_patch(stack, invoice["id"], {"memo": "our edit"})
    seq = _seq(await stack.qbo_requests())

    async def person_edits_qbo():
        await factories.qbo_sparse_update(stack, qbo_id, {"DueDate": "2027-04-30"})

    services = _ServicesWith(
        stack.services, lambda qbo: _EditFirst(qbo, person_edits_qbo)
    )
    outcome = await engine.sync_entity(
        services,
        connection_id=stack.connection_id,
        side="internal",
        entity_type="invoice",
        entity_id=invoice["id"],
    )
    await _hold(stack, "internal", hold=False)
    await _release(stack, "internal")
    await stack.settle()

    assert outcome.status == "applied", outcome
    stale = [r for r in await stack.qbo_requests(seq) if r["status"] == 400]
    assert len(stale) == 1, stale  # our first write met 5010
    internal = await _internal_get(stack, invoice["id"])
    qbo = await _qbo_get(stack, qbo_id)
    assert internal["memo"] == qbo["CustomerMemo"]["value"] == "our edit"
    assert internal["due_date"] == qbo["DueDate"] == "2027-04-30"
    await assert_ledgers_agree(stack)


async def test_flow_14_mapping_failure_dead_letter_fixed_and_replayed(stack):
    long_number = "INV-" + "9" * 20  # QBO's DocNumber holds 21 characters
    invoice = await factories.internal_invoice(stack, number=long_number)

    await stack.settle()

    dead = (await _lb_get(stack, "/api/dead-letters")).json()
    assert [(d["side"], d["entity_id"]) for d in dead] == [("internal", invoice["id"])]
    assert "MappingError" in dead[0]["detail"] and "doc_number" in dead[0]["detail"]
    assert await stack.qbo_invoice_by_number(long_number) == []

    # The cause is fixed quietly (its webhook is lost), then replayed.
    await _hold(stack, "internal")
    await factories.internal_patch(stack, invoice["id"], {"number": "INV-7014"})
    await _drop(stack, "internal")
    await _hold(stack, "internal", hold=False)
    await actions.replay_event(stack.services, dead[0]["id"])
    await stack.settle()

    found = await stack.qbo_invoice_by_number("INV-7014")
    assert len(found) == 1
    assert (await _link(stack, internal_id=invoice["id"]))["qbo_id"] == found[0]["Id"]
    assert (await _lb_get(stack, "/api/dead-letters")).json() == []
    await assert_ledgers_agree(stack)


# -- beyond the numbered flows ---------------------------------------------------


async def _internal_by_number(stack, number):
    resp = await stack.internal.get("/api/invoices", params={"number": number})
    resp.raise_for_status()
    return [i for i in resp.json()["data"] if i["status"] != "deleted"]


async def test_racing_creates_make_one_invoice(stack):
    await _hold(stack, "internal")
    await _hold(stack, "qbo")
    invoice = await factories.internal_invoice(stack, number="INV-7020")
    created = await _qbo_create_invoice(stack, "Q-7020")

    def job(side, entity_id):
        return engine.sync_entity(
            stack.services,
            connection_id=stack.connection_id,
            side=side,
            entity_type="invoice",
            entity_id=entity_id,
        )

    # Two jobs for each new record race, each from a cold start: customers,
    # items and the invoice itself are all claimed concurrently.
    outcomes = await asyncio.gather(
        job("internal", invoice["id"]),
        job("internal", invoice["id"]),
        job("qbo", created["Id"]),
        job("qbo", created["Id"]),
    )
    await _hold(stack, "internal", hold=False)
    await _hold(stack, "qbo", hold=False)
    await _release(stack, "internal")
    await _release(stack, "qbo")
    await stack.settle()

    # Per record, one job creates; the other waits on the claimed number and
    # then finds the pair already in step (or its source our own write).
    for pair in (outcomes[:2], outcomes[2:]):
        statuses = sorted(o.status for o in pair)
        assert statuses[0] == "applied" and statuses[1] in ("echo", "noop"), pair
        assert sum("created in" in o.detail for o in pair) == 1, pair
    assert len(await stack.qbo_invoice_by_number("INV-7020")) == 1
    assert len(await _internal_by_number(stack, "INV-7020")) == 1
    assert len(await stack.qbo_invoice_by_number("Q-7020")) == 1
    assert len(await _internal_by_number(stack, "Q-7020")) == 1
    links = await _rows(stack, "SELECT * FROM links WHERE entity_type = 'invoice'")
    assert sorted(link["natural_key"] for link in links) == ["INV-7020", "Q-7020"]
    await assert_ledgers_agree(stack)


async def test_docnumber_lookup_that_errors_never_creates(stack):
    customer = await factories.internal_customer(stack)
    item = await factories.internal_item(stack)
    # An apostrophe and a backslash are escaped, so these look up fine.
    plain = ["O'Brien-7021", "INV\\7021"]
    for number in plain:
        await factories.internal_invoice(
            stack, number=number, customer=customer, item=item
        )
    # QBO's lexer rejects a typographic quote even inside a literal.
    curly = await factories.internal_invoice(
        stack, number="D\u2019Arcy-7021", customer=customer, item=item
    )

    await stack.settle()

    for number in plain:
        assert len(await stack.qbo_invoice_by_number(number)) == 1, number
    events = await _entity_events(stack, "internal", curly["id"])
    # Failed for retry, not taken for "not found, create".
    assert events and all(e["status"] == "failed" for e in events)
    assert "cannot look up" in events[-1]["detail"]
    assert "nothing was created" in events[-1]["detail"]
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs"
            " WHERE status = 'todo' AND scheduled_at > now()"
        )
        assert (await cur.fetchone())["n"] >= 1, "the job waits for its retry"
    # Running it again (a retry) still never creates.
    with pytest.raises(errors.TransientError):
        await engine.sync_entity(
            stack.services,
            connection_id=stack.connection_id,
            side="internal",
            entity_type="invoice",
            entity_id=curly["id"],
        )
    numbers = [i["DocNumber"] for i in await stack.qbo_query("select * from Invoice")]
    assert "D\u2019Arcy-7021" not in numbers
    assert await _link(stack, internal_id=curly["id"]) is None
    await assert_ledgers_agree(stack)


async def test_customer_merged_in_qbo_repoints_the_link(stack):
    customer = await factories.internal_customer(stack, name="Merge Source Ltd")
    invoice = await factories.internal_invoice(
        stack, number="INV-7022", customer=customer
    )
    await stack.settle()
    source_id = (
        await _link(stack, internal_id=customer["id"], entity_type="customer")
    )["qbo_id"]
    qbo_invoice_id = (await stack.qbo_invoice_by_number("INV-7022"))[0]["Id"]
    # A person creates the surviving customer (its webhook is lost, so it is
    # not linked yet) and merges ours into it.
    await _hold(stack, "qbo")
    resp = await stack.qbo.post(
        f"/v3/company/{stack.realm_id}/customer",
        json={"DisplayName": "Merge Target Inc"},
    )
    resp.raise_for_status()
    target_id = resp.json()["Customer"]["Id"]
    await _drop(stack, "qbo")
    resp = await stack.qbo_control.post(
        f"/_sim/realms/{stack.realm_id}/customers/{source_id}/merge",
        json={"into": target_id},
    )
    resp.raise_for_status()

    await _hold(stack, "qbo", hold=False)
    await _release(stack, "qbo")
    await stack.settle()

    link = await _link(stack, internal_id=customer["id"], entity_type="customer")
    assert link["qbo_id"] == target_id
    assert (await _qbo_get(stack, qbo_invoice_id))["CustomerRef"]["value"] == target_id
    internal = await _internal_get(stack, invoice["id"])
    assert internal["customer_id"] == customer["id"]
    renamed = (await stack.internal.get(f"/api/customers/{customer['id']}")).json()
    assert renamed["name"] == "Merge Target Inc"
    names = [
        c["name"]
        for c in (
            await stack.internal.get("/api/customers", params={"limit": 200})
        ).json()["data"]
    ]
    assert names.count("Merge Target Inc") == 1
    await assert_ledgers_agree(stack)


async def test_inactive_customer_reference_is_an_explained_dead_letter(stack):
    customer = await factories.internal_customer(stack, name="Gone Quiet LLC")
    item = await factories.internal_item(stack)
    await stack.settle()
    qbo_customer_id = (
        await _link(stack, internal_id=customer["id"], entity_type="customer")
    )["qbo_id"]
    current = await _qbo_get(stack, qbo_customer_id, entity="customer")
    resp = await stack.qbo.post(
        f"/v3/company/{stack.realm_id}/customer",
        json={
            "Id": qbo_customer_id,
            "SyncToken": current["SyncToken"],
            "sparse": True,
            "Active": False,
        },
    )
    resp.raise_for_status()
    await stack.settle()

    invoice = await factories.internal_invoice(
        stack, number="INV-7023", customer=customer, item=item
    )
    await stack.settle()

    dead = (await _lb_get(stack, "/api/dead-letters")).json()
    (letter,) = [d for d in dead if d["entity_id"] == invoice["id"]]
    assert "inactive" in letter["detail"]
    assert f"QBO customer {qbo_customer_id}" in letter["detail"]
    assert "Make it active again in QBO" in letter["detail"]
    assert await stack.qbo_invoice_by_number("INV-7023") == []


async def test_person_edit_right_after_our_write_is_not_taken_for_an_echo(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7601")
    await _hold(stack, "qbo")

    # Our write lands in QBO; its webhook is held ...
    await factories.internal_patch(stack, invoice["id"], {"memo": "Ours"})
    await stack.settle()
    assert (await _qbo_get(stack, qbo_id))["CustomerMemo"]["value"] == "Ours"
    # ... and a person edits the same invoice in QBO right after it.
    await factories.qbo_sparse_update(stack, qbo_id, {"DueDate": "2027-02-01"})

    await _hold(stack, "qbo", hold=False)
    await _release(stack, "qbo")
    await stack.settle()

    current = await _internal_get(stack, invoice["id"])
    assert current["due_date"] == "2027-02-01", "the person's edit synced"
    assert current["memo"] == "Ours"
    await assert_ledgers_agree(stack)


async def test_invoice_voided_in_qbo_before_it_ever_synced_creates_nothing(stack):
    await _hold(stack, "qbo")
    qbo_invoice = await _qbo_create_invoice(stack, "INV-7701")
    await _qbo_void(stack, qbo_invoice["Id"])
    await _hold(stack, "qbo", hold=False)
    await _release(stack, "qbo")
    await stack.settle()

    assert await _internal_by_number(stack, "INV-7701") == []
    events = await _entity_events(stack, "qbo", qbo_invoice["Id"])
    assert events and {e["status"] for e in events} == {"noop"}
    assert "void before it was ever synced" in events[-1]["detail"]
    assert await _link(stack, qbo_id=qbo_invoice["Id"]) is None


async def test_void_in_qbo_carries_an_edit_made_just_before_it(stack):
    invoice, qbo_id = await _linked_invoice(stack, "INV-7801")
    await _hold(stack, "qbo")
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "Void: duplicate"}}
    )
    await _qbo_void(stack, qbo_id)
    await _hold(stack, "qbo", hold=False)
    await _release(stack, "qbo")
    await stack.settle()

    current = await _internal_get(stack, invoice["id"])
    assert current["status"] == "void"
    assert current["memo"] == "Void: duplicate"
    await assert_ledgers_agree(stack)


async def test_two_invoices_swapping_numbers_keep_syncing(stack):
    a, a_qbo = await _linked_invoice(stack, "SW-A")
    b, b_qbo = await _linked_invoice(stack, "SW-B")

    await factories.internal_patch(stack, a["id"], {"number": "SW-TMP"})
    await factories.internal_patch(stack, b["id"], {"number": "SW-A"})
    await factories.internal_patch(stack, a["id"], {"number": "SW-B"})
    await stack.settle()
    assert (await _qbo_get(stack, a_qbo))["DocNumber"] == "SW-B"
    assert (await _qbo_get(stack, b_qbo))["DocNumber"] == "SW-A"

    # Later edits still cross in both directions.
    await factories.internal_patch(stack, a["id"], {"memo": "after the swap"})
    await factories.qbo_sparse_update(
        stack, b_qbo, {"CustomerMemo": {"value": "qbo after"}}
    )
    await stack.settle()
    assert (await _qbo_get(stack, a_qbo))["CustomerMemo"]["value"] == "after the swap"
    assert (await _internal_get(stack, b["id"]))["memo"] == "qbo after"
    assert (await _link(stack, internal_id=a["id"]))["natural_key"] == "SW-B"
    await assert_ledgers_agree(stack)


async def test_number_of_a_deleted_invoice_can_be_used_again(stack):
    old, old_qbo = await _linked_invoice(stack, "REUSE-1")
    resp = await stack.internal.delete(f"/api/invoices/{old['id']}")
    resp.raise_for_status()
    await stack.settle()

    fresh = await factories.internal_invoice(stack, number="REUSE-1")
    await stack.settle()

    found = await stack.qbo_invoice_by_number("REUSE-1")
    assert len(found) == 1 and found[0]["Id"] != old_qbo
    assert (await _link(stack, internal_id=fresh["id"]))["qbo_id"] == found[0]["Id"]
    await assert_ledgers_agree(stack)


async def _memo_conflict(stack, number):
    invoice, qbo_id = await _linked_invoice(stack, number)
    await factories.internal_patch(stack, invoice["id"], {"memo": "internal says"})
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "qbo says"}}
    )
    await stack.settle()
    link = await _link(stack, internal_id=invoice["id"])
    return invoice, qbo_id, link, await _open_conflict(stack, link["id"])


async def test_conflict_then_internal_delete_resolved_for_the_delete(stack):
    invoice, _qbo_id, link, _ = await _memo_conflict(stack, "CD-1")
    resp = await stack.internal.delete(f"/api/invoices/{invoice['id']}")
    resp.raise_for_status()
    await stack.settle()
    conflict = await _open_conflict(stack, link["id"])
    fields = {f["field"] for f in conflict["fields"]}
    assert "status" in fields

    await actions.resolve_conflict(
        stack.services,
        conflict["id"],
        {field: "internal" for field in fields},
        resolved_by="test",
    )
    await stack.settle()

    assert await stack.qbo_invoice_by_number("CD-1") == [], "QBO follows the delete"
    rows = await _rows(
        stack, "SELECT status FROM conflicts WHERE id = %(c)s", {"c": conflict["id"]}
    )
    assert rows[0]["status"] == "resolved"
    assert (await _link(stack, internal_id=invoice["id"]))["state"] == "deleted"


async def test_new_conflict_after_a_resolution_was_chosen_asks_again(stack):
    invoice, qbo_id, link, conflict = await _memo_conflict(stack, "CD-2")
    await actions.resolve_conflict(
        stack.services, conflict["id"], {"memo": "qbo"}, resolved_by="first"
    )
    # Before the worker applies it, both sides change the due date differently.
    await factories.internal_patch(stack, invoice["id"], {"due_date": "2027-05-01"})
    await factories.qbo_sparse_update(stack, qbo_id, {"DueDate": "2027-06-01"})
    await stack.settle()

    reopened = await _open_conflict(stack, link["id"])
    assert reopened["resolution"] is None
    assert "due_date" in {f["field"] for f in reopened["fields"]}
    assert (await _internal_get(stack, invoice["id"]))["memo"] == "internal says"

    await actions.resolve_conflict(
        stack.services,
        reopened["id"],
        {f["field"]: "qbo" for f in reopened["fields"]},
        resolved_by="second",
    )
    await stack.settle()
    current = await _internal_get(stack, invoice["id"])
    assert (current["memo"], current["due_date"]) == ("qbo says", "2027-06-01")
    await assert_ledgers_agree(stack)


async def test_renumber_to_a_number_qbo_already_uses_is_refused(stack):
    invoice, _qbo_id = await _linked_invoice(stack, "DUPA-1")
    other = await _qbo_create_invoice(stack, "DUPA-2")
    await _qbo_void(stack, other["Id"])
    await stack.settle()

    await factories.internal_patch(stack, invoice["id"], {"number": "DUPA-2"})
    await stack.settle()

    numbers = [i["DocNumber"] for i in await stack.qbo_query("select * from Invoice")]
    assert numbers.count("DUPA-2") == 1, "no second invoice carries DUPA-2"
    events = await _entity_events(stack, "internal", invoice["id"])
    assert "already carries it" in events[-1]["detail"]


async def test_resolution_with_unwritable_typed_lines_is_refused(stack):
    invoice, _qbo_id, _link_row, conflict = await _memo_conflict(stack, "CD-3")
    item = (await _internal_get(stack, invoice["id"]))["lines"][0]["item_id"]

    def typed(item_key, amount):
        line = {
            "item_key": item_key,
            "description": "d",
            "quantity": "1",
            "unit_price": "1",
            "amount": amount,
        }
        return {"memo": "qbo", "lines": {"value": [line]}}

    with pytest.raises(actions.Refused, match="quantity x unit price"):
        await actions.resolve_conflict(
            stack.services, conflict["id"], typed(item, "5"), resolved_by="t"
        )
    with pytest.raises(actions.Refused, match="no linked item"):
        await actions.resolve_conflict(
            stack.services, conflict["id"], typed("itm_nope", "1"), resolved_by="t"
        )
    await actions.resolve_conflict(
        stack.services, conflict["id"], typed(item, "1.00"), resolved_by="t"
    )
    await stack.settle()
    assert (await _internal_get(stack, invoice["id"]))["lines"][0]["amount"] == "1.00"
    await assert_ledgers_agree(stack)


async def test_timed_out_create_then_internal_edit_is_adopted_and_merged(
    impatient_stack,
):
    stack = impatient_stack
    invoice = await _create_that_times_out(stack, "INV-7009T")
    assert await _link(stack, internal_id=invoice["id"]) is None

    # A person edits the invoice before the retry: the QBO copy no longer
    # matches, but it is ours (we sent it), so it is adopted and merged.
    await factories.internal_patch(stack, invoice["id"], {"memo": "edited meanwhile"})
    await stack.retries_due_now()
    await _hold(stack, "qbo", hold=False)
    await _release(stack, "qbo")
    await stack.settle()

    found = await stack.qbo_invoice_by_number("INV-7009T")
    assert len(found) == 1, found
    assert found[0]["CustomerMemo"]["value"] == "edited meanwhile"
    await assert_ledgers_agree(stack)


async def test_number_used_by_another_qbo_invoice_is_never_merged_into_it(stack):
    # Someone's paid QBO invoice carries DR-1; its webhook was lost.
    await _hold(stack, "qbo")
    theirs = await _qbo_create_invoice(stack, "DR-1", memo="Amy's real invoice")
    await stack.qbo_control.post(
        f"/_sim/realms/{stack.realm_id}/payments",
        json={"invoice_id": theirs["Id"], "amount": "1.00"},
    )
    await _drop(stack, "qbo")
    await _hold(stack, "qbo", hold=False)

    ours = await factories.internal_invoice(stack, number="DR-1", memo="other customer")
    await stack.settle()

    assert await _link(stack, internal_id=ours["id"]) is None
    events = await _entity_events(stack, "internal", ours["id"])
    assert events[-1]["status"] in ("dead_letter", "failed")
    assert "another invoice" in events[-1]["detail"]
    after = await _qbo_get(stack, theirs["Id"])
    assert after["CustomerMemo"]["value"] == "Amy's real invoice"
    assert await _rows(stack, "SELECT * FROM conflicts") == []


async def test_lines_cut_below_the_amount_paid_in_qbo_are_refused(stack):
    invoice, qbo_id = await _linked_invoice(stack, "PAY-1", quantity="2")
    await stack.qbo_control.post(
        f"/_sim/realms/{stack.realm_id}/payments",
        json={"invoice_id": qbo_id, "amount": "250.00"},
    )
    await stack.settle()
    line = (await _internal_get(stack, invoice["id"]))["lines"][0]
    cut = {k: line[k] for k in ("item_id", "description", "unit_price")}
    await factories.internal_patch(
        stack, invoice["id"], {"lines": [{**cut, "quantity": "1"}]}
    )
    await stack.settle()

    after = await _qbo_get(stack, qbo_id)
    assert str(after["TotalAmt"]) in ("300.00", "300.0", "300"), after["TotalAmt"]
    events = await _entity_events(stack, "internal", invoice["id"])
    assert "received against it" in events[-1]["detail"]


async def test_a_nul_in_a_qbo_memo_is_refused_before_anything_is_written(stack):
    await _hold(stack, "qbo")
    made = await _qbo_create_invoice(stack, "W-NUL", memo="a\x00b")
    await _hold(stack, "qbo", hold=False)
    await _release(stack, "qbo")
    await stack.settle()

    assert await _internal_by_number(stack, "W-NUL") == []
    events = await _entity_events(stack, "qbo", made["Id"])
    assert events[-1]["status"] == "dead_letter"
    assert "NUL" in events[-1]["detail"]


async def test_rename_onto_a_name_qbo_uses_is_an_explained_dead_letter(stack):
    customer = await factories.internal_customer(stack, name="Harbor Goods")
    await factories.internal_invoice(stack, number="NAME-1", customer=customer)
    await stack.settle()
    current = (await stack.internal.get(f"/api/customers/{customer['id']}")).json()
    # The sample company already has "Amy's Bird Sanctuary"; QBO ignores case.
    resp = await stack.internal.patch(
        f"/api/customers/{customer['id']}",
        json={"name": "amy's bird sanctuary"},
        headers={"If-Match": str(current["version"])},
    )
    resp.raise_for_status()
    await stack.settle()

    events = await _entity_events(stack, "internal", customer["id"], "customer")
    assert "rename one of them, then replay" in events[-1]["detail"]
