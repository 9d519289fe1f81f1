"""Canonical entities to and from plain JSON-able dicts, and Decimal normalisation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

from ledgerbridge.sync import model

E = TypeVar("E", model.Invoice, model.Customer, model.Item)

KIND_BY_TYPE: dict[type[model.Entity], str] = {
    model.Invoice: "invoice",
    model.Customer: "customer",
    model.Item: "item",
}


# Decimals ----------------------------------------------------------------------


def normalize_decimal(value: Decimal) -> Decimal:
    """Return ``value`` without trailing fractional zeros, exactly.

    ``10``, ``10.0`` and ``10.00`` all become ``Decimal("10")``; ``-0`` becomes
    ``0``. Done on the digit tuple rather than with ``Decimal.normalize`` because
    that rounds to the context precision and writes ``100`` as ``1E+2``.

    Raises:
        ValueError: ``value`` is NaN or infinite.
    """
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    if value.is_zero():
        return Decimal(0)
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # unreachable: finite was checked above
        raise ValueError(f"not a finite decimal: {value!r}")
    kept = list(digits)
    while exponent < 0 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    if exponent > 0:
        # Fold a positive exponent into the digits so the form is unique.
        kept.extend([0] * exponent)
        exponent = 0
    return Decimal((sign, tuple(kept), exponent))


def decimal_text(value: Decimal) -> str:
    """Return the normalised plain-notation text of ``value`` (``"10"``, ``"1.5"``)."""
    return format(normalize_decimal(value), "f")


def parse_decimal(value: object) -> Decimal:
    """Read a JSON money or quantity value as a finite ``Decimal``.

    Accepts ``Decimal``, ``int`` and numeric strings. Floats are refused: a
    float has already lost the cents we are meant to carry.

    Raises:
        ValueError: the value is a float, a bool, not numeric, or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"expected a decimal string or number, got {value!r}")
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except ArithmeticError:
        raise ValueError(f"not a decimal: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return result


# Encoding ----------------------------------------------------------------------


def to_json(entity: model.Entity) -> dict[str, Any]:
    """Encode ``entity`` as a dict of str, None, lists and dicts (for jsonb).

    Decimals become their normalised text, dates ISO ``YYYY-MM-DD``, so equal
    entities always encode to equal dicts.
    """
    if isinstance(entity, model.Invoice):
        return {
            "doc_number": entity.doc_number,
            "customer_key": entity.customer_key,
            "currency": entity.currency,
            "issue_date": entity.issue_date.isoformat(),
            "due_date": entity.due_date.isoformat() if entity.due_date else None,
            "lines": [_line_to_json(line) for line in entity.lines],
            "memo": entity.memo,
            "status": entity.status.value,
        }
    if isinstance(entity, model.Customer):
        return {"name": entity.name, "email": entity.email}
    return {
        "sku": entity.sku,
        "name": entity.name,
        "unit_price": decimal_text(entity.unit_price),
    }


def _line_to_json(line: model.Line) -> dict[str, Any]:
    return {
        "item_key": line.item_key,
        "description": line.description,
        "quantity": decimal_text(line.quantity),
        "unit_price": decimal_text(line.unit_price),
        "amount": decimal_text(line.amount),
    }


# Decoding ----------------------------------------------------------------------


def from_json(kind: type[E], data: Mapping[str, Any]) -> E:
    """Decode what ``to_json`` produced back into a ``kind`` entity.

    Raises:
        ValueError: a key is missing or unexpected, or a value is malformed.
    """
    if kind is model.Invoice:
        _expect_keys(data, model.INVOICE_FIELDS)
        due = data["due_date"]
        return model.Invoice(  # type: ignore[return-value]
            doc_number=_str(data["doc_number"]),
            customer_key=_str(data["customer_key"]),
            currency=_str(data["currency"]),
            issue_date=dt.date.fromisoformat(_str(data["issue_date"])),
            due_date=None if due is None else dt.date.fromisoformat(_str(due)),
            lines=tuple(_line_from_json(line) for line in data["lines"]),
            memo=_str(data["memo"]),
            status=model.Status(data["status"]),
        )
    if kind is model.Customer:
        _expect_keys(data, model.CUSTOMER_FIELDS)
        return model.Customer(  # type: ignore[return-value]
            name=_str(data["name"]), email=_str(data["email"])
        )
    _expect_keys(data, model.ITEM_FIELDS)
    return model.Item(  # type: ignore[return-value]
        sku=_str(data["sku"]),
        name=_str(data["name"]),
        unit_price=parse_decimal(data["unit_price"]),
    )


_LINE_KEYS = ("item_key", "description", "quantity", "unit_price", "amount")


def _line_from_json(data: Mapping[str, Any]) -> model.Line:
    _expect_keys(data, _LINE_KEYS)
    return model.Line(
        item_key=_str(data["item_key"]),
        description=_str(data["description"]),
        quantity=parse_decimal(data["quantity"]),
        unit_price=parse_decimal(data["unit_price"]),
        amount=parse_decimal(data["amount"]),
    )


def _expect_keys(data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    # Exact keys: a stored snapshot with extra or missing keys is a bug, not data.
    if set(data) != set(keys):
        raise ValueError(f"expected keys {sorted(keys)}, got {sorted(data)}")


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value
