"""The named end-to-end flows of docs/flows.md, against the real servers."""

from __future__ import annotations

import json
from decimal import Decimal

from ledgerbridge.db.queries import QUERIES
from ledgerbridge.reconciler import reconciler
from ledgerbridge.sync import mapping, sides
from support import factories


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
