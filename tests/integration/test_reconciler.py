"""The reconciler finds drift that no webhook announced."""

from __future__ import annotations

from ledgerbridge.reconciler import reconciler
from support import factories


async def _hold_all(stack):
    for control in (stack.qbo_control, stack.internal_control):
        await control.post("/_sim/webhooks/config", json={"hold": True})


async def _drop_all(stack):
    await stack.qbo_control.post("/_sim/webhooks/flush", json={})
    for control in (stack.qbo_control, stack.internal_control):
        await control.post("/_sim/webhooks/drop", json={})


async def test_reconciler_sweep_enqueues_only_what_is_out_of_step(stack):
    await factories.internal_invoice(stack, number="INV-REC-1")
    await stack.settle()
    # Everything linked is in step: a second sweep finds nothing new.
    await reconciler.reconcile_all(stack.services)
    await stack.settle()
    assert await reconciler.reconcile_all(stack.services) == 0


async def test_reconciler_full_sweep_finds_an_edit_older_than_any_cursor(stack):
    invoice = await factories.internal_invoice(stack, number="INV-REC-2")
    await stack.settle()
    await reconciler.reconcile_all(stack.services)
    await stack.settle()

    await _hold_all(stack)
    qbo_id = (await stack.qbo_invoice_by_number("INV-REC-2"))[0]["Id"]
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "lost"}}
    )
    await _drop_all(stack)
    # Move the CDC cursor past the edit, as if the sweep that should have
    # seen it had run while the edit was not yet visible.
    async with stack.services.pool.connection() as conn:
        await conn.execute(
            "UPDATE sync_cursors SET position = position + interval '1 hour'"
        )

    # Change data capture from the cursor misses it; the full comparison not.
    assert await reconciler.reconcile_all(stack.services) == 0
    assert await reconciler.reconcile_all(stack.services, full=True) >= 1
    await stack.settle()

    current = (await stack.internal.get(f"/api/invoices/{invoice['id']}")).json()
    assert current["memo"] == "lost"
