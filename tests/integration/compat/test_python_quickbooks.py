"""python-quickbooks and intuit-oauth, unchanged, against the QBO simulator.

The libraries are pointed at the simulator the way a user points them at a
sandbox: intuitlib reads the simulator's discovery document, and the
``QuickBooks`` client gets the simulator's ``/v3`` base URL. ``start_sim``
(conftest) fails any request the libraries send anywhere but the simulator, so
no test can reach Intuit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import (
    AuthorizationException,
    ObjectNotFoundException,
    QuickbooksException,
)
from quickbooks.helpers import qb_datetime_format, qb_datetime_utc_offset_format
from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice

REALM = "9341453050121670"
START = dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC)
PACIFIC = ZoneInfo("America/Los_Angeles")
CLIENT_ID = "compat-client-id"
CLIENT_SECRET = "compat-client-secret"
MINOR_VERSION = 75


@pytest.fixture
def sim_url(start_sim: Callable[..., str]) -> str:
    return start_sim(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock_start=START
    )


@pytest.fixture
def control(sim_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim_url) as client:
        yield client


@pytest.fixture
def minted(control: httpx.Client) -> dict[str, Any]:
    """A token pair for the sample company, as if the user had just connected."""
    resp = control.post("/_sim/tokens", json={"realm_id": REALM})
    resp.raise_for_status()
    return dict(resp.json())


def make_auth_client(sim_url: str, **tokens: Any) -> AuthClient:
    return AuthClient(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri="http://127.0.0.1/callback",
        environment=f"{sim_url}/.well-known/openid_sandbox_configuration/",
        **tokens,
    )


@pytest.fixture
def auth_client(sim_url: str, minted: dict[str, Any]) -> AuthClient:
    return make_auth_client(sim_url, refresh_token=minted["refresh_token"])


@pytest.fixture
def qb(sim_url: str, auth_client: AuthClient, minted: dict[str, Any]) -> QuickBooks:
    """A client built the documented way; it refreshes through intuitlib first."""
    client = QuickBooks(
        auth_client=auth_client,
        refresh_token=minted["refresh_token"],
        company_id=REALM,
        minorversion=MINOR_VERSION,
    )
    # The environment is a URL, so the library picks api_url_v3; set both.
    client.api_url_v3 = f"{sim_url}/v3"
    client.sandbox_api_url_v3 = f"{sim_url}/v3"
    return client


def advance(control: httpx.Client, seconds: float) -> None:
    control.post("/_sim/clock/advance", json={"seconds": seconds}).raise_for_status()


def new_invoice(doc_number: str, amount: float = 150.0) -> Invoice:
    detail = SalesItemLineDetail()
    detail.ItemRef = Ref()
    detail.ItemRef.value = "1"
    detail.Qty = 1
    detail.UnitPrice = amount
    line = SalesItemLine()
    line.Amount = amount
    line.Description = "Compat check"
    line.SalesItemLineDetail = detail

    invoice = Invoice()
    invoice.CustomerRef = Ref()
    invoice.CustomerRef.value = "1"
    invoice.DocNumber = doc_number
    invoice.Line.append(line)
    return invoice


# -- intuitlib ---------------------------------------------------------------


def test_intuitlib_reads_every_endpoint_from_the_discovery_document(
    sim_url: str, auth_client: AuthClient
) -> None:
    assert auth_client.token_endpoint == f"{sim_url}/oauth2/v1/tokens/bearer"
    assert auth_client.revoke_endpoint == f"{sim_url}/oauth2/v1/tokens/revoke"
    assert auth_client.auth_endpoint.startswith(sim_url)
    assert auth_client.issuer_uri == sim_url


def test_intuitlib_refresh_rotates_the_refresh_token(
    sim_url: str, auth_client: AuthClient, minted: dict[str, Any]
) -> None:
    auth_client.refresh()

    assert auth_client.refresh_token != minted["refresh_token"]
    assert auth_client.access_token not in {None, minted["access_token"]}
    assert auth_client.expires_in == 3600
    assert auth_client.x_refresh_token_expires_in == 8726400

    # The default grace is 0: the superseded token is spent at once.
    stale = make_auth_client(sim_url)
    with pytest.raises(AuthClientError) as caught:
        stale.refresh(refresh_token=minted["refresh_token"])
    assert caught.value.status_code == 400
    assert json.loads(caught.value.content)["error"] == "invalid_grant"

    # The rotated one keeps working, and rotates again.
    rotated = auth_client.refresh_token
    auth_client.refresh()
    assert auth_client.refresh_token != rotated


def test_intuitlib_wrong_client_secret_is_invalid_client(
    sim_url: str, minted: dict[str, Any]
) -> None:
    client = AuthClient(
        client_id=CLIENT_ID,
        client_secret="not-the-secret",
        redirect_uri="http://127.0.0.1/callback",
        environment=f"{sim_url}/.well-known/openid_sandbox_configuration/",
    )
    with pytest.raises(AuthClientError) as caught:
        client.refresh(refresh_token=minted["refresh_token"])
    assert caught.value.status_code == 401
    assert json.loads(caught.value.content)["error"] == "invalid_client"


def test_intuitlib_revoke_ends_the_connection(
    auth_client: AuthClient, qb: QuickBooks
) -> None:
    # intuitlib sends the revoke body as JSON ({"token": ...}).
    assert auth_client.revoke(token=auth_client.refresh_token) is True

    with pytest.raises(AuthorizationException) as caught:
        Customer.get(1, qb=qb)
    assert caught.value.error_code == 401
    with pytest.raises(AuthClientError) as refused:
        auth_client.refresh()
    assert json.loads(refused.value.content)["error"] == "invalid_grant"


def test_quickbooks_401_after_the_access_token_expires(
    control: httpx.Client, auth_client: AuthClient, qb: QuickBooks
) -> None:
    assert Customer.get(1, qb=qb).Id == "1"
    advance(control, 3600)

    with pytest.raises(AuthorizationException) as caught:
        Customer.get(1, qb=qb)
    assert caught.value.error_code == 401
    assert "3200" in caught.value.detail

    # A user's fix: refresh through intuitlib, hand the session the new token.
    auth_client.refresh()
    qb.session.token = {
        "access_token": auth_client.access_token,
        "refresh_token": auth_client.refresh_token,
    }
    assert Customer.get(1, qb=qb).Id == "1"


# -- python-quickbooks -------------------------------------------------------


def test_quickbooks_invoice_create_read_update_query_void_delete(
    qb: QuickBooks,
) -> None:
    created = new_invoice("O'Brien-1").save(qb=qb)

    assert created.Id
    assert created.DocNumber == "O'Brien-1"
    assert created.SyncToken == "0"
    assert created.TotalAmt == 150.0
    assert created.Balance == 150.0
    assert created.CustomerRef.value == "1"
    assert created.Line[0].SalesItemLineDetail.ItemRef.value == "1"

    fetched = Invoice.get(created.Id, qb=qb)
    assert fetched.DocNumber == "O'Brien-1"
    assert fetched.SyncToken == "0"

    # Sparse update of the object just read: only PrivateNote changes.
    fetched.sparse = True
    fetched.PrivateNote = "paid by cheque"
    updated = fetched.save(qb=qb)
    assert updated.SyncToken == "1"
    assert updated.PrivateNote == "paid by cheque"
    assert updated.TotalAmt == 150.0
    assert len(updated.Line) == len(created.Line)

    # The filter helper escapes the apostrophe as \'.
    found = Invoice.filter(DocNumber="O'Brien-1", qb=qb)
    assert [invoice.Id for invoice in found] == [created.Id]
    assert Invoice.filter(DocNumber="O'Brien-2", qb=qb) == []
    assert [i.Id for i in Invoice.choose(["O'Brien-1"], "DocNumber", qb=qb)] == [
        created.Id
    ]
    assert Invoice.count(f"Id = '{created.Id}'", qb=qb) == 1

    voided = updated.void(qb=qb)["Invoice"]
    assert voided["Id"] == created.Id
    assert voided["TotalAmt"] == 0
    assert voided["Balance"] == 0
    assert voided["SyncToken"] == "2"
    assert "Voided" in voided.get("PrivateNote", "")

    after_void = Invoice.get(created.Id, qb=qb)
    deleted = after_void.delete(qb=qb)["Invoice"]
    assert deleted["Id"] == created.Id
    assert deleted["status"] == "Deleted"

    with pytest.raises(ObjectNotFoundException) as caught:
        Invoice.get(created.Id, qb=qb)
    assert caught.value.error_code == 610


def test_quickbooks_stale_sync_token_is_refused(qb: QuickBooks) -> None:
    created = new_invoice("STALE-1").save(qb=qb)
    first = Invoice.get(created.Id, qb=qb)
    second = Invoice.get(created.Id, qb=qb)
    first.PrivateNote = "first"
    first.save(qb=qb)

    # 5010 falls outside the library's ranges: the base exception class.
    second.PrivateNote = "second"
    with pytest.raises(QuickbooksException) as caught:
        second.save(qb=qb)
    assert caught.value.error_code == 5010


def test_quickbooks_customer_with_an_apostrophe(qb: QuickBooks) -> None:
    customer = Customer()
    customer.DisplayName = "O'Connor's Garden"
    customer.CompanyName = "O'Connor's Garden Ltd"
    created = customer.save(qb=qb)
    assert created.Id
    assert created.DisplayName == "O'Connor's Garden"

    found = Customer.filter(DisplayName="O'Connor's Garden", qb=qb)
    assert [c.Id for c in found] == [created.Id]
    sample = Customer.filter(DisplayName="Amy's Bird Sanctuary", qb=qb)
    assert [c.Id for c in sample] == ["1"]
    assert Customer.get(created.Id, qb=qb).CompanyName == "O'Connor's Garden Ltd"

    # An invoice for the new customer carries its name back in CustomerRef.
    invoice = new_invoice("OC-1")
    invoice.CustomerRef.value = created.Id
    assert invoice.save(qb=qb).CustomerRef.name == "O'Connor's Garden"


def test_quickbooks_change_data_capture(control: httpx.Client, qb: QuickBooks) -> None:
    # The sample company is seeded at START; only what follows should show.
    since = START + dt.timedelta(seconds=30)
    advance(control, 60)
    created = new_invoice("CDC-1").save(qb=qb)
    customer = Customer()
    customer.DisplayName = "CDC Customer"
    new_customer = customer.save(qb=qb)

    # A naive timestamp is company-local (US Pacific) time, as in QBO.
    local = since.astimezone(PACIFIC).replace(tzinfo=None)
    cdc = change_data_capture([Invoice, Customer], qb_datetime_format(local), qb=qb)
    assert [invoice.Id for invoice in cdc.Invoice] == [created.Id]
    assert [c.Id for c in cdc.Customer] == [new_customer.Id]
    assert isinstance(cdc.Invoice[0], Invoice)

    # With an explicit offset, and a deleted invoice shows up as a stub.
    Invoice.get(created.Id, qb=qb).delete(qb=qb)
    utc = qb_datetime_utc_offset_format(since.replace(tzinfo=None), "+00:00")
    cdc = change_data_capture([Invoice], utc, qb=qb)
    [stub] = list(cdc.Invoice)
    assert stub.Id == created.Id
    assert stub.status == "Deleted"
