"""The dashboard as a person uses it, in headless Chromium."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from support import factories

pytestmark = pytest.mark.e2e


async def test_dashboard_lists_linked_invoices_and_their_timeline(stack, page):
    await factories.internal_invoice(stack, number="INV-E2E-1")
    await stack.settle()

    await page.goto("/")
    await expect(page.get_by_role("link", name="INV-E2E-1", exact=True)).to_be_visible()
    await expect(page.locator("#events")).to_contain_text("created in qbo")

    await page.get_by_role("link", name="INV-E2E-1", exact=True).click()
    await expect(page.locator("h1")).to_contain_text("INV-E2E-1")
    await expect(page.locator("table.kv")).to_contain_text("INV-E2E-1")


async def test_dashboard_resolves_a_conflict_field_by_field(stack, page):
    invoice = await factories.internal_invoice(stack, number="INV-E2E-2")
    await stack.settle()
    qbo_id = (await stack.qbo_invoice_by_number("INV-E2E-2"))[0]["Id"]

    # Both sides change the memo before the worker runs.
    await factories.internal_patch(
        stack, invoice["id"], {"memo": "From the internal side"}
    )
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "From QBO"}}
    )
    await stack.settle()

    await page.goto("/conflicts")
    await page.get_by_role("link", name="1", exact=True).click()
    await expect(page.locator("table.conflict")).to_contain_text(
        "From the internal side"
    )
    await expect(page.locator("table.conflict")).to_contain_text("From QBO")

    await page.locator("input[name=choice_memo][value=value]").check()
    await page.locator("textarea[name=value_memo]").fill("Agreed by phone")
    await page.locator("input[name=resolved_by]").fill("Dana from finance")
    await page.get_by_role("button", name="Resolve and write to both sides").click()
    await expect(page.locator("main")).to_contain_text(
        "resolution queued by Dana from finance"
    )

    await stack.settle()
    await page.reload()
    await expect(page.locator("main")).to_contain_text("resolved")
    current = (await stack.internal.get(f"/api/invoices/{invoice['id']}")).json()
    assert current["memo"] == "Agreed by phone"
    qbo = (await stack.qbo_invoice_by_number("INV-E2E-2"))[0]
    assert qbo["CustomerMemo"]["value"] == "Agreed by phone"


async def test_dashboard_replays_a_dead_letter(stack, page):
    # A number longer than QBO's 21 characters cannot be sent: dead letter.
    invoice = await factories.internal_invoice(stack, number="INV-" + "9" * 30)
    await stack.settle()

    await page.goto("/dead-letters")
    await expect(page.locator("main")).to_contain_text("doc_number")

    await factories.internal_patch(stack, invoice["id"], {"number": "INV-E2E-3"})
    await page.get_by_role("button", name="Replay").first.click()
    await stack.settle()
    await page.goto("/dead-letters")
    await expect(page.locator("main")).to_contain_text("No dead letters")
    assert len(await stack.qbo_invoice_by_number("INV-E2E-3")) == 1
