"""Tests for the mapping between internal JSON, QBO JSON and the canonical model."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from sync_support import (
    CUSTOMER_IDS,
    ITEM_IDS,
    SETTINGS,
    as_qbo_response,
    customers,
    from_qbo,
    invoices,
    items,
    load,
    qbo_invoice,
)

from ledgerbridge import errors
from ledgerbridge.sync import mapping, model

EXPECTED = model.Invoice(
    doc_number="INV-1001",
    customer_key="cus_12",
    currency="USD",
    issue_date=dt.date(2026, 12, 4),
    due_date=dt.date(2027, 1, 3),
    lines=(
        model.Line(
            item_key="itm_3",
            description="Consulting, December",
            quantity=Decimal(2),
            unit_price=Decimal(150),
            amount=Decimal("300.00"),
        ),
        model.Line(
            item_key="itm_9",
            description="Bird seed, premium mix",
            quantity=Decimal("12.5"),
            unit_price=Decimal("148.8862"),
            amount=Decimal("1861.08"),
        ),
    ),
    memo="Thank you for your business",
)


def _to_qbo_create(invoice):
    return mapping.invoice_to_qbo_create(
        invoice, customer_ids=CUSTOMER_IDS, item_ids=ITEM_IDS
    )


def _to_qbo_update(invoice, previous):
    return mapping.invoice_to_qbo_update(
        invoice,
        previous,
        qbo_id="239",
        sync_token="3",
        customer_ids=CUSTOMER_IDS,
        item_ids=ITEM_IDS,
    )


# Internal -> canonical ---------------------------------------------------------


def test_invoice_from_internal_reads_the_contract_shape():
    assert mapping.invoice_from_internal(load("internal_invoice.json")) == EXPECTED


def test_invoice_from_internal_computes_a_missing_amount():
    payload = load("internal_invoice.json")
    del payload["lines"][1]["amount"]
    invoice = mapping.invoice_from_internal(payload)
    assert invoice.lines[1].amount == Decimal("1861.08")


def test_invoice_from_internal_refuses_fractional_cents():
    payload = load("internal_invoice.json")
    payload["lines"][0]["amount"] = "300.005"
    with pytest.raises(errors.MappingError, match="cents") as caught:
        mapping.invoice_from_internal(payload)
    assert caught.value.field == "amount"


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("issue_date", "04/12/2026", "issue_date"),
        ("status", "paid", "status"),
        ("customer_id", None, "customer_key"),
        ("lines", "none", "lines"),
    ],
)
def test_invoice_from_internal_names_the_bad_field(key, value, field):
    payload = {**load("internal_invoice.json"), key: value}
    with pytest.raises(errors.MappingError) as caught:
        mapping.invoice_from_internal(payload)
    assert caught.value.field == field


def test_invoice_from_internal_refuses_float_amounts():
    payload = load("internal_invoice.json")
    payload["lines"][0]["unit_price"] = 150.0
    with pytest.raises(errors.MappingError, match=r"float|decimal"):
        mapping.invoice_from_internal(payload)


# QBO -> canonical --------------------------------------------------------------


def test_invoice_from_qbo_reads_the_sample_and_skips_subtotal():
    assert from_qbo(qbo_invoice()) == EXPECTED


def test_invoice_from_qbo_accepts_numbers_as_strings():
    payload = qbo_invoice()
    for line in payload["Line"]:
        line["Amount"] = str(line["Amount"])
        detail = line.get("SalesItemLineDetail", {})
        for key in ("Qty", "UnitPrice"):
            if key in detail:
                detail[key] = str(detail[key])
    payload["TotalAmt"] = "2161.08"
    assert from_qbo(payload) == EXPECTED


def test_invoice_from_qbo_reports_every_missing_reference():
    payload = qbo_invoice()
    payload["CustomerRef"] = {"value": "77"}
    payload["Line"][1]["SalesItemLineDetail"]["ItemRef"] = {"value": "88"}
    with pytest.raises(errors.ReferenceError_) as caught:
        from_qbo(payload)
    assert caught.value.missing_customers == ("77",)
    assert caught.value.missing_items == ("88",)
    assert caught.value.id_side == "qbo"


@pytest.mark.parametrize(
    ("detail_type", "detail"),
    [
        ("DiscountLineDetail", {"PercentBased": True, "DiscountPercent": 10}),
        ("DescriptionOnly", {}),
        ("GroupLineDetail", {}),
    ],
)
def test_invoice_from_qbo_refuses_lines_it_cannot_represent(detail_type, detail):
    payload = qbo_invoice()
    key = "DescriptionLineDetail" if detail_type == "DescriptionOnly" else detail_type
    payload["Line"].insert(
        2, {"DetailType": detail_type, "Amount": Decimal("-30"), key: detail}
    )
    with pytest.raises(errors.MappingError, match=detail_type) as caught:
        from_qbo(payload)
    assert caught.value.field == "lines"


def test_invoice_from_qbo_detects_a_void():
    invoice = from_qbo(load("qbo_invoice_voided.json")["Invoice"])
    assert invoice.status is model.Status.VOID
    assert invoice.lines == ()
    assert invoice.memo == EXPECTED.memo


def test_invoice_from_qbo_void_needs_a_zero_total():
    payload = {**qbo_invoice(), "PrivateNote": "Voided by mistake? check"}
    assert from_qbo(payload).status is model.Status.OPEN


def test_invoice_from_qbo_void_does_not_need_item_links():
    payload = load("qbo_invoice_voided.json")["Invoice"]
    invoice = mapping.invoice_from_qbo(
        payload, customer_keys={"58": "cus_12"}, item_keys={}
    )
    assert invoice.status is model.Status.VOID


def test_invoice_from_qbo_refuses_a_deletion_stub():
    with pytest.raises(errors.MappingError, match="as_deleted"):
        from_qbo({"Id": "239", "status": "Deleted", "domain": "QBO"})


def test_invoice_from_qbo_uses_home_currency_without_currency_ref():
    payload = qbo_invoice()
    del payload["CurrencyRef"]
    invoice = mapping.invoice_from_qbo(
        payload,
        customer_keys={"58": "cus_12"},
        item_keys={"7": "itm_3", "12": "itm_9"},
        home_currency="CAD",
    )
    assert invoice.currency == "CAD"


def test_as_deleted_drops_lines():
    deleted = mapping.as_deleted(EXPECTED)
    assert deleted.status is model.Status.DELETED
    assert deleted.lines == ()


# Canonical -> QBO --------------------------------------------------------------


def test_invoice_to_qbo_create_builds_the_body():
    body = _to_qbo_create(EXPECTED)
    assert body == {
        "DocNumber": "INV-1001",
        "CustomerRef": {"value": "58"},
        "CurrencyRef": {"value": "USD"},
        "TxnDate": "2026-12-04",
        "DueDate": "2027-01-03",
        "CustomerMemo": {"value": "Thank you for your business"},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": Decimal("300.00"),
                "Description": "Consulting, December",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "7"},
                    "Qty": Decimal(2),
                    "UnitPrice": Decimal(150),
                },
            },
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": Decimal("1861.08"),
                "Description": "Bird seed, premium mix",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "12"},
                    "Qty": Decimal("12.5"),
                    "UnitPrice": Decimal("148.8862"),
                },
            },
        ],
    }


def test_invoice_to_qbo_create_leaves_out_empty_optional_fields():
    body = _to_qbo_create(
        dataclasses.replace(EXPECTED, doc_number="", memo="", due_date=None)
    )
    assert {"DocNumber", "CustomerMemo", "DueDate"}.isdisjoint(body)


def test_invoice_to_qbo_create_refuses_an_amount_qbo_would_reject():
    line = dataclasses.replace(EXPECTED.lines[1], amount=Decimal("1861.07"))
    invoice = dataclasses.replace(EXPECTED, lines=(EXPECTED.lines[0], line))
    with pytest.raises(errors.MappingError, match="6070") as caught:
        _to_qbo_create(invoice)
    assert caught.value.field == "lines"


def test_line_amount_rounds_half_up():
    assert mapping.line_amount(Decimal("12.5"), Decimal("148.8862")) == Decimal(
        "1861.08"
    )
    assert mapping.line_amount(Decimal("1"), Decimal("0.005")) == Decimal("0.01")
    assert mapping.line_amount(Decimal("3"), Decimal("0.335")) == Decimal("1.01")


@pytest.mark.parametrize(
    ("change", "field"),
    [({"doc_number": "X" * 22}, "doc_number"), ({"memo": "m" * 1001}, "memo")],
)
def test_invoice_to_qbo_refuses_fields_over_qbo_limits(change, field):
    with pytest.raises(errors.MappingError, match="longer than") as caught:
        _to_qbo_create(dataclasses.replace(EXPECTED, **change))
    assert caught.value.field == field
    with pytest.raises(errors.MappingError, match="longer than"):
        _to_qbo_update(dataclasses.replace(EXPECTED, **change), EXPECTED)


def test_invoice_to_qbo_accepts_fields_at_qbo_limits():
    invoice = dataclasses.replace(EXPECTED, doc_number="X" * 21, memo="m" * 1000)
    assert _to_qbo_create(invoice)["DocNumber"] == "X" * 21


def test_invoice_to_qbo_create_reports_unlinked_internal_ids():
    line = dataclasses.replace(EXPECTED.lines[0], item_key="itm_new")
    invoice = dataclasses.replace(EXPECTED, customer_key="cus_new", lines=(line,))
    with pytest.raises(errors.ReferenceError_) as caught:
        _to_qbo_create(invoice)
    assert caught.value.missing_customers == ("cus_new",)
    assert caught.value.missing_items == ("itm_new",)
    assert caught.value.id_side == "internal"


@pytest.mark.parametrize("status", [model.Status.VOID, model.Status.DELETED])
def test_invoice_to_qbo_create_refuses_a_closed_invoice(status):
    with pytest.raises(errors.MappingError, match="not created"):
        _to_qbo_create(dataclasses.replace(EXPECTED, status=status))


def test_invoice_to_qbo_create_refuses_no_lines():
    with pytest.raises(errors.MappingError, match="at least one line"):
        _to_qbo_create(dataclasses.replace(EXPECTED, lines=()))


def test_invoice_to_qbo_update_sends_only_changed_fields():
    body = _to_qbo_update(dataclasses.replace(EXPECTED, memo="Net 30"), EXPECTED)
    assert body == {
        "Id": "239",
        "SyncToken": "3",
        "sparse": True,
        "CustomerMemo": {"value": "Net 30"},
    }


def test_invoice_to_qbo_update_sends_all_lines_when_one_changes():
    line = dataclasses.replace(EXPECTED.lines[0], description="Consulting, January")
    body = _to_qbo_update(
        dataclasses.replace(EXPECTED, lines=(line, EXPECTED.lines[1])), EXPECTED
    )
    assert set(body) == {"Id", "SyncToken", "sparse", "Line"}
    assert len(body["Line"]) == 2


def test_invoice_to_qbo_update_never_sends_status_or_void_lines():
    body = _to_qbo_update(
        dataclasses.replace(EXPECTED, status=model.Status.VOID, memo="x"), EXPECTED
    )
    assert set(body) == {"Id", "SyncToken", "sparse", "CustomerMemo"}


def test_invoice_to_qbo_update_refuses_to_reopen():
    void = dataclasses.replace(EXPECTED, status=model.Status.VOID)
    with pytest.raises(errors.MappingError, match="reopen"):
        _to_qbo_update(EXPECTED, void)


def test_is_noop_qbo_update():
    assert mapping.is_noop_qbo_update(_to_qbo_update(EXPECTED, EXPECTED))
    assert not mapping.is_noop_qbo_update(
        _to_qbo_update(dataclasses.replace(EXPECTED, memo="x"), EXPECTED)
    )


# Canonical -> internal ---------------------------------------------------------


def test_invoice_to_internal_create_matches_the_contract_shape():
    expected = load("internal_invoice.json")
    for key in ("id", "version", "updated_at"):
        del expected[key]
    expected["lines"][1]["quantity"] = "12.5"  # normalised, same value
    assert mapping.invoice_to_internal_create(EXPECTED) == expected


def test_invoice_to_internal_patch_sends_only_changed_fields():
    new = dataclasses.replace(EXPECTED, due_date=None, memo="Net 30")
    assert mapping.invoice_to_internal_patch(new, EXPECTED) == {
        "due_date": None,
        "memo": "Net 30",
    }
    assert mapping.invoice_to_internal_patch(EXPECTED, EXPECTED) == {}


def test_invoice_to_internal_patch_leaves_status_to_the_void_endpoint():
    void = dataclasses.replace(EXPECTED, status=model.Status.VOID)
    assert mapping.invoice_to_internal_patch(void, EXPECTED) == {}
    with pytest.raises(errors.MappingError, match="reopen"):
        mapping.invoice_to_internal_patch(EXPECTED, void)


# Round trips -------------------------------------------------------------------


@SETTINGS
@given(invoices())
def test_invoice_round_trip_through_qbo_is_identity(invoice):
    response = as_qbo_response(_to_qbo_create(invoice))
    assert from_qbo(response) == invoice


@SETTINGS
@given(invoices(statuses=tuple(model.Status)))
def test_invoice_round_trip_through_internal_body_is_identity(invoice):
    body = mapping.invoice_to_internal_create(invoice)
    assert mapping.invoice_from_internal(body) == invoice


@SETTINGS
@given(invoices())
def test_invoice_internal_to_qbo_to_canonical_is_identity(invoice):
    internal = mapping.invoice_from_internal(
        mapping.invoice_to_internal_create(invoice)
    )
    assert from_qbo(as_qbo_response(_to_qbo_create(internal))) == internal


def _apply_sparse(current, body):
    merged = copy.deepcopy(current)
    merged.update(
        {k: v for k, v in body.items() if k not in {"Id", "SyncToken", "sparse"}}
    )
    return merged


@SETTINGS
@given(invoices(), invoices())
def test_invoice_qbo_sparse_update_reaches_the_new_state(previous, new):
    current = as_qbo_response(_to_qbo_create(previous))
    updated = as_qbo_response(_apply_sparse(current, _to_qbo_update(new, previous)))
    assert from_qbo(updated) == new


@SETTINGS
@given(invoices(), invoices())
def test_invoice_internal_patch_reaches_the_new_state(previous, new):
    current = mapping.invoice_to_internal_create(previous)
    current.update(mapping.invoice_to_internal_patch(new, previous))
    assert mapping.invoice_from_internal(current) == new


# Customers and items -----------------------------------------------------------


def test_customer_from_qbo_and_internal():
    qbo = mapping.customer_from_qbo(load("qbo_customer.json")["Customer"])
    assert qbo == model.Customer(name="Amy's Bird Sanctuary", email="birds@example.com")
    internal = mapping.customer_from_internal(
        {"id": "cus_12", "name": "Amy's Bird Sanctuary", "email": None, "version": 2}
    )
    assert internal.email == ""


def test_customer_to_qbo_bodies():
    customer = model.Customer(name="Amy", email="")
    assert mapping.customer_to_qbo_create(customer) == {
        "Active": True,
        "DisplayName": "Amy",
    }
    moved = dataclasses.replace(customer, email="amy@example.com")
    assert mapping.customer_to_qbo_update(
        moved, customer, qbo_id="58", sync_token="1"
    ) == {
        "Id": "58",
        "SyncToken": "1",
        "sparse": True,
        "PrimaryEmailAddr": {"Address": "amy@example.com"},
    }
    assert mapping.customer_to_internal_patch(moved, customer) == {
        "email": "amy@example.com"
    }


def test_item_from_qbo_and_bodies():
    item = mapping.item_from_qbo(load("qbo_item.json")["Item"])
    assert item == model.Item(
        sku="SVC-CONS", name="Consulting", unit_price=Decimal(150)
    )
    assert mapping.item_to_qbo_create(item, income_account_id="79") == {
        "Type": "Service",
        "IncomeAccountRef": {"value": "79"},
        "Active": True,
        "Sku": "SVC-CONS",
        "Name": "Consulting",
        "UnitPrice": Decimal(150),
    }
    assert mapping.item_to_internal_create(item) == {
        "sku": "SVC-CONS",
        "name": "Consulting",
        "unit_price": "150.00",
    }
    repriced = dataclasses.replace(item, unit_price=Decimal("162.5"))
    assert mapping.item_to_qbo_update(repriced, item, qbo_id="7", sync_token="2") == {
        "Id": "7",
        "SyncToken": "2",
        "sparse": True,
        "UnitPrice": Decimal("162.5"),
    }
    assert mapping.item_to_internal_patch(repriced, item) == {"unit_price": "162.50"}


@SETTINGS
@given(customers, items)
def test_customer_and_item_round_trips_are_identity(customer, item):
    qbo_customer = {
        "Id": "58",
        "SyncToken": "0",
        **mapping.customer_to_qbo_create(customer),
    }
    assert mapping.customer_from_qbo(qbo_customer) == customer
    assert (
        mapping.customer_from_internal(mapping.customer_to_internal_create(customer))
        == customer
    )
    qbo_item = mapping.item_to_qbo_create(item, income_account_id="79")
    assert mapping.item_from_qbo(qbo_item) == item
    assert mapping.item_from_internal(mapping.item_to_internal_create(item)) == item


def test_qbo_line_without_unit_price_implies_it_from_amount_and_quantity():
    from decimal import Decimal as D

    from ledgerbridge import errors as lb_errors
    from ledgerbridge.sync import mapping as m

    def invoice_with(detail, amount):
        return {
            "DocNumber": "Q-1",
            "CustomerRef": {"value": "1"},
            "TxnDate": "2026-12-04",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": amount,
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, **detail},
                }
            ],
            "TotalAmt": amount,
        }

    parsed = m.invoice_from_qbo(
        invoice_with({"Qty": D("4")}, D("10.00")),
        customer_keys={"1": "cus_1"},
        item_keys={"1": "itm_1"},
    )
    assert (parsed.lines[0].quantity, parsed.lines[0].unit_price) == (D("4"), D("2.5"))
    thirds = m.invoice_from_qbo(
        invoice_with({"Qty": D("3")}, D("10.00")),
        customer_keys={"1": "cus_1"},
        item_keys={"1": "itm_1"},
    )
    assert m.line_amount(thirds.lines[0].quantity, thirds.lines[0].unit_price) == D(
        "10.00"
    )
    with pytest.raises(lb_errors.MappingError, match="unit_price"):
        m.invoice_from_qbo(
            invoice_with({"Qty": D("0")}, D("10.00")),
            customer_keys={"1": "cus_1"},
            item_keys={"1": "itm_1"},
        )
