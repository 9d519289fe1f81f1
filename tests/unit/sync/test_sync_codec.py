"""Tests for the canonical JSON codec and Decimal normalisation."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given
from sync_support import SETTINGS, customers, invoices, items

from ledgerbridge.sync import codec, model


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("10", "10"),
        ("10.0", "10"),
        ("10.00", "10"),
        ("1E+2", "100"),
        ("0.500", "0.5"),
        ("-0.00", "0"),
        ("148.88620", "148.8862"),
        ("12345678901234567890123456789.10", "12345678901234567890123456789.1"),
    ],
)
def test_decimal_text_normalises_equal_forms(raw, text):
    assert codec.decimal_text(Decimal(raw)) == text


def test_normalize_decimal_keeps_value_beyond_context_precision():
    wide = Decimal("1234567890123456789012345678901234.500")
    assert codec.normalize_decimal(wide) == wide


@pytest.mark.parametrize("raw", [Decimal("NaN"), Decimal("Infinity")])
def test_normalize_decimal_rejects_non_finite(raw):
    with pytest.raises(ValueError, match="finite"):
        codec.normalize_decimal(raw)


@pytest.mark.parametrize("raw", [1.5, True, None, "ten", "NaN", [1]])
def test_parse_decimal_refuses_floats_and_junk(raw):
    with pytest.raises(ValueError):
        codec.parse_decimal(raw)


def test_parse_decimal_accepts_strings_ints_decimals():
    assert codec.parse_decimal(" 150.00 ") == Decimal("150")
    assert codec.parse_decimal(2) == Decimal(2)
    assert codec.parse_decimal(Decimal("1.5")) == Decimal("1.5")


def test_codec_encodes_invoice_as_plain_json():
    invoice = model.Invoice(
        doc_number="INV-1001",
        customer_key="cus_12",
        currency="USD",
        issue_date=dt.date(2026, 12, 4),
        due_date=None,
        lines=(
            model.Line(
                item_key="itm_3",
                description="Consulting",
                quantity=Decimal("2.0"),
                unit_price=Decimal("150.00"),
                amount=Decimal("300.00"),
            ),
        ),
        memo="",
    )
    data = codec.to_json(invoice)
    assert data == {
        "doc_number": "INV-1001",
        "customer_key": "cus_12",
        "currency": "USD",
        "issue_date": "2026-12-04",
        "due_date": None,
        "lines": [
            {
                "item_key": "itm_3",
                "description": "Consulting",
                "quantity": "2",
                "unit_price": "150",
                "amount": "300",
            }
        ],
        "memo": "",
        "status": "open",
    }
    assert codec.from_json(model.Invoice, json.loads(json.dumps(data))) == invoice


def test_codec_rejects_unexpected_keys():
    data = codec.to_json(model.Customer(name="Amy", email=""))
    with pytest.raises(ValueError, match="expected keys"):
        codec.from_json(model.Customer, {**data, "version": 3})


@SETTINGS
@given(invoices(statuses=tuple(model.Status)))
def test_codec_invoice_round_trip_is_exact(invoice):
    data = json.loads(json.dumps(codec.to_json(invoice)))
    assert codec.from_json(model.Invoice, data) == invoice


@SETTINGS
@given(customers, items)
def test_codec_customer_and_item_round_trip_is_exact(customer, item):
    assert codec.from_json(model.Customer, codec.to_json(customer)) == customer
    assert codec.from_json(model.Item, codec.to_json(item)) == item
