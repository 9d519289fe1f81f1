"""The internal connector against the reference internal system over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge import errors
from ledgerbridge.connectors import base
from ledgerbridge.connectors.internal import client as client_module
from ledgerbridge.simulators.internal import SimConfig, create_app
from support.servers import free_port, serve_in_thread

TOKEN = "demo-internal-token"


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serve_in_thread(create_app(SimConfig(seed=11))) as url:
        yield url


@pytest.fixture
async def control(sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim_url, trust_env=False) as http:
        (await http.post("/_sim/reset")).raise_for_status()
        yield http


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


@pytest.fixture
def internal(
    sim_url: str, control: httpx.AsyncClient, http: httpx.AsyncClient
) -> client_module.InternalClient:
    return client_module.InternalClient(
        sim_url, TOKEN, http=http, timeout_seconds=2, page_size=2
    )


async def arm(control: httpx.AsyncClient, **fault: Any) -> None:
    (await control.post("/_sim/faults", json=fault)).raise_for_status()


async def make_refs(internal: client_module.InternalClient) -> tuple[str, str]:
    customer = await internal.create(
        "customers", {"name": "Acme", "email": None}, idempotency_key="cus-1"
    )
    item = await internal.create(
        "items",
        {"sku": "CONS", "name": "Consulting", "unit_price": Decimal("150.00")},
        idempotency_key="itm-1",
    )
    return customer["id"], item["id"]


def invoice(customer_id: str, item_id: str, number: str = "INV-1") -> dict[str, Any]:
    return {
        "number": number,
        "customer_id": customer_id,
        "issue_date": dt.date(2026, 12, 4),
        "lines": [
            {
                "item_id": item_id,
                "description": "Consulting",
                "quantity": Decimal("2"),
                "unit_price": Decimal("150.00"),
            }
        ],
    }


def test_client_satisfies_the_protocol(
    internal: client_module.InternalClient,
) -> None:
    api: base.InternalApi = internal
    assert api is internal


def test_client_encodes_decimals_as_strings() -> None:
    raw = client_module.encode_json({"a": Decimal("0.10"), "b": Decimal("1E+2")})
    assert json.loads(raw) == {"a": "0.10", "b": "100"}


# Round trips


async def test_client_create_read_update_void_delete(
    internal: client_module.InternalClient,
) -> None:
    customer_id, item_id = await make_refs(internal)
    created = await internal.create(
        "invoices", invoice(customer_id, item_id), idempotency_key="inv-1"
    )
    # Amounts stay the strings the wire carries.
    assert created["lines"][0]["amount"] == "300.00"
    assert created["lines"][0]["unit_price"] == "150.00"
    assert await internal.get("invoices", created["id"]) == created

    updated = await internal.update(
        "invoices", created["id"], {"memo": "Thanks"}, version=created["version"]
    )
    assert (updated["memo"], updated["version"]) == ("Thanks", 2)

    voided = await internal.void_invoice(created["id"])
    assert (voided["status"], voided["version"]) == ("void", 3)

    await internal.delete("invoices", created["id"])
    # A repeated delete (its first answer lost) is success, not an error.
    await internal.delete("invoices", created["id"])
    with pytest.raises(errors.InternalGone) as gone:
        await internal.get("invoices", created["id"])
    assert gone.value.status_code == 410
    assert gone.value.entity_id == created["id"]


async def test_client_create_retry_with_same_key_does_not_duplicate(
    internal: client_module.InternalClient,
    control: httpx.AsyncClient,
    http: httpx.AsyncClient,
) -> None:
    customer_id, item_id = await make_refs(internal)
    await arm(
        control,
        kind="timeout_after_commit",
        method="POST",
        path_regex="^/api/invoices$",
        hold_seconds=5,
    )
    timed_out = client_module.InternalClient(
        internal.base_url, TOKEN, http=http, timeout_seconds=0.2
    )
    with pytest.raises(errors.InternalTransientError) as lost:
        await timed_out.create(
            "invoices", invoice(customer_id, item_id), idempotency_key="inv-7"
        )
    assert isinstance(lost.value.__cause__, httpx.TimeoutException)

    adopted = await internal.create(
        "invoices", invoice(customer_id, item_id), idempotency_key="inv-7"
    )
    assert await internal.find("invoices", number="INV-1") == [adopted]


async def test_client_list_changed_follows_cursor(
    internal: client_module.InternalClient, control: httpx.AsyncClient
) -> None:
    customer_id, item_id = await make_refs(internal)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    ids = []
    for n in range(3):
        created = await internal.create(
            "invoices", invoice(customer_id, item_id, f"N{n}"), idempotency_key=f"k{n}"
        )
        ids.append(created["id"])
    await internal.delete("invoices", ids[0])

    page, cursor = await internal.list_changed("invoices", updated_since=start)
    assert [r["id"] for r in page] == [ids[1], ids[2]]
    assert cursor is not None
    page, cursor = await internal.list_changed(
        "invoices", updated_since=start, cursor=cursor
    )
    assert [(r["id"], r["status"]) for r in page] == [(ids[0], "deleted")]
    assert cursor is None

    requests = (await control.get("/_sim/requests")).json()
    listing = next(r for r in requests if r["operation"] == "list")
    assert "updated_since=" in listing["query"]

    with pytest.raises(ValueError, match="timezone"):
        await internal.list_changed("invoices", updated_since=dt.datetime(2026, 1, 1))


async def test_client_find_uses_filters_across_pages(
    internal: client_module.InternalClient,
) -> None:
    for n in range(5):
        await internal.create(
            "customers", {"name": "Same Name"}, idempotency_key=f"c{n}"
        )
    await internal.create("customers", {"name": "Other"}, idempotency_key="other")
    customer_id, item_id = await make_refs(internal)

    assert len(await internal.find("customers", name="Same Name")) == 5
    assert [i["id"] for i in await internal.find("items", sku="CONS")] == [item_id]
    assert await internal.find("invoices", number="nope") == []
    assert customer_id


# Error translation, one status at a time


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, errors.InternalPermanentError),
        (401, errors.InternalPermanentError),
        (404, errors.InternalNotFound),
        (409, errors.InternalPermanentError),
        (410, errors.InternalGone),
        (412, errors.InternalVersionMismatch),
        (422, errors.InternalPermanentError),
        (429, errors.InternalTransientError),
        (500, errors.InternalTransientError),
        (502, errors.InternalTransientError),
        (503, errors.InternalTransientError),
    ],
)
async def test_client_maps_status(
    internal: client_module.InternalClient,
    control: httpx.AsyncClient,
    status: int,
    error_class: type[errors.InternalApiError],
) -> None:
    await arm(control, kind="status", status=status, method="GET")

    with pytest.raises(error_class) as caught:
        await internal.get("invoices", "inv_1")

    error = caught.value
    assert type(error) is error_class
    assert error.status_code == status
    assert error.entity_id == "inv_1"
    assert isinstance(error.__cause__, httpx.HTTPStatusError)
    assert str(status) in str(error)
    assert TOKEN not in str(error)
    transient = isinstance(error, errors.TransientError)
    assert transient == (status in (412, 429) or status >= 500)
    assert transient != isinstance(error, errors.PermanentError)


async def test_client_honours_retry_after(
    internal: client_module.InternalClient, control: httpx.AsyncClient
) -> None:
    await arm(control, kind="status", status=429, retry_after="7")
    with pytest.raises(errors.InternalTransientError) as caught:
        await internal.find("customers", name="x")
    assert caught.value.retry_after_seconds == 7.0

    await arm(control, kind="status", status=503)
    with pytest.raises(errors.InternalTransientError) as caught:
        await internal.find("customers", name="x")
    assert caught.value.retry_after_seconds is None


def test_client_parses_retry_after_dates() -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = client_module.parse_retry_after(header)
    assert seconds is not None and 100 < seconds <= 120
    assert client_module.parse_retry_after("soon") is None


async def test_client_maps_real_contract_errors(
    internal: client_module.InternalClient, http: httpx.AsyncClient
) -> None:
    customer_id, item_id = await make_refs(internal)
    created = await internal.create(
        "invoices", invoice(customer_id, item_id), idempotency_key="i"
    )

    with pytest.raises(errors.InternalNotFound):
        await internal.get("customers", "cus_missing")
    with pytest.raises(errors.InternalVersionMismatch) as stale:
        await internal.update("invoices", created["id"], {"memo": "x"}, version=9)
    assert stale.value.status_code == 412
    with pytest.raises(errors.InternalPermanentError) as invalid:
        await internal.create(
            "invoices", invoice("cus_missing", item_id, "N2"), idempotency_key="j"
        )
    assert invalid.value.status_code == 422
    assert invalid.value.code == "unknown_reference"
    assert "cus_missing" in str(invalid.value)

    wrong_token = client_module.InternalClient(internal.base_url, "wrong", http=http)
    with pytest.raises(errors.InternalPermanentError) as refused:
        await wrong_token.get("invoices", created["id"])
    assert refused.value.status_code == 401


async def test_client_maps_timeout_to_transient(
    internal: client_module.InternalClient,
    control: httpx.AsyncClient,
    http: httpx.AsyncClient,
) -> None:
    await arm(control, kind="timeout_before_commit", hold_seconds=5)
    impatient = client_module.InternalClient(
        internal.base_url, TOKEN, http=http, timeout_seconds=0.2
    )
    with pytest.raises(errors.InternalTransientError) as caught:
        await impatient.get("invoices", "inv_1")
    assert caught.value.status_code is None
    assert caught.value.entity_id == "inv_1"
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_client_maps_refused_connection_to_transient(
    http: httpx.AsyncClient,
) -> None:
    nobody = client_module.InternalClient(
        f"http://127.0.0.1:{free_port()}", TOKEN, http=http
    )
    with pytest.raises(errors.InternalTransientError) as caught:
        await nobody.get("items", "itm_1")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_client_owns_its_http_client_when_none_is_given(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The owned client honours proxy variables; keep loopback traffic direct.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with client_module.InternalClient(sim_url, TOKEN) as owned:
        assert await owned.find("items", sku="none") == []
    assert owned._http.is_closed
