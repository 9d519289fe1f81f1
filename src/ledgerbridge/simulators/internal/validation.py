"""Parse and check request bodies; money and quantities are decimal strings only."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ledgerbridge.simulators.internal import problems

CENTS = Decimal("0.01")
# Plain decimal notation only: no exponent, no whitespace, no "1_000", which
# Decimal() would otherwise accept and a real invoicing system would not.
DECIMAL_PATTERN = re.compile(r"-?\d+(\.\d+)?")
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")

Validator = Callable[[Any, str, problems.Problems], Any]
_INVALID = object()


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body; floats become Decimal so nothing is ever rounded."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(raw, parse_float=Decimal, parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise problems.ApiError(
            400, "malformed_json", f"request body is not valid JSON: {exc}"
        ) from exc
    if not isinstance(body, dict):
        raise problems.ApiError(400, "malformed_json", "body must be a JSON object")
    return body


def parse_decimal(value: Any, field: str, found: problems.Problems) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float | Decimal):
            found.add(
                field,
                f'must be a JSON string such as "{value}", not a JSON number '
                "(numbers would pass through binary floating point)",
            )
        else:
            found.add(field, "must be a decimal string")
        return None
    if not DECIMAL_PATTERN.fullmatch(value):
        found.add(field, f"{value!r} is not a plain decimal such as 150.00")
        return None
    return Decimal(value)


def parse_date(value: Any, field: str, found: problems.Problems) -> str | None:
    if not isinstance(value, str):
        found.add(field, "must be an ISO date string (YYYY-MM-DD)")
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        found.add(field, f"{value!r} is not an ISO date (YYYY-MM-DD)")
        return None


def parse_timestamp(value: str, field: str) -> dt.datetime:
    """Parse a query timestamp; it must carry a UTC offset to be unambiguous."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise problems.ApiError(
            400, "bad_query", f"{field}={value!r} is not an ISO 8601 timestamp"
        ) from exc
    if moment.tzinfo is None:
        raise problems.ApiError(
            400, "bad_query", f"{field} must include a UTC offset, e.g. ...Z"
        )
    return moment


def _text(*, nullable: bool, required_nonempty: bool = False) -> Validator:
    def check(value: Any, field: str, found: problems.Problems) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            found.add(field, "must be a string" + (" or null" if nullable else ""))
            return _INVALID
        if required_nonempty and not value.strip():
            found.add(field, "must not be empty")
            return _INVALID
        return value

    return check


def _currency(value: Any, field: str, found: problems.Problems) -> Any:
    if not isinstance(value, str) or not CURRENCY_PATTERN.fullmatch(value):
        found.add(field, "must be a three-letter ISO 4217 code such as USD")
        return _INVALID
    return value


def _date(*, nullable: bool) -> Validator:
    def check(value: Any, field: str, found: problems.Problems) -> Any:
        if value is None and nullable:
            return None
        parsed = parse_date(value, field, found)
        return _INVALID if parsed is None else parsed

    return check


def _money_text(value: Any, field: str, found: problems.Problems) -> Any:
    parsed = parse_decimal(value, field, found)
    return _INVALID if parsed is None else value


def _lines(value: Any, field: str, found: problems.Problems) -> Any:
    if not isinstance(value, list) or not value:
        found.add(field, "must be a non-empty list of lines")
        return _INVALID
    lines = [
        _line(line, f"{field}[{index}]", found) for index, line in enumerate(value)
    ]
    return _INVALID if any(line is _INVALID for line in lines) else lines


def _line(value: Any, field: str, found: problems.Problems) -> Any:
    if not isinstance(value, dict):
        found.add(field, "must be an object")
        return _INVALID
    before = len(found.details)
    fields = _check_fields(value, LINE_FIELDS, field, found, partial=False)
    if len(found.details) > before:
        return _INVALID

    # Amount is quantity x unit price rounded half-up to cents; a given amount
    # must agree, so two systems can never disagree about a line's value.
    quantity = Decimal(fields["quantity"])
    unit_price = Decimal(fields["unit_price"])
    computed = (quantity * unit_price).quantize(CENTS, rounding=ROUND_HALF_UP)
    given = fields.get("amount")
    if given is not None and Decimal(given) != computed:
        found.add(
            f"{field}.amount",
            f"{given} does not equal quantity x unit_price = {computed}",
        )
        return _INVALID
    fields["amount"] = str(computed)
    return fields


def _check_fields(
    body: dict[str, Any],
    spec: dict[str, tuple[Validator, bool, Any]],
    prefix: str,
    found: problems.Problems,
    *,
    partial: bool,
) -> dict[str, Any]:
    """Validate ``body`` against ``spec`` (validator, required, default)."""
    joined = f"{prefix}." if prefix else ""
    for unknown in sorted(set(body) - set(spec)):
        found.add(f"{joined}{unknown}", "is not a field that can be written")

    result: dict[str, Any] = {}
    for name, (validator, required, default) in spec.items():
        if name not in body:
            if partial:
                continue
            if required:
                found.add(f"{joined}{name}", "is required")
                continue
            result[name] = default
            continue
        value = validator(body[name], f"{joined}{name}", found)
        if value is not _INVALID:
            result[name] = value
    return result


LINE_FIELDS: dict[str, tuple[Validator, bool, Any]] = {
    "item_id": (_text(nullable=False, required_nonempty=True), True, None),
    "description": (_text(nullable=True), False, None),
    "quantity": (_money_text, True, None),
    "unit_price": (_money_text, True, None),
    "amount": (_money_text, False, None),
}

INVOICE_FIELDS: dict[str, tuple[Validator, bool, Any]] = {
    "number": (_text(nullable=False, required_nonempty=True), True, None),
    "customer_id": (_text(nullable=False, required_nonempty=True), True, None),
    "currency": (_currency, False, "USD"),
    "issue_date": (_date(nullable=False), True, None),
    "due_date": (_date(nullable=True), False, None),
    "lines": (_lines, True, None),
    "memo": (_text(nullable=True), False, None),
}

CUSTOMER_FIELDS: dict[str, tuple[Validator, bool, Any]] = {
    "name": (_text(nullable=False, required_nonempty=True), True, None),
    "email": (_text(nullable=True), False, None),
}

ITEM_FIELDS: dict[str, tuple[Validator, bool, Any]] = {
    "sku": (_text(nullable=True), False, None),
    "name": (_text(nullable=False, required_nonempty=True), True, None),
    "unit_price": (_money_text, True, None),
}

FIELDS_BY_COLLECTION = {
    "invoices": INVOICE_FIELDS,
    "customers": CUSTOMER_FIELDS,
    "items": ITEM_FIELDS,
}


def validate_body(
    collection: str, body: dict[str, Any], *, partial: bool
) -> dict[str, Any]:
    """Return the normalised writable fields of ``body`` or raise a 422.

    ``partial`` is for PATCH: absent fields stay as they are. On create,
    ``status`` may be given only as ``"open"``, so a read body can be echoed.
    """
    body = dict(body)
    found = problems.Problems()
    if collection == "invoices" and "status" in body:
        status = body.pop("status")
        if partial or status != "open":
            found.add(
                "status",
                "cannot be written; use POST .../void or DELETE to change it",
            )
    fields = _check_fields(
        body, FIELDS_BY_COLLECTION[collection], "", found, partial=partial
    )
    found.raise_if_any()
    return fields
