"""Per-entity-type dispatch between the engine and the pure mapping functions.

The engine speaks of "an entity of type T on side S"; this module picks the
mapping function, the API resource name and the natural key for T, so the
engine itself has no per-type branches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ledgerbridge import errors
from ledgerbridge.sync import codec, mapping, merge, model

QBO_NAME = {"invoice": "Invoice", "customer": "Customer", "item": "Item"}
INTERNAL_NAME = {"invoice": "invoices", "customer": "customers", "item": "items"}
MODEL: dict[str, type[Any]] = {
    "invoice": model.Invoice,
    "customer": model.Customer,
    "item": model.Item,
}
# How each side finds a record by its natural key (doc number or name).
QBO_KEY_FIELD = {"invoice": "DocNumber", "customer": "DisplayName", "item": "Name"}
INTERNAL_KEY_FILTER = {"invoice": "number", "customer": "name", "item": "name"}


def type_of(entity: model.Entity) -> str:
    if isinstance(entity, model.Invoice):
        return "invoice"
    if isinstance(entity, model.Customer):
        return "customer"
    return "item"


def natural_key(entity: model.Entity) -> str:
    """The value both systems index a record by: doc number or name."""
    if isinstance(entity, model.Invoice):
        if not entity.doc_number:
            raise errors.MappingError(
                "an invoice without a number cannot be matched across systems; "
                "give it a number (DocNumber in QBO), then replay"
            )
        return entity.doc_number
    return entity.name


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RefMaps:
    """Customer and item ids across the two systems, from their links."""

    customers_q2i: Mapping[str, str]
    items_q2i: Mapping[str, str]

    @property
    def customers_i2q(self) -> dict[str, str]:
        return {i: q for q, i in self.customers_q2i.items()}

    @property
    def items_i2q(self) -> dict[str, str]:
        return {i: q for q, i in self.items_q2i.items()}

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> RefMaps:
        customers: dict[str, str] = {}
        items: dict[str, str] = {}
        for row in rows:
            target = customers if row["entity_type"] == "customer" else items
            target[str(row["qbo_id"])] = str(row["internal_id"])
        return cls(customers_q2i=customers, items_q2i=items)


# Reading ---------------------------------------------------------------------


def internal_to_canonical(entity_type: str, raw: Mapping[str, Any]) -> model.Entity:
    if entity_type == "invoice":
        return mapping.invoice_from_internal(raw)
    if entity_type == "customer":
        return mapping.customer_from_internal(raw)
    return mapping.item_from_internal(raw)


def qbo_to_canonical(
    entity_type: str, raw: Mapping[str, Any], refs: RefMaps
) -> model.Entity:
    if entity_type == "invoice":
        return mapping.invoice_from_qbo(
            raw, customer_keys=refs.customers_q2i, item_keys=refs.items_q2i
        )
    if entity_type == "customer":
        return mapping.customer_from_qbo(raw)
    return mapping.item_from_qbo(raw)


def unlinked_qbo_refs(
    entity_type: str, raw: Mapping[str, Any], refs: RefMaps
) -> list[tuple[str, str]]:
    """QBO customers and items an invoice names that have no link yet."""
    if entity_type != "invoice":
        return []
    try:
        mapping.invoice_from_qbo(
            raw, customer_keys=refs.customers_q2i, item_keys=refs.items_q2i
        )
    except errors.ReferenceError_ as exc:
        return [("customer", c) for c in getattr(exc, "missing_customers", ())] + [
            ("item", i) for i in getattr(exc, "missing_items", ())
        ]
    return []


def unlinked_internal_refs(
    entity: model.Entity, refs: RefMaps
) -> list[tuple[str, str]]:
    """Internal customers and items an invoice names that QBO does not have yet."""
    if not isinstance(entity, model.Invoice):
        return []
    customers = refs.customers_i2q
    items = refs.items_i2q
    missing = (
        [] if entity.customer_key in customers else [("customer", entity.customer_key)]
    )
    for item in sorted({line.item_key for line in entity.lines}):
        if item not in items:
            missing.append(("item", item))
    return missing


def qbo_has_payments(raw: Mapping[str, Any]) -> bool:
    """Has money been received against this QBO invoice?"""
    linked = raw.get("LinkedTxn") or []
    if any(
        str(t.get("TxnType")) == "Payment" for t in linked if isinstance(t, Mapping)
    ):
        return True
    try:
        return codec.parse_decimal(raw.get("Balance", 0)) != codec.parse_decimal(
            raw.get("TotalAmt", 0)
        )
    except ValueError:
        return False


# Writing ---------------------------------------------------------------------


def internal_create_body(entity: model.Entity) -> dict[str, Any]:
    if isinstance(entity, model.Invoice):
        return mapping.invoice_to_internal_create(entity)
    if isinstance(entity, model.Customer):
        return mapping.customer_to_internal_create(entity)
    return mapping.item_to_internal_create(entity)


def internal_patch(current: model.Entity, merged: model.Entity) -> dict[str, Any]:
    if isinstance(merged, model.Invoice):
        assert isinstance(current, model.Invoice)
        return mapping.invoice_to_internal_patch(merged, current)
    if isinstance(merged, model.Customer):
        assert isinstance(current, model.Customer)
        return mapping.customer_to_internal_patch(merged, current)
    assert isinstance(current, model.Item)
    return mapping.item_to_internal_patch(merged, current)


def qbo_create_body(
    entity: model.Entity, refs: RefMaps, *, income_account_id: str
) -> dict[str, Any]:
    if isinstance(entity, model.Invoice):
        return mapping.invoice_to_qbo_create(
            entity, customer_ids=refs.customers_i2q, item_ids=refs.items_i2q
        )
    if isinstance(entity, model.Customer):
        return mapping.customer_to_qbo_create(entity)
    return mapping.item_to_qbo_create(entity, income_account_id=income_account_id)


def qbo_update_body(
    current: model.Entity, merged: model.Entity, raw: Mapping[str, Any], refs: RefMaps
) -> dict[str, Any]:
    qbo_id, token = str(raw["Id"]), str(raw["SyncToken"])
    if isinstance(merged, model.Invoice):
        assert isinstance(current, model.Invoice)
        return mapping.invoice_to_qbo_update(
            merged,
            current,
            qbo_id=qbo_id,
            sync_token=token,
            customer_ids=refs.customers_i2q,
            item_ids=refs.items_i2q,
        )
    if isinstance(merged, model.Customer):
        assert isinstance(current, model.Customer)
        return mapping.customer_to_qbo_update(
            merged, current, qbo_id=qbo_id, sync_token=token
        )
    assert isinstance(current, model.Item)
    return mapping.item_to_qbo_update(merged, current, qbo_id=qbo_id, sync_token=token)


# Conflict values as JSON -----------------------------------------------------


def _template(kind: type[Any]) -> model.Entity:
    if kind is model.Invoice:
        import datetime as dt

        return model.Invoice(
            doc_number="",
            customer_key="",
            currency="",
            issue_date=dt.date(2000, 1, 1),
            due_date=None,
            lines=(),
            memo="",
        )
    if kind is model.Customer:
        return model.Customer(name="", email="")
    return model.Item(sku="", name="", unit_price=Decimal(0))


def field_to_json(kind: type[Any], field: str, value: Any) -> Any:
    """One field's value encoded the way ``codec.to_json`` encodes it."""
    if value is None and field != "due_date":
        return None
    entity = dataclasses.replace(_template(kind), **{field: value})
    return codec.to_json(entity)[field]


def field_from_json(kind: type[Any], field: str, value: Any) -> Any:
    """Decode one field's JSON value; raises ``ValueError`` when malformed."""
    data = codec.to_json(_template(kind))
    if field not in data:
        raise ValueError(f"unknown field {field!r}")
    data[field] = value
    return getattr(codec.from_json(kind, data), field)


def choices_from_json(kind: type[Any], resolution: Mapping[str, Any]) -> dict[str, Any]:
    """A stored resolution ``{field: "internal" | "qbo" | {"value": …}}``."""
    choices: dict[str, Any] = {}
    for field, choice in resolution.items():
        if isinstance(choice, Mapping) and "value" in choice:
            choices[field] = merge.Value(
                value=field_from_json(kind, field, choice["value"])
            )
        elif choice in ("internal", "qbo"):
            choices[field] = choice
        else:
            raise ValueError(f"{field}: choose 'internal', 'qbo' or {{'value': …}}")
    return choices
