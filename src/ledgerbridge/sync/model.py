"""The canonical invoice, customer and item both sides are mapped to.

References (``customer_key``, ``item_key``) are internal-system ids: the
QBO side is translated through the customer and item links before it
reaches this model. Money is always ``Decimal``; QBO's computed values
(SubTotal line, TotalAmt, Balance, MetaData, SyncToken) never appear here,
so they can never look like a change.

Void and deleted invoices carry no lines: QBO zeroes a voided invoice's
quantities and amounts, so its lines say nothing about what was billed, and
a deleted invoice has no payload at all. ``Invoice`` therefore drops the
lines of any invoice whose status is not ``open``, on both sides, and two
void invoices never differ by their lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from decimal import Decimal


class Status(enum.StrEnum):
    OPEN = "open"
    VOID = "void"
    DELETED = "deleted"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Line:
    item_key: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Invoice:
    doc_number: str
    customer_key: str
    currency: str
    issue_date: dt.date
    due_date: dt.date | None
    lines: tuple[Line, ...]
    memo: str
    status: Status = Status.OPEN

    def __post_init__(self) -> None:
        # Lines of a void or deleted invoice are not meaningful (see the module
        # docstring); normalising here means no caller can reintroduce them.
        if self.status != Status.OPEN and self.lines:
            object.__setattr__(self, "lines", ())


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Customer:
    name: str
    email: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Item:
    sku: str
    name: str
    unit_price: Decimal


# The fields a three-way merge compares, per entity type.
INVOICE_FIELDS: tuple[str, ...] = (
    "doc_number",
    "customer_key",
    "currency",
    "issue_date",
    "due_date",
    "lines",
    "memo",
    "status",
)
CUSTOMER_FIELDS: tuple[str, ...] = ("name", "email")
ITEM_FIELDS: tuple[str, ...] = ("sku", "name", "unit_price")


Entity = Invoice | Customer | Item

FIELDS_BY_TYPE: dict[type[Entity], tuple[str, ...]] = {
    Invoice: INVOICE_FIELDS,
    Customer: CUSTOMER_FIELDS,
    Item: ITEM_FIELDS,
}


def fields_of(entity: Entity) -> tuple[str, ...]:
    """Return the merge fields of ``entity``'s type."""
    return FIELDS_BY_TYPE[type(entity)]
