"""The QBO simulator over real HTTP: shapes, faults, query, OAuth, webhooks, persistence."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response

from ledgerbridge.simulators.qbo.app import SimConfig, create_app
from support.servers import serve_in_thread

FIXTURES = Path(__file__).parents[2] / "fixtures" / "qbo"
REALM = "9341453050121670"
START = dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC)
VERIFIER = "test-verifier"
BASIC = base64.b64encode(b"demo-client-id:demo-client-secret").decode()


def make_config(**overrides: Any) -> SimConfig:
    """Fast, deterministic defaults: no rate limits, short windows, frozen clock."""
    values: dict[str, Any] = {
        "verifier_token": VERIFIER,
        "rate_per_second": 0,
        "rate_per_minute": 0,
        "batch_per_minute": 0,
        "max_concurrency": 0,
        "webhook_batch_window_seconds": 0.05,
        "webhook_retry_schedule_seconds": (0.05, 0.05),
        "webhook_timeout_seconds": 1,
        "seed": 7,
        "clock_start": START,
    }
    values.update(overrides)
    return SimConfig(**values)


class Qbo:
    """A bare QBO client for the tests: bearer token, JSON in and out."""

    def __init__(self, http: httpx.Client, realm_id: str = REALM) -> None:
        self.http = http
        self.realm_id = realm_id
        tokens = http.post("/_sim/tokens", json={"realm_id": realm_id}).json()
        self.tokens = tokens
        self.headers = {
            "Authorization": f"Bearer {tokens['access_token']}",
            "Accept": "application/json",
        }

    def url(self, path: str) -> str:
        return f"/v3/company/{self.realm_id}/{path}"

    def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        return self.http.post(
            self.url(path),
            content=json.dumps(body, default=str),  # Decimals as strings
            params={"minorversion": "75", **params},
            headers={**self.headers, "Content-Type": "application/json"},
        )

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(self.url(path), params=params, headers=self.headers)

    def query(self, statement: str) -> httpx.Response:
        return self.get("query", query=statement)

    def invoice(self, **fields: Any) -> dict[str, Any]:
        response = self.post("invoice", invoice_body(**fields))
        assert response.status_code == 200, response.text
        return loads(response)["Invoice"]


def loads(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


def invoice_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CustomerRef": {"value": "1"},
        "Line": [sales_line("300.00", qty=2, price="150.00")],
    }
    body.update(fields)
    return body


def sales_line(
    amount: Any, *, item: str = "1", qty: Any = None, price: Any = None
) -> dict:
    detail: dict[str, Any] = {"ItemRef": {"value": item}}
    if qty is not None:
        detail["Qty"] = qty
    if price is not None:
        detail["UnitPrice"] = price
    return {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "SalesItemLineDetail": detail,
    }


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["Fault"]["Error"][0]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_in_thread(create_app(make_config())) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        assert client.post("/_sim/reset").status_code == 200
        yield client


@pytest.fixture
def qbo(http: httpx.Client) -> Qbo:
    return Qbo(http)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]], list[int]]]:
    """A webhook endpoint answering with scripted statuses (then 200)."""
    received: list[tuple[dict[str, str], bytes]] = []
    statuses: list[int] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=statuses.pop(0) if statuses else 200)

    with serve_in_thread(app) as url:
        yield url + "/hook", received, statuses


# -- shapes -------------------------------------------------------------------


def test_invoice_create_returns_qbo_shape(qbo: Qbo) -> None:
    response = qbo.post("invoice", invoice_body(DocNumber="A-1"))

    assert response.status_code == 200
    assert response.headers["intuit_tid"]
    body = loads(response)
    invoice = body["Invoice"]
    assert body["time"].startswith("2026-12-04T08:00:00.000-08:00")
    assert invoice["Id"].isdigit() and invoice["SyncToken"] == "0"
    assert invoice["domain"] == "QBO" and invoice["sparse"] is False
    assert invoice["CustomerRef"] == {"value": "1", "name": "Amy's Bird Sanctuary"}
    assert invoice["TotalAmt"] == Decimal("300.00") == invoice["Balance"]
    assert invoice["Line"][-1] == {
        "Amount": Decimal("300.00"),
        "DetailType": "SubTotalLineDetail",
        "SubTotalLineDetail": {},
    }
    assert invoice["Line"][0]["Id"] == "1" and invoice["Line"][0]["LineNum"] == 1
    assert invoice["MetaData"]["CreateTime"] == "2026-12-04T08:00:00-08:00"
    assert invoice["TxnDate"] == "2026-12-04"
    # Money is written as exact number text, never via float.
    assert '"TotalAmt":300.00' in response.text


def test_amount_strings_and_integer_synctoken_are_accepted(qbo: Qbo) -> None:
    created = qbo.invoice(Line=[sales_line("20.10", qty="3", price="6.70")])
    update = {"Id": created["Id"], "SyncToken": 0, "sparse": True, "PrivateNote": "n"}

    response = qbo.post("invoice", update)

    assert response.status_code == 200, response.text
    assert loads(response)["Invoice"]["SyncToken"] == "1"
    assert loads(response)["Invoice"]["TotalAmt"] == Decimal("20.10")


def test_python_quickbooks_payload_with_empty_strings_is_accepted(qbo: Qbo) -> None:
    # python-quickbooks sends "" for every unset field and 0 for SyncToken.
    body = json.loads((FIXTURES / "python_quickbooks_invoice_create.json").read_text())

    response = qbo.post("invoice", body)

    assert response.status_code == 200, response.text
    invoice = loads(response)["Invoice"]
    assert invoice["TxnDate"] == "2026-12-04" and "PrivateNote" not in invoice
    assert invoice["TotalAmt"] == Decimal("300.00")


def test_xml_is_the_default_without_json_accept(qbo: Qbo) -> None:
    headers = {"Authorization": qbo.headers["Authorization"]}

    response = qbo.http.get(qbo.url("customer/1"), headers=headers)
    fault = qbo.http.get(qbo.url("invoice/999"), headers=headers)

    assert response.headers["content-type"].startswith("application/xml")
    assert '<Customer domain="QBO" sparse="false"><Id>1</Id>' in response.text
    assert '<Error code="610" element="">' in fault.text


def test_every_response_has_intuit_tid(http: httpx.Client) -> None:
    assert http.get("/nowhere").headers["intuit_tid"]
    assert http.get("/_sim/realms").headers["intuit_tid"]


def test_discount_and_totals_are_recomputed_server_side(qbo: Qbo) -> None:
    lines = [
        sales_line("100.00", qty=1, price=100),
        {
            "DetailType": "DiscountLineDetail",
            "Amount": 999,
            "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
        },
    ]
    invoice = qbo.invoice(Line=lines, TotalAmt=1, Balance=1)

    assert invoice["TotalAmt"] == Decimal("90.00")
    assert invoice["Balance"] == Decimal("90.00")


# -- fault codes --------------------------------------------------------------


def test_read_unknown_invoice_is_400_with_610(qbo: Qbo) -> None:
    response = qbo.get("invoice/999")

    assert response.status_code == 400
    assert error_of(response)["code"] == "610"
    assert response.json()["Fault"]["type"] == "ValidationFault"


@pytest.mark.parametrize(
    ("body", "element"),
    [
        ({"CustomerRef": {"value": "1"}}, "Line"),
        ({"CustomerRef": {"value": "1"}, "Line": []}, "Line"),
        ({"Line": [sales_line("1.00")]}, "CustomerRef"),
    ],
)
def test_missing_required_field_is_2020(qbo: Qbo, body: dict, element: str) -> None:
    response = qbo.post("invoice", body)

    assert response.status_code == 400
    assert error_of(response)["code"] == "2020"
    assert error_of(response)["element"] == element


@pytest.mark.parametrize(
    ("body", "element"),
    [
        (invoice_body(CustomerRef={"value": "404"}), "CustomerRef"),
        (
            invoice_body(Line=[sales_line("1.00", item="404")]),
            "Line.SalesItemLineDetail.ItemRef",
        ),
        (
            invoice_body(Line=[sales_line("1.00", item="6")]),
            "Line.SalesItemLineDetail.ItemRef",
        ),
    ],
)
def test_invalid_reference_is_2500_with_element(
    qbo: Qbo, body: dict, element: str
) -> None:
    response = qbo.post("invoice", body)

    assert response.status_code == 400
    assert error_of(response)["code"] == "2500"
    assert error_of(response)["element"] == element


def test_line_amount_must_equal_qty_times_price_rounded_half_up(qbo: Qbo) -> None:
    wrong = qbo.post(
        "invoice",
        invoice_body(Line=[sales_line("1861.07", qty="0.5", price="3722.15")]),
    )
    right = qbo.post(
        "invoice",
        invoice_body(Line=[sales_line("1861.08", qty="0.5", price="3722.15")]),
    )

    assert wrong.status_code == 400
    assert error_of(wrong)["code"] == "6070"
    assert error_of(wrong)["Detail"].endswith("Supplied value:1861.07")
    assert right.status_code == 200


def test_duplicate_docnumber_depends_on_realm_setting(
    qbo: Qbo, http: httpx.Client
) -> None:
    qbo.invoice(DocNumber="D-1")
    assert qbo.post("invoice", invoice_body(DocNumber="D-1")).status_code == 200

    http.post(f"/_sim/realms/{REALM}/settings", json={"duplicate_docnum_check": True})
    refused = qbo.post("invoice", invoice_body(DocNumber="D-1"))
    bypassed = qbo.post(
        "invoice", invoice_body(DocNumber="D-1"), include="allowduplicatedocnum"
    )

    assert refused.status_code == 400
    assert error_of(refused)["code"] == "6140"
    assert bypassed.status_code == 200


def test_docnumber_assigned_when_custom_numbers_are_off(
    qbo: Qbo, http: httpx.Client
) -> None:
    kept = qbo.invoice()
    http.post(f"/_sim/realms/{REALM}/settings", json={"custom_txn_numbers": False})

    first = qbo.invoice()
    second = qbo.invoice()

    assert "DocNumber" not in kept
    assert (first["DocNumber"], second["DocNumber"]) == ("1001", "1002")
    prefs = loads(qbo.get("preferences"))["Preferences"]
    assert prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is False


def test_docnumber_longer_than_21_is_2050(qbo: Qbo) -> None:
    response = qbo.post("invoice", invoice_body(DocNumber="X" * 22))

    assert response.status_code == 400
    assert error_of(response)["code"] == "2050"
    assert error_of(response)["element"] == "DocNumber"
    assert qbo.post("invoice", invoice_body(DocNumber="X" * 21)).status_code == 200


def test_duplicate_names_are_6240(qbo: Qbo) -> None:
    customer = qbo.post("customer", {"DisplayName": "amy's bird sanctuary"})
    item = qbo.post("item", {"Name": "Services", "IncomeAccountRef": {"value": "1"}})

    assert customer.status_code == 400 and error_of(customer)["code"] == "6240"
    assert item.status_code == 400 and error_of(item)["code"] == "6240"


def test_item_needs_income_account(qbo: Qbo) -> None:
    missing = qbo.post("item", {"Name": "Consulting", "Type": "Service"})
    created = qbo.post(
        "item",
        {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "79"}},
    )

    assert error_of(missing)["code"] == "2020"
    assert (
        loads(created)["Item"]["IncomeAccountRef"]["name"] == "Sales of Product Income"
    )


def test_stale_synctoken_is_5010(qbo: Qbo) -> None:
    invoice = qbo.invoice()
    first = {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "a"}
    assert qbo.post("invoice", first).status_code == 200

    response = qbo.post("invoice", {**first, "PrivateNote": "b"})

    assert response.status_code == 400
    assert error_of(response)["code"] == "5010"
    assert error_of(response)["Message"] == "Stale Object Error"


def test_inactive_customer_cannot_be_invoiced(qbo: Qbo) -> None:
    customer = loads(qbo.get("customer/2"))["Customer"]
    deactivate = {
        "Id": "2",
        "SyncToken": customer["SyncToken"],
        "sparse": True,
        "Active": False,
    }
    assert qbo.post("customer", deactivate).status_code == 200

    response = qbo.post("invoice", invoice_body(CustomerRef={"value": "2"}))

    assert response.status_code == 400
    assert error_of(response)["code"] == "610"
    assert error_of(response)["element"] == "CustomerRef"
    # Name lists answer with active objects unless Active is asked for.
    plain = loads(qbo.query("select * from Customer where Id = '2'"))["QueryResponse"]
    both = qbo.query(
        "select * from Customer where Id = '2' and Active in (true, false)"
    )
    assert plain == {}
    assert loads(both)["QueryResponse"]["Customer"][0]["Active"] is False


# -- updates, void, delete ----------------------------------------------------


def test_full_update_nulls_omitted_fields_sparse_keeps_them(qbo: Qbo) -> None:
    invoice = qbo.invoice(PrivateNote="keep me", CustomerMemo={"value": "Thanks"})
    sparse = {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "DocNumber": "S-1"}
    after_sparse = loads(qbo.post("invoice", sparse))["Invoice"]
    full = {
        "Id": invoice["Id"],
        "SyncToken": after_sparse["SyncToken"],
        "CustomerRef": {"value": "1"},
        "Line": after_sparse["Line"],  # read-back lines incl. SubTotal are fine
    }
    after_full = loads(qbo.post("invoice", full))["Invoice"]

    assert (
        after_sparse["PrivateNote"] == "keep me" and after_sparse["DocNumber"] == "S-1"
    )
    assert "PrivateNote" not in after_full and "CustomerMemo" not in after_full
    assert "DocNumber" not in after_full
    assert after_full["SyncToken"] == "2"
    assert [line["DetailType"] for line in after_full["Line"]].count(
        "SubTotalLineDetail"
    ) == 1


def test_sparse_update_with_line_replaces_all_lines(qbo: Qbo) -> None:
    invoice = qbo.invoice(
        Line=[
            sales_line("150.00", qty=1, price=150),
            sales_line("50.00", item="2", qty=1, price=50),
        ]
    )
    update = {
        "Id": invoice["Id"],
        "SyncToken": "0",
        "sparse": True,
        "Line": [sales_line("75.00", item="3", qty=1, price=75)],
    }

    updated = loads(qbo.post("invoice", update))["Invoice"]

    assert len(updated["Line"]) == 2  # one sales line plus the SubTotal line
    assert updated["TotalAmt"] == Decimal("75.00")


def test_void_zeroes_amounts_and_keeps_the_invoice(qbo: Qbo) -> None:
    invoice = qbo.invoice(PrivateNote="memo")

    response = qbo.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void"
    )

    voided = loads(response)["Invoice"]
    assert response.status_code == 200
    assert voided["TotalAmt"] == 0 and voided["Balance"] == 0
    assert all(line["Amount"] == 0 for line in voided["Line"])
    assert "Voided" in voided["PrivateNote"]
    assert voided["SyncToken"] == "1"
    assert loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]["TotalAmt"] == 0


def test_delete_is_permanent(qbo: Qbo) -> None:
    invoice = qbo.invoice()

    stale = qbo.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": "5"}, operation="delete"
    )
    response = qbo.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="delete"
    )

    assert error_of(stale)["code"] == "5010"
    assert response.json()["Invoice"] == {
        "status": "Deleted",
        "domain": "QBO",
        "Id": invoice["Id"],
    }
    assert error_of(qbo.get(f"invoice/{invoice['Id']}"))["code"] == "610"
    again = qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True})
    assert error_of(again)["code"] == "610"


def test_requestid_replays_first_answer_without_writing(
    qbo: Qbo, http: httpx.Client
) -> None:
    first = qbo.post("invoice", invoice_body(DocNumber="R-1"), requestid="req-1")
    second = qbo.post("invoice", invoice_body(DocNumber="R-1"), requestid="req-1")

    assert first.status_code == second.status_code == 200
    assert first.text == second.text
    count = loads(qbo.query("select count(*) from Invoice where DocNumber = 'R-1'"))
    assert count["QueryResponse"] == {"totalCount": 1}
    log = http.get("/_sim/requests").json()
    writes = [entry for entry in log if entry["requestid"] == "req-1"]
    assert [entry["operation"] for entry in writes] == ["create", "create"]
    assert set(writes[0]) == {
        "seq",
        "method",
        "path",
        "query",
        "status",
        "requestid",
        "realm_id",
        "operation",
    }


# -- query --------------------------------------------------------------------


def test_query_escaped_apostrophe_get_and_post(qbo: Qbo) -> None:
    statement = r"select * from Customer where DisplayName = 'Amy\'s Bird Sanctuary'"
    via_get = loads(qbo.query(statement))
    via_post = qbo.http.post(
        qbo.url("query"),
        content=statement,
        headers={**qbo.headers, "Content-Type": "application/text"},
    )

    assert via_get["QueryResponse"]["Customer"][0]["Id"] == "1"
    assert via_get["QueryResponse"]["startPosition"] == 1
    assert loads(via_post)["QueryResponse"]["maxResults"] == 1


@pytest.mark.parametrize(
    "statement",
    [
        "select * from Customer where DisplayName = 'Amy's Bird Sanctuary'",
        "select * from Customer where DisplayName = \u2018Cool Cars\u2019",
        "select * from Customer where DisplayName = 'Amy\u2019s Bird Sanctuary'",
        "select * from Customer where DisplayName = 'Cool Cars\\'",
        "select * from Customer where DisplayName = 'x' \\",
        "select * form Customer",
        "select * from Customer where",
    ],
)
def test_query_parse_errors_are_4000(qbo: Qbo, statement: str) -> None:
    response = qbo.query(statement)

    assert response.status_code == 400
    assert error_of(response)["code"] == "4000"
    assert error_of(response)["Message"] == "Error parsing query"
    assert error_of(response)["Detail"].startswith("QueryParserError:")


def test_query_operators_paging_and_ordering(qbo: Qbo) -> None:
    for number, amount in enumerate(["100.00", "200.00", "300.00", "400.00"], start=1):
        qbo.invoice(DocNumber=f"Q-{number}", Line=[sales_line(amount)])

    def ids(statement: str) -> list[str]:
        answer = loads(qbo.query(statement))["QueryResponse"]
        return [row["DocNumber"] for row in answer.get("Invoice", [])]

    assert ids(
        "SELECT * FROM invoice WHERE TotalAmt > '150' ORDERBY TotalAmt DESC"
    ) == ["Q-4", "Q-3", "Q-2"]
    assert ids("select * from Invoice where TotalAmt <= 200") == ["Q-1", "Q-2"]
    assert ids("select * from Invoice where DocNumber in ('Q-1', 'Q-3')") == [
        "Q-1",
        "Q-3",
    ]
    assert ids(
        "select * from Invoice where DocNumber like 'q-%' and TotalAmt >= 300"
    ) == ["Q-3", "Q-4"]
    assert ids(
        "select * from Invoice orderby DocNumber startposition 2 maxresults 2"
    ) == ["Q-2", "Q-3"]
    assert ids(
        "select * from Invoice where MetaData.LastUpdatedTime >= '2026-12-04'"
    ) == ["Q-1", "Q-2", "Q-3", "Q-4"]
    assert ids("select * from Invoice maxresults 5000") == ["Q-1", "Q-2", "Q-3", "Q-4"]
    assert loads(qbo.query("select * from Invoice where DocNumber = 'none'")) == {
        "QueryResponse": {},
        "time": "2026-12-04T08:00:00.000-08:00",
    }
    with_sku = loads(qbo.query("select *, Sku from Item where Sku = 'RF-1'"))
    assert with_sku["QueryResponse"]["Item"][0]["Name"] == "Rock Fountain"


def test_index_lag_hides_fresh_writes_from_query_and_cdc(
    qbo: Qbo, http: httpx.Client
) -> None:
    before = qbo.invoice(DocNumber="L-0", PrivateNote="v1")
    http.post(f"/_sim/realms/{REALM}/settings", json={"index_lag_seconds": 5})
    qbo.post(
        "invoice",
        {"Id": before["Id"], "SyncToken": "0", "sparse": True, "DocNumber": "L-0b"},
    )
    fresh = qbo.invoice(DocNumber="L-1")

    def numbers() -> list[str]:
        answer = loads(qbo.query("select * from Invoice"))["QueryResponse"]
        return [row["DocNumber"] for row in answer.get("Invoice", [])]

    lagging = numbers()
    cdc = loads(qbo.get("cdc", entities="Invoice", changedSince="2026-12-04"))
    by_id = loads(qbo.get(f"invoice/{fresh['Id']}"))["Invoice"]
    http.post("/_sim/clock/advance", json={"seconds": 5})

    assert lagging == ["L-0"]  # the old version, and no sign of L-1
    assert [
        row["DocNumber"] for row in cdc["CDCResponse"][0]["QueryResponse"][0]["Invoice"]
    ] == ["L-0"]
    assert by_id["DocNumber"] == "L-1"  # a read by Id is always current
    assert numbers() == ["L-0b", "L-1"]


def test_query_on_unqueryable_property_is_rejected(qbo: Qbo) -> None:
    response = qbo.query("select * from Invoice where PrivateNote = 'x'")

    assert response.status_code == 400
    assert error_of(response)["code"] == "4001"


# -- payments and merges ------------------------------------------------------


def test_payment_control_api_applies_to_invoice(qbo: Qbo, http: httpx.Client) -> None:
    invoice = qbo.invoice()

    response = http.post(
        f"/_sim/realms/{REALM}/payments",
        json={"invoice_id": invoice["Id"], "amount": "120.50"},
    )

    assert response.status_code == 200, response.text
    after = loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]
    payment_id = loads(response)["Payment"]["Id"]
    assert after["Balance"] == Decimal("179.50") and after["TotalAmt"] == Decimal(
        "300.00"
    )
    assert after["LinkedTxn"] == [{"TxnId": payment_id, "TxnType": "Payment"}]
    assert after["SyncToken"] == "1"
    customer = loads(qbo.get("customer/1"))["Customer"]
    assert customer["Balance"] == Decimal("179.50")


def test_payment_through_api_cannot_exceed_balance(qbo: Qbo) -> None:
    invoice = qbo.invoice()
    payment = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": "400.00",
        "Line": [
            {
                "Amount": "400.00",
                "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
            }
        ],
    }

    refused = qbo.post("payment", payment)
    payment["Line"][0]["Amount"] = "300.00"
    accepted = qbo.post("payment", payment)

    assert error_of(refused)["code"] == "6000"
    assert loads(accepted)["Payment"]["UnappliedAmt"] == Decimal("100.00")
    assert loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]["Balance"] == 0


def test_voiding_or_deleting_a_payment_reopens_the_invoice(
    qbo: Qbo, http: httpx.Client
) -> None:
    invoice = qbo.invoice()
    paid = http.post(
        f"/_sim/realms/{REALM}/payments",
        json={"invoice_id": invoice["Id"], "amount": "100.00"},
    )
    payment = loads(paid)["Payment"]
    second = http.post(
        f"/_sim/realms/{REALM}/payments",
        json={"invoice_id": invoice["Id"], "amount": "50.00"},
    )

    voided = qbo.post(
        "payment",
        {"Id": payment["Id"], "SyncToken": "0", "sparse": True},
        operation="update",
        include="void",
    )
    after_void = loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]
    deleted = qbo.post(
        "payment",
        {"Id": loads(second)["Payment"]["Id"], "SyncToken": "0"},
        operation="delete",
    )
    after_delete = loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]

    assert loads(voided)["Payment"]["TotalAmt"] == 0
    assert after_void["Balance"] == Decimal("250.00")
    assert deleted.json()["Payment"]["status"] == "Deleted"
    assert after_delete["Balance"] == Decimal("300.00")
    assert after_delete["SyncToken"] == "4"
    operations = [e["operation"] for e in http.get("/_sim/requests").json()]
    assert operations[-4:] == ["void", "read", "delete", "read"]


def test_merge_moves_invoices_and_deactivates_source(
    qbo: Qbo, http: httpx.Client
) -> None:
    invoice = qbo.invoice(CustomerRef={"value": "3"})

    response = http.post(f"/_sim/realms/{REALM}/customers/3/merge", json={"into": "4"})

    assert response.status_code == 200
    moved = loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]
    assert moved["CustomerRef"]["value"] == "4"
    assert loads(qbo.get("customer/3"))["Customer"]["Active"] is False


# -- CDC, batch, preferences --------------------------------------------------


def test_cdc_returns_changes_and_deletions_since(qbo: Qbo, http: httpx.Client) -> None:
    old = qbo.invoice(DocNumber="C-old")
    http.post("/_sim/clock/advance", json={"seconds": 1800})
    fresh = qbo.invoice(DocNumber="C-new")
    gone = qbo.invoice(DocNumber="C-gone")
    qbo.post("invoice", {"Id": gone["Id"], "SyncToken": "0"}, operation="delete")

    response = qbo.get(
        "cdc", entities="Invoice,customer", changedSince="2026-12-04T08:15:00-08:00"
    )

    answer = loads(response)["CDCResponse"][0]["QueryResponse"]
    invoices = answer[0]["Invoice"]
    assert [row["Id"] for row in invoices if "status" not in row] == [fresh["Id"]]
    assert {"Id": gone["Id"], "status": "Deleted", "domain": "QBO"}.items() <= next(
        row for row in invoices if row.get("status") == "Deleted"
    ).items()
    assert old["Id"] not in [row["Id"] for row in invoices]
    assert answer[1] == {}


def test_cdc_answers_at_most_1000_objects(qbo: Qbo) -> None:
    for batch_number in range(34):
        items = [
            {"bId": str(n), "operation": "create", "Invoice": invoice_body()}
            for n in range(30)
        ]
        response = qbo.post("batch", {"BatchItemRequest": items})
        assert "Fault" not in response.text, batch_number

    answer = loads(qbo.get("cdc", entities="Invoice", changedSince="2026-12-04"))

    invoices = answer["CDCResponse"][0]["QueryResponse"][0]["Invoice"]
    assert len(invoices) == 1000
    count = loads(qbo.query("select count(*) from Invoice"))["QueryResponse"]
    assert count["totalCount"] == 1020


def test_cdc_rejects_changed_since_older_than_30_days(qbo: Qbo) -> None:
    response = qbo.get("cdc", entities="Invoice", changedSince="2026-10-01")

    assert response.status_code == 400
    assert error_of(response)["element"] == "changedSince"


def test_batch_runs_items_in_order_with_faults_inside_200(qbo: Qbo) -> None:
    existing = qbo.invoice(DocNumber="B-0")
    request = {
        "BatchItemRequest": [
            {
                "bId": "b1",
                "operation": "create",
                "Invoice": invoice_body(DocNumber="B-1"),
            },
            {
                "bId": "b2",
                "operation": "update",
                "Invoice": {"Id": existing["Id"], "SyncToken": "9", "sparse": True},
            },
            {"bId": "b3", "Query": "select * from Invoice where DocNumber = 'B-1'"},
            {
                "bId": "b4",
                "operation": "update",
                "optionsData": "void",
                "Invoice": {"Id": existing["Id"], "SyncToken": "0"},
            },
        ]
    }

    response = qbo.post("batch", request)

    assert response.status_code == 200
    items = {item["bId"]: item for item in loads(response)["BatchItemResponse"]}
    assert items["b1"]["Invoice"]["DocNumber"] == "B-1"
    assert items["b2"]["Fault"]["Error"][0]["code"] == "5010"
    # A later item does not see what an earlier item of the batch created.
    assert items["b3"]["QueryResponse"] == {}
    assert items["b4"]["Invoice"]["TotalAmt"] == 0


def test_batch_over_30_items_is_refused(qbo: Qbo) -> None:
    items = [{"bId": str(n), "Query": "select * from Item"} for n in range(31)]

    response = qbo.post("batch", {"BatchItemRequest": items})

    assert response.status_code == 400


def test_preferences_report_custom_numbers(qbo: Qbo) -> None:
    prefs = loads(qbo.get("preferences"))["Preferences"]

    assert prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    assert prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] is False


def test_unknown_path_is_404(qbo: Qbo) -> None:
    assert qbo.get("Invoice/1").status_code == 404
    assert qbo.get("widget").status_code == 404


# -- auth ---------------------------------------------------------------------


def test_missing_or_expired_token_is_lowercase_401(
    qbo: Qbo, http: httpx.Client
) -> None:
    anonymous = http.get(qbo.url("invoice/1"))
    http.post("/_sim/clock/advance", json={"seconds": 3600})
    expired = qbo.get("preferences")

    for response in (anonymous, expired):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["fault"]["error"][0]["code"] == "3200"
        assert response.headers["intuit_tid"]


def test_token_for_another_realm_is_403(http: httpx.Client) -> None:
    other = http.post("/_sim/realms", json={"name": "Other", "sample": False}).json()
    qbo = Qbo(http, other["realm_id"])
    qbo.realm_id = REALM

    response = qbo.get("preferences")

    assert response.status_code == 403
    assert other["realm_id"] in [
        realm["realm_id"] for realm in http.get("/_sim/realms").json()
    ]


def test_new_realm_is_isolated(http: httpx.Client) -> None:
    realm = http.post("/_sim/realms", json={"sample": True}).json()
    qbo = Qbo(http, realm["realm_id"])

    qbo.invoice(DocNumber="ISO-1")

    assert realm["realm_id"].isdigit()
    main = Qbo(http)
    assert (
        loads(main.query("select * from Invoice where DocNumber = 'ISO-1'"))[
            "QueryResponse"
        ]
        == {}
    )


def refresh(http: httpx.Client, token: str, auth: str = BASIC) -> httpx.Response:
    return http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"Authorization": f"Basic {auth}", "Accept": "application/json"},
    )


def test_refresh_rotates_and_burns_the_old_token(qbo: Qbo, http: httpx.Client) -> None:
    old = qbo.tokens["refresh_token"]

    rotated = refresh(http, old)
    replay = refresh(http, old)
    bad_client = refresh(
        http, rotated.json()["refresh_token"], auth=base64.b64encode(b"x:y").decode()
    )

    assert rotated.status_code == 200
    body = rotated.json()
    assert body["refresh_token"] != old and body["token_type"] == "bearer"
    assert body["expires_in"] == 3600 and body["x_refresh_token_expires_in"] > 0
    assert rotated.headers["intuit_tid"]
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (
        bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    )
    new_headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert http.get(qbo.url("preferences"), headers=new_headers).status_code == 200


def test_revoke_ends_the_connection(qbo: Qbo, http: httpx.Client) -> None:
    response = http.post(
        "/oauth2/v1/tokens/revoke",
        json={"token": qbo.tokens["refresh_token"]},
        headers={"Authorization": f"Basic {BASIC}"},
    )

    assert response.status_code == 200
    assert qbo.get("preferences").status_code == 401
    assert refresh(http, qbo.tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_grace_keeps_old_token_briefly() -> None:
    with (
        serve_in_thread(create_app(make_config(refresh_token_grace_seconds=60))) as url,
        httpx.Client(base_url=url) as http,
    ):
        tokens = http.post("/_sim/tokens", json={"realm_id": REALM}).json()
        assert refresh(http, tokens["refresh_token"]).status_code == 200
        assert refresh(http, tokens["refresh_token"]).status_code == 200
        http.post("/_sim/clock/advance", json={"seconds": 61})
        assert refresh(http, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_consent_page_redirects_with_code_and_code_is_single_use(
    http: httpx.Client,
) -> None:
    params = {
        "client_id": "demo-client-id",
        "redirect_uri": "http://127.0.0.1:9/callback",
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "state": "xyz",
    }
    page = http.get("/connect", params=params)
    assert page.status_code == 200 and "Connect" in page.text and REALM in page.text

    answer = http.post(
        "/connect", data={**params, "realm_id": REALM, "decision": "connect"}
    )

    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["xyz"] and query["realmId"] == [REALM]
    exchange = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": params["redirect_uri"],
    }
    headers = {"Authorization": f"Basic {BASIC}"}
    first = http.post("/oauth2/v1/tokens/bearer", data=exchange, headers=headers)
    second = http.post("/oauth2/v1/tokens/bearer", data=exchange, headers=headers)
    assert first.status_code == 200 and first.json()["access_token"]
    assert second.json()["error"] == "invalid_grant"
    assert (
        http.get("/connect", params={**params, "client_id": "nope"}).status_code == 400
    )


def test_discovery_names_own_endpoints(http: httpx.Client) -> None:
    config = http.get("/.well-known/openid_sandbox_configuration").json()

    base = str(http.base_url).rstrip("/")
    assert config["token_endpoint"] == base + "/oauth2/v1/tokens/bearer"
    assert config["revocation_endpoint"] == base + "/oauth2/v1/tokens/revoke"
    assert config["authorization_endpoint"] == base + "/connect/oauth2"
    assert config["issuer"] == base


# -- webhooks -----------------------------------------------------------------


def signature(body: bytes) -> str:
    digest = hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_webhook_batches_changes_and_signs_the_raw_body(
    qbo: Qbo, http: httpx.Client
) -> None:
    http.post("/_sim/webhooks/config", json={"hold": True})
    invoice = qbo.invoice()
    qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void")

    http.post("/_sim/webhooks/flush")
    pending = http.get("/_sim/webhooks/pending").json()

    assert len(pending) == 1
    delivery = pending[0]
    assert delivery["headers"]["intuit-signature"] == signature(
        delivery["body"].encode()
    )
    body = json.loads(delivery["body"])
    notification = body["eventNotifications"][0]
    assert notification["realmId"] == REALM
    entities = notification["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Invoice", invoice["Id"], "Create"),
        ("Invoice", invoice["Id"], "Void"),
    ]
    assert entities[0]["lastUpdated"] == "2026-12-04T16:00:00.000Z"


def test_webhook_delivery_retries_until_2xx(
    qbo: Qbo, http: httpx.Client, receiver: tuple[str, list, list]
) -> None:
    url, received, statuses = receiver
    statuses.extend([500])
    http.post("/_sim/webhooks/config", json={"url": url})

    qbo.invoice()
    http.post("/_sim/webhooks/flush", json={"wait_retries": True})

    attempts = http.get("/_sim/webhooks/deliveries").json()
    assert [attempt["status"] for attempt in attempts] == [500, 200]
    assert len(received) == 2 and received[0][1] == received[1][1]
    headers, raw = received[1]
    assert headers["intuit-signature"] == signature(raw)
    assert headers["content-type"] == "application/json"


def test_webhook_cloudevents_release_repeat_and_reverse(
    qbo: Qbo, http: httpx.Client, receiver: tuple[str, list, list]
) -> None:
    url, received, _ = receiver
    http.post(f"/_sim/realms/{REALM}/settings", json={"webhook_format": "cloudevents"})
    http.post("/_sim/webhooks/config", json={"url": url, "hold": True})
    invoice = qbo.invoice()
    http.post("/_sim/webhooks/flush")
    qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="delete")
    http.post("/_sim/webhooks/flush")
    pending = http.get("/_sim/webhooks/pending").json()
    assert len(pending) == 2

    results = http.post(
        "/_sim/webhooks/release", json={"repeat": 2, "reverse": True}
    ).json()

    assert [result["status"] for result in results] == [200, 200, 200, 200]
    events = [json.loads(raw) for _, raw in received]
    assert [event[0]["type"] for event in events] == [
        "qbo.invoice.deleted.v1",
        "qbo.invoice.deleted.v1",
        "qbo.invoice.created.v1",
        "qbo.invoice.created.v1",
    ]
    assert events[0][0]["id"] == events[1][0]["id"]
    assert events[0][0]["intuitentityid"] == invoice["Id"]
    assert events[0][0]["intuitaccountid"] == REALM
    assert received[0][0]["content-type"] == "application/cloudevents+json"
    assert http.get("/_sim/webhooks/pending").json() == []


def test_webhook_drop_and_merge_event(qbo: Qbo, http: httpx.Client) -> None:
    http.post("/_sim/webhooks/config", json={"hold": True})
    http.post(f"/_sim/realms/{REALM}/customers/3/merge", json={"into": "4"})
    http.post("/_sim/webhooks/flush")
    pending = http.get("/_sim/webhooks/pending").json()
    entity = json.loads(pending[0]["body"])["eventNotifications"][0]["dataChangeEvent"]
    assert entity["entities"][-1] == {
        "name": "Customer",
        "id": "4",
        "operation": "Merge",
        "lastUpdated": "2026-12-04T16:00:00.000Z",
        "deletedId": "3",
    }

    dropped = http.post("/_sim/webhooks/drop", json={"ids": [pending[0]["id"]]}).json()

    assert dropped == {"dropped": [pending[0]["id"]]}
    assert http.get("/_sim/webhooks/pending").json() == []


def test_send_marks_emailed_and_announces_it(qbo: Qbo, http: httpx.Client) -> None:
    http.post("/_sim/webhooks/config", json={"hold": True})
    invoice = qbo.invoice()
    no_address = qbo.http.post(
        qbo.url(f"invoice/{invoice['Id']}/send"), headers=qbo.headers
    )

    sent = qbo.http.post(
        qbo.url(f"invoice/{invoice['Id']}/send"),
        params={"sendTo": "amy@example.com"},
        headers={**qbo.headers, "Content-Type": "application/octet-stream"},
    )

    assert error_of(no_address)["code"] == "6000"
    emailed = loads(sent)["Invoice"]
    assert emailed["EmailStatus"] == "EmailSent" and emailed["SyncToken"] == "1"
    http.post("/_sim/webhooks/flush")
    [delivery] = http.get("/_sim/webhooks/pending").json()
    events = json.loads(delivery["body"])["eventNotifications"][0]["dataChangeEvent"]
    assert [e["operation"] for e in events["entities"]] == ["Create", "Emailed"]


def test_no_webhooks_without_a_live_connection(qbo: Qbo, http: httpx.Client) -> None:
    http.post("/_sim/webhooks/config", json={"hold": True})
    http.post(
        "/oauth2/v1/tokens/revoke",
        data={"token": qbo.tokens["access_token"]},
        headers={"Authorization": f"Basic {BASIC}"},
    )

    http.post(f"/_sim/realms/{REALM}/customers/3/merge", json={"into": "4"})
    http.post("/_sim/webhooks/flush")

    assert http.get("/_sim/webhooks/pending").json() == []


# -- fault injection and throttling -------------------------------------------


def test_injected_status_fault_does_nothing(qbo: Qbo, http: httpx.Client) -> None:
    http.post(
        "/_sim/faults", json={"kind": "status", "status": 503, "operation": "create"}
    )

    failed = qbo.post("invoice", invoice_body(DocNumber="F-1"))
    succeeded = qbo.post("invoice", invoice_body(DocNumber="F-2"))

    assert failed.status_code == 503 and failed.json()["Fault"]["type"] == "SystemFault"
    assert succeeded.status_code == 200
    count = loads(qbo.query("select count(*) from Invoice"))["QueryResponse"][
        "totalCount"
    ]
    assert count == 1


def test_timeout_after_commit_leaves_the_object(qbo: Qbo, http: httpx.Client) -> None:
    http.post(
        "/_sim/faults",
        json={
            "kind": "timeout_after_commit",
            "path_regex": "/invoice$",
            "hold_seconds": 5,
        },
    )

    with pytest.raises(httpx.ReadTimeout):
        qbo.http.post(
            qbo.url("invoice"),
            json=invoice_body(DocNumber="T-1"),
            headers=qbo.headers,
            timeout=0.3,
        )

    found = loads(qbo.query("select * from Invoice where DocNumber = 'T-1'"))
    assert len(found["QueryResponse"]["Invoice"]) == 1


def test_timeout_before_commit_writes_nothing(qbo: Qbo, http: httpx.Client) -> None:
    http.post("/_sim/faults", json={"kind": "timeout_before_commit", "hold_seconds": 5})

    with pytest.raises(httpx.ReadTimeout):
        qbo.http.post(
            qbo.url("invoice"),
            json=invoice_body(DocNumber="T-2"),
            headers=qbo.headers,
            timeout=0.3,
        )

    assert (
        loads(qbo.query("select * from Invoice where DocNumber = 'T-2'"))[
            "QueryResponse"
        ]
        == {}
    )


def test_throttle_fault_and_clear(qbo: Qbo, http: httpx.Client) -> None:
    http.post("/_sim/faults", json={"kind": "throttle", "times": 0})

    throttled = qbo.get("preferences")
    cleared = http.delete("/_sim/faults").json()

    assert throttled.status_code == 429 and error_of(throttled)["code"] == "3001"
    assert cleared == {"cleared": 1}
    assert qbo.get("preferences").status_code == 200


def test_rate_limits_per_second_minute_and_batch_with_xml_option() -> None:
    config = make_config(rate_per_second=2, rate_per_minute=3, batch_per_minute=1)
    with serve_in_thread(create_app(config)) as url, httpx.Client(base_url=url) as http:
        qbo = Qbo(http)
        assert [qbo.get("preferences").status_code for _ in range(3)] == [200, 200, 429]
        http.post("/_sim/clock/advance", json={"seconds": 1})
        assert qbo.get("preferences").status_code == 200
        http.post(f"/_sim/realms/{REALM}/settings", json={"throttle_as_xml": True})
        minute_limited = qbo.get("preferences")
        assert minute_limited.status_code == 429
        assert minute_limited.headers["content-type"].startswith("application/xml")
        assert '<Error code="3001">' in minute_limited.text

        http.post("/_sim/clock/advance", json={"seconds": 60})
        batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Item"}]}
        assert qbo.post("batch", batch).status_code == 200
        assert qbo.post("batch", batch).status_code == 429


def test_more_concurrent_requests_than_allowed_are_throttled() -> None:
    with (
        serve_in_thread(create_app(make_config(max_concurrency=1))) as url,
        httpx.Client(base_url=url) as http,
    ):
        qbo = Qbo(http)
        http.post(
            "/_sim/faults", json={"kind": "timeout_before_commit", "hold_seconds": 5}
        )
        outcome: list[BaseException] = []

        def held_call() -> None:
            try:
                qbo.http.get(qbo.url("preferences"), headers=qbo.headers, timeout=0.5)
            except httpx.TimeoutException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=held_call)
        worker.start()
        # The fault is consumed once the held call is in flight.
        while http.get("/_sim/faults").json():
            pass
        second = qbo.get("preferences")
        worker.join()

        assert second.status_code == 429
        assert error_of(second)["code"] == "3001"
        assert len(outcome) == 1


# -- persistence and reset ----------------------------------------------------


def test_state_survives_a_restart(tmp_path: Any) -> None:
    config = make_config(state_path=tmp_path / "qbo.json")
    with serve_in_thread(create_app(config)) as url, httpx.Client(base_url=url) as http:
        qbo = Qbo(http)
        invoice = qbo.invoice(
            Line=[sales_line("0.10", qty="0.1", price="1.00")], DocNumber="P-1"
        )
        tokens = qbo.tokens

    with serve_in_thread(create_app(config)) as url, httpx.Client(base_url=url) as http:
        headers = {
            "Authorization": f"Bearer {tokens['access_token']}",
            "Accept": "application/json",
        }
        response = http.get(
            f"/v3/company/{REALM}/invoice/{invoice['Id']}", headers=headers
        )
        assert response.status_code == 200
        assert '"TotalAmt":0.10' in response.text
        assert refresh(http, tokens["refresh_token"]).status_code == 200
        created = Qbo(http).invoice()
        assert int(created["Id"]) == int(invoice["Id"]) + 1


def test_reset_restores_the_start_state(qbo: Qbo, http: httpx.Client) -> None:
    qbo.invoice()
    http.post("/_sim/realms", json={"name": "Extra"})

    http.post("/_sim/reset")

    assert http.get("/_sim/realms").json() == [
        {"realm_id": REALM, "name": "Sandbox Company_US_1"}
    ]
    assert http.get("/_sim/requests").json() == []
    fresh = Qbo(http)
    assert (
        loads(fresh.query("select count(*) from Invoice"))["QueryResponse"][
            "totalCount"
        ]
        == 0
    )


def test_discovery_endpoints_all_answer():
    with (
        serve_in_thread(create_app(SimConfig(seed=7))) as base,
        httpx.Client(base_url=base) as http,
    ):
        config = http.get("/.well-known/openid_sandbox_configuration").json()
        realm = http.get("/_sim/realms").json()[0]["realm_id"]
        token = http.post("/_sim/tokens", json={"realm_id": realm}).json()
        consent = http.get(
            config["authorization_endpoint"],
            params={
                "client_id": "demo-client-id",
                "response_type": "code",
                "redirect_uri": "http://127.0.0.1/cb",
                "scope": "openid",
                "state": "s",
            },
        )
        assert consent.status_code == 200
        assert http.get(config["jwks_uri"]).json() == {"keys": []}
        info = http.get(
            config["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert info.status_code == 200 and info.json()["sub"]
        assert http.get(config["userinfo_endpoint"]).status_code == 401


def test_throttle_per_second_is_per_app_per_minute_per_realm():
    config = SimConfig(seed=7, rate_per_second=2, rate_per_minute=5, clock_start=START)
    with (
        serve_in_thread(create_app(config)) as base,
        httpx.Client(base_url=base) as http,
    ):
        realm = http.get("/_sim/realms").json()[0]["realm_id"]

        def client(app):
            token = http.post(
                "/_sim/tokens", json={"realm_id": realm, "client_id": app}
            ).json()["access_token"]
            return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

        ours, theirs = client("demo-client-id"), client("another-app")
        path = f"/v3/company/{realm}/customer/1"
        assert [http.get(path, headers=ours).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        # Another app's budget for this second is untouched ...
        assert [http.get(path, headers=theirs).status_code for _ in range(2)] == [
            200,
            200,
        ]
        # ... but the realm's minute is shared: 4 of 5 spent.
        http.post("/_sim/clock/advance", json={"seconds": 2})
        assert [http.get(path, headers=theirs).status_code for _ in range(2)] == [
            200,
            429,
        ]
