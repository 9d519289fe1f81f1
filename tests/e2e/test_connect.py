"""Connect to QuickBooks from the dashboard: the OAuth 2.0 authorization code flow."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.e2e


async def test_connect_a_second_company_through_the_consent_page(stack, page):
    created = await stack.qbo_control.post("/_sim/realms", json={"name": "Second Shop"})
    realm_id = str(created.json()["realm_id"])

    await page.goto("/")
    await page.get_by_role("link", name="Connect another company").click()
    # The simulator's consent page, like Intuit's.
    await expect(page.locator("h1")).to_contain_text("Connect your app to QuickBooks")
    await page.locator("select[name=realm_id]").select_option(realm_id)
    await page.get_by_role("button", name="Connect").click()

    # Back on the dashboard, the company is connected with encrypted tokens.
    await expect(page.locator("main")).to_contain_text(realm_id)
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, access_token_enc, refresh_token_enc FROM connections"
            " WHERE realm_id = %s",
            (realm_id,),
        )
        row = await cur.fetchone()
    assert row["status"] == "connected"
    assert row["access_token_enc"] and row["refresh_token_enc"]
    token = await stack.services.tokens.get_access_token(
        await _connection_id(stack, realm_id)
    )
    assert token not in row["access_token_enc"], "tokens are stored encrypted"


async def test_connect_callback_refuses_a_forged_state(stack, page):
    resp = await page.goto("/oauth/qbo/callback?code=x&state=forged&realmId=1")
    assert resp.status == 400
    await expect(page.locator("body")).to_contain_text("state does not match")


async def _connection_id(stack, realm_id):
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM connections WHERE realm_id = %s", (realm_id,)
        )
        return (await cur.fetchone())["id"]
