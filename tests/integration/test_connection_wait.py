"""A QBO connection that loses its grant waits for a reconnect; nothing dead-letters."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

from ledgerbridge.connectors.qbo import auth
from ledgerbridge.connectors.qbo.models import TokenSet
from support import factories

WAITING = "waiting for the QBO connection"


async def _connection(stack: Any) -> dict[str, Any]:
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM connections WHERE id = %(id)s", {"id": stack.connection_id}
        )
        row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def _stored_refresh_token(stack: Any) -> str:
    """Decrypt the connection's refresh token with the deployment's key."""
    fernet = auth.load_fernet(stack.services.settings)
    encrypted = (await _connection(stack))["refresh_token_enc"]
    return fernet.decrypt(encrypted.encode()).decode()


def _basic(stack: Any) -> dict[str, str]:
    settings = stack.services.settings
    pair = f"{settings.qbo_client_id}:{settings.qbo_client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def _revoke_at_intuit(stack: Any) -> None:
    """The user disconnects the app in QuickBooks: the grant is revoked."""
    resp = await stack.qbo_control.post(
        "/oauth2/v1/tokens/revoke",
        json={"token": await _stored_refresh_token(stack)},
        headers=_basic(stack),
    )
    assert resp.status_code == 200


async def _supersede_elsewhere(stack: Any) -> None:
    """Another copy of the app spends our refresh token; then the access expires.

    With the simulator's default grace of 0 the stored refresh token is burnt
    the moment the other copy rotates it.
    """
    resp = await stack.qbo_control.post(
        "/oauth2/v1/tokens/bearer",
        data={
            "grant_type": "refresh_token",
            "refresh_token": await _stored_refresh_token(stack),
        },
        headers=_basic(stack),
    )
    assert resp.status_code == 200
    resp = await stack.qbo_control.post("/_sim/clock/advance", json={"seconds": 3601})
    resp.raise_for_status()


async def _reconnect(stack: Any) -> None:
    """What the OAuth callback does: store a fresh pair for the same realm."""
    minted = (
        await stack.qbo_control.post(
            "/_sim/tokens",
            json={
                "realm_id": stack.realm_id,
                "client_id": stack.services.settings.qbo_client_id,
            },
        )
    ).json()
    now = stack.services.clock.now()
    connection_id = await stack.services.tokens.connect(
        stack.realm_id,
        TokenSet(
            access_token=minted["access_token"],
            refresh_token=minted["refresh_token"],
            access_expires_at=now + dt.timedelta(seconds=minted["expires_in"]),
            refresh_expires_at=now
            + dt.timedelta(seconds=minted["x_refresh_token_expires_in"]),
        ),
    )
    assert connection_id == stack.connection_id


async def _qbo_invoices(stack: Any, number: str) -> list[dict[str, Any]]:
    """Look in QBO with a token of its own: the stack's may have expired."""
    minted = (
        await stack.qbo_control.post("/_sim/tokens", json={"realm_id": stack.realm_id})
    ).json()
    resp = await stack.qbo_control.get(
        f"/v3/company/{stack.realm_id}/query",
        params={"query": f"select * from Invoice where DocNumber = '{number}'"},
        headers={
            "Authorization": f"Bearer {minted['access_token']}",
            "Accept": "application/json",
        },
    )
    resp.raise_for_status()
    return list(resp.json()["QueryResponse"].get("Invoice", []))


async def _invoice_events(stack: Any, internal_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in await stack.events()
        if e["side"] == "internal"
        and e["entity_type"] == "invoice"
        and e["entity_id"] == internal_id
    ]


async def _jobs(stack: Any) -> list[dict[str, Any]]:
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, status, attempts, scheduled_at > now() AS later"
            " FROM procrastinate_jobs ORDER BY id"
        )
        return list(await cur.fetchall())


@pytest.mark.slow
@pytest.mark.parametrize("lose_grant", [_revoke_at_intuit, _supersede_elsewhere])
async def test_connection_wait_dead_grant_waits_then_syncs_after_reconnect(
    stack, lose_grant
):
    await lose_grant(stack)
    invoice = await factories.internal_invoice(stack, number="INV-WAIT-1")

    await stack.settle()

    # The connection is marked, with Intuit's reason.
    connection = await _connection(stack)
    assert connection["status"] == "disconnected"
    assert connection["last_error"].startswith("invalid_grant")

    # The job failed softly: no dead letter, and it is scheduled to run again.
    events = await _invoice_events(stack, str(invoice["id"]))
    assert events, await stack.events()
    assert {e["status"] for e in events} == {"failed"}
    assert all(WAITING in e["detail"] for e in events)
    assert "dead_letter" not in {e["status"] for e in await stack.events()}
    waiting = [j for j in await _jobs(stack) if j["status"] == "todo" and j["later"]]
    assert waiting, await _jobs(stack)
    assert await _qbo_invoices(stack, "INV-WAIT-1") == []

    # The dashboard tells the operator what to do.
    async with httpx.AsyncClient(base_url=stack.lb_url) as browser:
        page = await browser.get("/")
    assert page.status_code == 200
    assert "disconnected" in page.text
    assert 'href="/connect/qbo">Reconnect</a>' in page.text

    # Another attempt while still disconnected spends nothing at Intuit.
    seq = (await stack.qbo_requests())[-1]["seq"]
    assert await stack.retries_due_now() >= 1
    await stack.settle()
    assert await stack.qbo_requests(seq) == []
    assert {e["status"] for e in await _invoice_events(stack, str(invoice["id"]))} == {
        "failed"
    }

    await _reconnect(stack)
    connection = await _connection(stack)
    assert connection["status"] == "connected"
    assert connection["last_error"] is None
    assert await stack.retries_due_now() >= 1
    await stack.settle()

    [synced] = await _qbo_invoices(stack, "INV-WAIT-1")
    assert synced["DocNumber"] == "INV-WAIT-1"
    statuses = [e["status"] for e in await _invoice_events(stack, str(invoice["id"]))]
    assert "applied" in statuses
    assert "dead_letter" not in {e["status"] for e in await stack.events()}
    async with httpx.AsyncClient(base_url=stack.lb_url) as browser:
        page = await browser.get("/")
    assert ">Reconnect</a>" not in page.text
