"""QBO wire JSON: Decimals in, Decimals out, never a float."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ledgerbridge.connectors.qbo import models


def test_loads_parses_fractions_as_decimal_and_keeps_ints():
    body = models.loads(b'{"Amount": 150.0, "Qty": 2, "UnitPrice": 0.1}')
    assert body == {"Amount": Decimal("150.0"), "Qty": 2, "UnitPrice": Decimal("0.1")}
    assert type(body["Qty"]) is int
    assert type(body["Amount"]) is Decimal


def test_dumps_writes_decimal_digits_exactly():
    body = {"Amount": Decimal("300.10"), "Qty": Decimal("0.3333333333"), "n": 2}
    text = models.dumps(body)
    assert text == b'{"Amount":300.10,"Qty":0.3333333333,"n":2}'
    assert models.loads(text) == body


def test_dumps_round_trips_nested_values_and_unicode():
    body = {
        "Line": [{"Description": 'Caf\u00e9 \u2013 "x"', "ok": True, "z": None}],
        "t": (1, Decimal("-1.5")),
    }
    text = models.dumps(body)
    assert json.loads(text, parse_float=Decimal) == {
        "Line": [{"Description": 'Caf\u00e9 \u2013 "x"', "ok": True, "z": None}],
        "t": [1, Decimal("-1.5")],
    }


def test_dumps_refuses_float():
    with pytest.raises(TypeError, match="float"):
        models.dumps({"Amount": 1.5})


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity")])
def test_dumps_refuses_non_finite_decimal(value):
    with pytest.raises(ValueError, match="cannot send"):
        models.dumps({"Amount": value})


def test_dumps_refuses_unknown_types_and_keys():
    with pytest.raises(TypeError):
        models.dumps({"d": dt.date(2026, 1, 1)})
    with pytest.raises(TypeError):
        models.dumps({1: "x"})


def test_parse_qbo_time_reads_offset_and_epoch_millis():
    parsed = models.parse_qbo_time("2015-07-29T09:29:56.229-07:00")
    assert parsed == dt.datetime(2015, 7, 29, 16, 29, 56, 229000, tzinfo=dt.UTC)
    assert models.parse_qbo_time(1730024394085) == dt.datetime(
        2024, 10, 27, 10, 19, 54, 85000, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError, match="offset"):
        models.parse_qbo_time("2015-07-29T09:29:56")


def test_token_set_repr_hides_tokens():
    tokens = models.TokenSet(
        access_token="secret-access",
        refresh_token="secret-refresh",
        access_expires_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        refresh_expires_at=None,
    )
    assert "secret" not in repr(tokens)
