"""The demo panel breaks delivery on purpose; LedgerBridge converges anyway."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from support import factories

pytestmark = pytest.mark.e2e


async def test_demo_panel_is_off_unless_the_demo_turns_it_on(stack, page):
    resp = await page.goto("/demo")
    assert resp.status == 404


async def test_demo_panel_drops_webhooks_and_the_reconciler_recovers(stack, page):
    stack.services.settings.demo_panel = True
    await page.goto("/demo")
    await page.get_by_role("button", name="Hold webhooks").click()
    await expect(page.locator(".notice")).to_contain_text("held")

    await factories.internal_invoice(stack, number="INV-PANEL-1")
    await page.goto("/demo")
    await expect(page.locator(".cards")).to_contain_text("held deliveries")

    await page.get_by_role("button", name="Drop held webhooks").click()
    await expect(page.locator(".notice")).to_contain_text("Dropped")
    await stack.settle()
    assert await stack.qbo_invoice_by_number("INV-PANEL-1") == []

    await page.get_by_role("button", name="Run the reconciler now").click()
    await expect(page.locator(".notice")).to_contain_text("reconciler is queued")
    await stack.settle()
    assert len(await stack.qbo_invoice_by_number("INV-PANEL-1")) == 1


async def test_demo_panel_duplicates_held_webhooks_and_nothing_is_doubled(stack, page):
    stack.services.settings.demo_panel = True
    invoice = await factories.internal_invoice(stack, number="INV-PANEL-2")
    await stack.settle()
    await page.goto("/demo")
    await page.get_by_role("button", name="Hold webhooks").click()
    await factories.internal_patch(
        stack, invoice["id"], {"memo": "Sent twice, applied once"}
    )
    await page.get_by_role("button", name="Deliver each held webhook ten times").click()
    await expect(page.locator(".notice")).to_contain_text("Delivered")
    await stack.settle()

    found = await stack.qbo_invoice_by_number("INV-PANEL-2")
    assert len(found) == 1
    assert found[0]["CustomerMemo"]["value"] == "Sent twice, applied once"
    qbo_updates = [
        r
        for r in await stack.qbo_requests()
        if r["method"] == "POST" and r.get("operation") == "update"
    ]
    assert len(qbo_updates) == 1, qbo_updates
