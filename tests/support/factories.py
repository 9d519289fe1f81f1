"""Records made through the systems' own APIs, as a person would make them."""

from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count(1)


async def internal_customer(stack: Any, name: str | None = None) -> dict[str, Any]:
    n = next(_counter)
    resp = await stack.internal.post(
        "/api/customers",
        json={"name": name or f"Customer {n}", "email": f"c{n}@example.com"},
        headers={"Idempotency-Key": f"test-customer-{n}"},
    )
    resp.raise_for_status()
    return dict(resp.json())


async def internal_item(stack: Any, price: str = "150.00") -> dict[str, Any]:
    n = next(_counter)
    resp = await stack.internal.post(
        "/api/items",
        json={"sku": f"SKU-{n}", "name": f"Item {n}", "unit_price": price},
        headers={"Idempotency-Key": f"test-item-{n}"},
    )
    resp.raise_for_status()
    return dict(resp.json())


async def internal_invoice(
    stack: Any,
    *,
    number: str | None = None,
    memo: str = "Thank you for your business",
    quantity: str = "2",
    customer: dict[str, Any] | None = None,
    item: dict[str, Any] | None = None,
) -> dict[str, Any]:
    n = next(_counter)
    customer = customer or await internal_customer(stack)
    item = item or await internal_item(stack)
    resp = await stack.internal.post(
        "/api/invoices",
        json={
            "number": number or f"INV-{1000 + n}",
            "customer_id": customer["id"],
            "currency": "USD",
            "issue_date": "2026-12-04",
            "due_date": "2027-01-03",
            "lines": [
                {
                    "item_id": item["id"],
                    "description": "Consulting, December",
                    "quantity": quantity,
                    "unit_price": item["unit_price"],
                }
            ],
            "memo": memo,
            "status": "open",
        },
        headers={"Idempotency-Key": f"test-invoice-{n}"},
    )
    resp.raise_for_status()
    return dict(resp.json())


async def internal_patch(
    stack: Any, invoice_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    current = (await stack.internal.get(f"/api/invoices/{invoice_id}")).json()
    resp = await stack.internal.patch(
        f"/api/invoices/{invoice_id}",
        json=fields,
        headers={"If-Match": str(current["version"])},
    )
    resp.raise_for_status()
    return dict(resp.json())


async def qbo_sparse_update(
    stack: Any, invoice_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    path = f"/v3/company/{stack.realm_id}/invoice"
    current = (await stack.qbo.get(f"{path}/{invoice_id}")).json()["Invoice"]
    resp = await stack.qbo.post(
        path,
        json={
            "Id": invoice_id,
            "SyncToken": current["SyncToken"],
            "sparse": True,
            **fields,
        },
    )
    resp.raise_for_status()
    return dict(resp.json()["Invoice"])
