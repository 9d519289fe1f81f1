"""Fixtures, reference maps and hypothesis strategies shared by the sync unit tests."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ledgerbridge.sync import mapping, model

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sync"

# Deterministic and quick: the same examples on every run, no example database.
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)

# QBO id -> internal id, and back.
CUSTOMER_KEYS = {"58": "cus_12", "59": "cus_13", "60": "cus_14"}
ITEM_KEYS = {"7": "itm_3", "12": "itm_9", "13": "itm_10"}
CUSTOMER_IDS = {v: k for k, v in CUSTOMER_KEYS.items()}
ITEM_IDS = {v: k for k, v in ITEM_KEYS.items()}


def load(name: str) -> Any:
    """Load a fixture the way the connectors parse JSON: numbers as Decimal."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def qbo_invoice() -> dict[str, Any]:
    return load("qbo_invoice.json")["Invoice"]


def from_qbo(payload: dict[str, Any]) -> model.Invoice:
    return mapping.invoice_from_qbo(
        payload, customer_keys=CUSTOMER_KEYS, item_keys=ITEM_KEYS
    )


# Strategies --------------------------------------------------------------------

text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    max_size=40,
)


def decimals(places: int, max_value: int) -> st.SearchStrategy[Decimal]:
    return st.integers(min_value=0, max_value=places).flatmap(
        lambda p: st.decimals(
            min_value=0, max_value=max_value, places=p, allow_nan=False
        )
    )


@st.composite
def lines(draw: st.DrawFn) -> model.Line:
    quantity = draw(decimals(3, 10_000))
    unit_price = draw(decimals(4, 100_000))
    return model.Line(
        item_key=draw(st.sampled_from(sorted(ITEM_IDS))),
        description=draw(text),
        quantity=quantity,
        unit_price=unit_price,
        amount=mapping.line_amount(quantity, unit_price),
    )


dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))


@st.composite
def invoices(
    draw: st.DrawFn, statuses: tuple[model.Status, ...] = (model.Status.OPEN,)
) -> model.Invoice:
    return model.Invoice(
        doc_number=draw(text.filter(lambda s: len(s) <= 21)),
        customer_key=draw(st.sampled_from(sorted(CUSTOMER_IDS))),
        currency=draw(st.sampled_from(["USD", "EUR", "CAD"])),
        issue_date=draw(dates),
        due_date=draw(st.none() | dates),
        lines=tuple(draw(st.lists(lines(), min_size=1, max_size=4))),
        memo=draw(text),
        status=draw(st.sampled_from(statuses)),
    )


customers = st.builds(model.Customer, name=text.filter(bool), email=text)
items = st.builds(
    model.Item, sku=text, name=text.filter(bool), unit_price=decimals(4, 100_000)
)


def as_qbo_response(body: dict[str, Any], *, qbo_id: str = "901") -> dict[str, Any]:
    """Dress a create body the way QBO answers: ids, SubTotal line, totals, floats-as-Decimal."""
    response = json.loads(json.dumps(body, default=str), parse_float=Decimal)
    sales = response.get("Line", [])
    total = sum((Decimal(str(line["Amount"])) for line in sales), Decimal(0))
    for number, line in enumerate(sales, start=1):
        line["Id"], line["LineNum"] = str(number), number
    sales.append(
        {"DetailType": "SubTotalLineDetail", "Amount": total, "SubTotalLineDetail": {}}
    )
    response.update(
        Id=qbo_id,
        SyncToken="0",
        domain="QBO",
        sparse=False,
        TotalAmt=total,
        Balance=total,
        EmailStatus="NotSet",
        PrintStatus="NeedToPrint",
        LinkedTxn=[],
        TxnTaxDetail={"TotalTax": Decimal(0)},
        MetaData={"CreateTime": "2026-12-04T07:35:08-08:00"},
    )
    return response
