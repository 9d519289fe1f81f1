"""Tests that the ownership table classifies every key and drives the mapping."""

from __future__ import annotations

import copy

import pytest
from sync_support import from_qbo, load, qbo_invoice

from ledgerbridge.sync import mapping, model, ownership

Owner = ownership.Owner


@pytest.mark.parametrize("name", ["qbo_invoice.json", "qbo_invoice_voided.json"])
def test_ownership_classifies_every_key_of_a_qbo_invoice(name):
    payload = load(name)["Invoice"]
    assert ownership.unclassified_keys(ownership.QBO_INVOICE, payload) == set()
    for line in payload["Line"]:
        assert line["DetailType"] in ownership.QBO_LINE_DETAIL_TYPES
        assert ownership.unclassified_keys(ownership.QBO_INVOICE_LINE, line) == set()
        detail = line.get("SalesItemLineDetail", {})
        assert (
            ownership.unclassified_keys(ownership.QBO_SALES_ITEM_LINE_DETAIL, detail)
            == set()
        )


def test_ownership_classifies_every_key_of_qbo_customers_items_and_internal():
    cases = [
        (ownership.QBO_CUSTOMER, load("qbo_customer.json")["Customer"]),
        (ownership.QBO_ITEM, load("qbo_item.json")["Item"]),
        (ownership.INTERNAL_INVOICE, load("internal_invoice.json")),
        (ownership.INTERNAL_INVOICE_LINE, load("internal_invoice.json")["lines"][0]),
        (
            ownership.INTERNAL_CUSTOMER,
            {"id": "c", "name": "n", "email": "", "version": 1},
        ),
        (
            ownership.INTERNAL_ITEM,
            {"id": "i", "sku": "s", "name": "n", "unit_price": "1", "version": 1},
        ),
    ]
    for table, payload in cases:
        assert ownership.unclassified_keys(table, payload) == set()


@pytest.mark.parametrize(
    ("tables", "fields"),
    [
        ((ownership.QBO_INVOICE, ownership.INTERNAL_INVOICE), model.INVOICE_FIELDS),
        ((ownership.QBO_CUSTOMER, ownership.INTERNAL_CUSTOMER), model.CUSTOMER_FIELDS),
        ((ownership.QBO_ITEM, ownership.INTERNAL_ITEM), model.ITEM_FIELDS),
    ],
)
def test_ownership_every_canonical_field_has_one_synced_key_per_side(tables, fields):
    for table in tables:
        synced = [
            r.field for r in table.values() if r.owner is Owner.SYNCED and r.field
        ]
        assert sorted(synced) == sorted(fields)


def test_ownership_line_fields_have_one_synced_key_per_side():
    line_fields = ["item_key", "description", "quantity", "unit_price", "amount"]
    qbo = ownership.synced_keys(ownership.QBO_INVOICE_LINE) | ownership.synced_keys(
        ownership.QBO_SALES_ITEM_LINE_DETAIL
    )
    assert sorted(qbo) == sorted(line_fields)
    assert sorted(ownership.synced_keys(ownership.INTERNAL_INVOICE_LINE)) == sorted(
        line_fields
    )


def test_ownership_only_synced_keys_reach_the_canonical_model():
    payload = qbo_invoice()
    # Keep the synced keys, plus the two read to detect a void.
    kept = ownership.keys_owned_by(ownership.QBO_INVOICE, Owner.SYNCED) | {
        "PrivateNote",
        "TotalAmt",
    }
    stripped = {k: v for k, v in copy.deepcopy(payload).items() if k in kept}
    line_keys = ownership.keys_owned_by(ownership.QBO_INVOICE_LINE, Owner.SYNCED)
    detail_keys = ownership.keys_owned_by(
        ownership.QBO_SALES_ITEM_LINE_DETAIL, Owner.SYNCED
    )
    stripped["Line"] = [
        {
            **{k: v for k, v in line.items() if k in line_keys},
            "SalesItemLineDetail": {
                k: v for k, v in line["SalesItemLineDetail"].items() if k in detail_keys
            },
        }
        for line in payload["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]
    assert from_qbo(stripped) == from_qbo(payload)


def test_ownership_qbo_update_writes_only_synced_keys():
    invoice = from_qbo(qbo_invoice())
    changed = model.Invoice(
        doc_number="INV-2",
        customer_key="cus_13",
        currency="EUR",
        issue_date=invoice.issue_date.replace(day=5),
        due_date=None,
        lines=invoice.lines[:1],
        memo="Net 30",
    )
    body = mapping.invoice_to_qbo_update(
        changed,
        invoice,
        qbo_id="239",
        sync_token="3",
        customer_ids={"cus_13": "59"},
        item_ids={"itm_3": "7"},
    )
    written = set(body) - {"Id", "SyncToken", "sparse"}
    synced = ownership.keys_owned_by(ownership.QBO_INVOICE, Owner.SYNCED)
    assert written <= synced
    assert written == synced - {"status"}
