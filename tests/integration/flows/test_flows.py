"""The named end-to-end flows of docs/flows.md, against the real servers."""

from __future__ import annotations

from decimal import Decimal

from support import factories


def _writes(requests, *, exclude_reads=True):
    reads = {"read", "query", "cdc", "list"}
    return [r for r in requests if r.get("operation") not in reads and r["method"] != "GET"]


async def test_flow_01_internal_create_reaches_qbo(stack):
    invoice = await factories.internal_invoice(stack, number="INV-7001", quantity="3")

    await stack.settle()

    found = await stack.qbo_invoice_by_number("INV-7001")
    assert len(found) == 1
    qbo_invoice = found[0]
    assert qbo_invoice["CustomerMemo"]["value"] == invoice["memo"]
    sales = [line for line in qbo_invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
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

    await factories.qbo_sparse_update(stack, qbo_id, {"CustomerMemo": {"value": "Net 15"}})
    await stack.settle()

    current = (await stack.internal.get(f"/api/invoices/{invoice['id']}")).json()
    assert current["memo"] == "Net 15"
    internal_writes = _writes(await stack.internal_requests(internal_seq))
    assert len(internal_writes) == 1, internal_writes
    # The person's own sparse update is the only write QBO saw.
    assert len(_writes(await stack.qbo_requests(qbo_seq))) == 1
