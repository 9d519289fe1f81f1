"""Pure translation between internal JSON, QBO JSON and the canonical model.

Every payload key used here comes from ``ownership``'s tables, so that table
is the one place saying which keys are synced. References are translated
through maps the caller passes in (built from the customer and item links);
nothing here does I/O.

Rules worth knowing before reading the code:

- **Void in QBO.** QBO has no status field. Voiding keeps the invoice, zeroes
  every line's quantity and amount and writes "Voided" into ``PrivateNote``.
  We call a QBO invoice void when ``PrivateNote`` contains "Voided" (as QBO
  writes it, case-sensitive) *and* ``TotalAmt`` is zero. Limits: a user who
  writes "Voided" in the private note of a genuinely zero-total invoice makes
  it look void; a user who edits "Voided" out of a voided invoice's note makes
  it look open with zeroed lines. Both need a person and are rare.
- **Void lines.** ``model.Invoice`` drops the lines of a void or deleted
  invoice, so QBO's zeroed lines and the internal system's kept lines both
  become ``()`` and never differ. As a consequence status changes are not
  written by the update builders: the engine calls QBO ``operation=void`` /
  ``delete`` and the internal ``/void`` / ``DELETE`` endpoints itself, and
  neither side can be reopened through us.
- **Deleted in QBO.** A deleted QBO invoice is only a stub
  (``{"Id", "status": "Deleted"}``); the engine builds its canonical form from
  the base with ``as_deleted``.
- **Line arithmetic.** QBO rejects a line whose ``Amount`` is not
  ``round_half_up(Qty x UnitPrice, 2)`` (fault 6070), so the QBO builders check
  it and raise ``MappingError`` instead of sending a write QBO will refuse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, NoReturn

from ledgerbridge import errors
from ledgerbridge.sync import codec, model, ownership

DOC_NUMBER_MAX_CHARS = 21
CUSTOMER_MEMO_MAX_CHARS = 1000
QBO_VOID_MARKER = "Voided"
DEFAULT_HOME_CURRENCY = "USD"

_CENT = Decimal("0.01")
# Wide enough that Qty x UnitPrice is never rounded before we round it on purpose.
_EXACT = Context(prec=60, rounding=ROUND_HALF_UP)

# Canonical field -> payload key, per table (see ownership).
_QI = ownership.synced_keys(ownership.QBO_INVOICE)
_QL = ownership.synced_keys(ownership.QBO_INVOICE_LINE)
_QS = ownership.synced_keys(ownership.QBO_SALES_ITEM_LINE_DETAIL)
_QC = ownership.synced_keys(ownership.QBO_CUSTOMER)
_QT = ownership.synced_keys(ownership.QBO_ITEM)
_II = ownership.synced_keys(ownership.INTERNAL_INVOICE)
_IL = ownership.synced_keys(ownership.INTERNAL_INVOICE_LINE)
_IC = ownership.synced_keys(ownership.INTERNAL_CUSTOMER)
_IT = ownership.synced_keys(ownership.INTERNAL_ITEM)
_SALES_DETAIL = "SalesItemLineDetail"
_QBO_UPDATE_ENVELOPE = frozenset({"Id", "SyncToken", "sparse"})


# Shared readers ----------------------------------------------------------------


def _fail(entity: str, field: str, reason: str) -> NoReturn:
    raise errors.MappingError(f"{entity}.{field}: {reason}", entity=entity, field=field)


def _present(payload: Mapping[str, Any], key: str, entity: str, field: str) -> Any:
    value = payload.get(key)
    if value is None:
        _fail(entity, field, f"{key!r} is missing")
    return value


def _text(value: Any, entity: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail(entity, field, f"expected a string, got {value!r}")
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL, so the agreed state could never be
        # stored; refuse before anything is written to the other side.
        _fail(entity, field, "contains a NUL character; remove it, then replay")
    return value


def _number(value: Any, entity: str, field: str) -> Decimal:
    """Read a quantity or price: any precision, normalised (10.00 -> 10)."""
    try:
        return codec.normalize_decimal(codec.parse_decimal(value))
    except ValueError as exc:
        _fail(entity, field, str(exc))


def _money(value: Any, entity: str, field: str) -> Decimal:
    """Read an amount: whole cents, always with two decimals."""
    number = _number(value, entity, field)
    cents = number.quantize(_CENT, context=_EXACT)
    if cents != number:
        _fail(entity, field, f"{value!r} is not a whole number of cents")
    return cents


def _date(value: Any, entity: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(_text(value, entity, field))
    except ValueError:
        _fail(entity, field, f"expected a YYYY-MM-DD date, got {value!r}")


def _optional_date(value: Any, entity: str, field: str) -> dt.date | None:
    return None if value in (None, "") else _date(value, entity, field)


def _object(value: Any, entity: str, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(entity, field, f"expected an object, got {value!r}")
    return value


def _ref_value(value: Any, entity: str, field: str) -> str:
    """Read a QBO reference object ``{"value": "42", "name": ...}``."""
    ref = _object(value, entity, field)
    return _text(_present(ref, "value", entity, field), entity, field)


def _changed(new: model.Entity, old: model.Entity) -> list[str]:
    return [f for f in model.fields_of(new) if getattr(new, f) != getattr(old, f)]


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """Return ``round_half_up(quantity x unit_price, 2)``, the amount QBO expects."""
    return _EXACT.multiply(quantity, unit_price).quantize(_CENT, context=_EXACT)


def as_deleted(invoice: model.Invoice) -> model.Invoice:
    """Return ``invoice`` marked deleted (for a side that only says "deleted")."""
    return dataclasses.replace(invoice, status=model.Status.DELETED)


# Internal invoice --------------------------------------------------------------


def invoice_from_internal(payload: Mapping[str, Any]) -> model.Invoice:
    """Map an internal invoice JSON (amounts as strings) to canonical.

    A missing line ``amount`` is computed as ``round_half_up(qty x price, 2)``.

    Raises:
        MappingError: a field is missing or malformed (the field is named).
    """
    e = "invoice"
    raw_lines = payload.get(_II["lines"]) or []
    if not isinstance(raw_lines, list):
        _fail(e, "lines", f"expected a list, got {raw_lines!r}")
    return model.Invoice(
        doc_number=_text(payload.get(_II["doc_number"]), e, "doc_number"),
        customer_key=_text(
            _present(payload, _II["customer_key"], e, "customer_key"), e, "customer_key"
        ),
        currency=_text(
            _present(payload, _II["currency"], e, "currency"), e, "currency"
        ),
        issue_date=_date(
            _present(payload, _II["issue_date"], e, "issue_date"), e, "issue_date"
        ),
        due_date=_optional_date(payload.get(_II["due_date"]), e, "due_date"),
        lines=tuple(_line_from_internal(_object(raw, e, "lines")) for raw in raw_lines),
        memo=_text(payload.get(_II["memo"]), e, "memo"),
        status=_status(payload.get(_II["status"], "open")),
    )


def _status(value: Any) -> model.Status:
    try:
        return model.Status(value)
    except ValueError:
        _fail("invoice", "status", f"expected open, void or deleted, got {value!r}")


def _line_from_internal(raw: Mapping[str, Any]) -> model.Line:
    e = "invoice.lines"
    quantity = _number(_present(raw, _IL["quantity"], e, "quantity"), e, "quantity")
    unit_price = _number(
        _present(raw, _IL["unit_price"], e, "unit_price"), e, "unit_price"
    )
    amount = raw.get(_IL["amount"])
    return model.Line(
        item_key=_text(_present(raw, _IL["item_key"], e, "item_key"), e, "item_key"),
        description=_text(raw.get(_IL["description"]), e, "description"),
        quantity=quantity,
        unit_price=unit_price,
        amount=(
            line_amount(quantity, unit_price)
            if amount is None
            else _money(amount, e, "amount")
        ),
    )


def _internal_price_text(value: Decimal) -> str:
    # The internal system writes prices with at least two decimals ("150.00").
    whole, _, fraction = codec.decimal_text(value).partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _internal_invoice_value(invoice: model.Invoice, field: str) -> Any:
    if field == "issue_date":
        return invoice.issue_date.isoformat()
    if field == "due_date":
        return invoice.due_date.isoformat() if invoice.due_date else None
    if field == "status":
        return invoice.status.value
    if field == "lines":
        return [
            {
                _IL["item_key"]: line.item_key,
                _IL["description"]: line.description,
                _IL["quantity"]: codec.decimal_text(line.quantity),
                _IL["unit_price"]: _internal_price_text(line.unit_price),
                _IL["amount"]: format(line.amount.quantize(_CENT), "f"),
            }
            for line in invoice.lines
        ]
    return getattr(invoice, field)


def invoice_to_internal_create(invoice: model.Invoice) -> dict[str, Any]:
    """Build the internal ``POST /api/invoices`` body (all synced fields)."""
    return {
        _II[field]: _internal_invoice_value(invoice, field)
        for field in model.INVOICE_FIELDS
    }


def invoice_to_internal_patch(
    invoice: model.Invoice, previous: model.Invoice
) -> dict[str, Any]:
    """Build the internal ``PATCH`` body: the fields of ``invoice`` that differ
    from ``previous`` (what the internal system holds now).

    ``status`` is never patched (the engine calls ``/void`` or ``DELETE``), and
    lines are left alone when ``invoice`` is not open. An empty dict means
    nothing to patch.

    Raises:
        MappingError: ``invoice`` would reopen a void or deleted invoice.
    """
    _refuse_reopen(invoice, previous)
    return {
        _II[field]: _internal_invoice_value(invoice, field)
        for field in _writable_invoice_fields(invoice, previous)
    }


def _refuse_reopen(invoice: model.Invoice, previous: model.Invoice) -> None:
    if previous.status != model.Status.OPEN and invoice.status == model.Status.OPEN:
        _fail("invoice", "status", f"cannot reopen a {previous.status} invoice")


def _writable_invoice_fields(
    invoice: model.Invoice, previous: model.Invoice
) -> list[str]:
    skip = {"status"} if invoice.status == model.Status.OPEN else {"status", "lines"}
    return [f for f in _changed(invoice, previous) if f not in skip]


# QBO invoice: reading ----------------------------------------------------------


def is_qbo_void(payload: Mapping[str, Any]) -> bool:
    """Tell whether a QBO invoice was voided: "Voided" in PrivateNote and TotalAmt 0.

    See the module docstring for the limits of this rule.
    """
    note = payload.get("PrivateNote")
    total = payload.get("TotalAmt")
    if not isinstance(note, str) or QBO_VOID_MARKER not in note or total is None:
        return False
    try:
        return codec.parse_decimal(total).is_zero()
    except ValueError:
        return False


def invoice_from_qbo(
    payload: Mapping[str, Any],
    *,
    customer_keys: Mapping[str, str],
    item_keys: Mapping[str, str],
    home_currency: str = DEFAULT_HOME_CURRENCY,
) -> model.Invoice:
    """Map a QBO Invoice (numbers as Decimal, int or str) to canonical.

    ``customer_keys`` and ``item_keys`` map QBO ids to internal ids. Computed
    fields and the SubTotal line are ignored. A void invoice's lines are not
    read at all (they are zeroed), so their items need no link.
    ``home_currency`` stands in for an absent ``CurrencyRef`` (multicurrency off).

    Raises:
        ReferenceError_: customers or items have no link yet; carries the QBO
            ids as ``missing_customers`` and ``missing_items`` (tuples).
        MappingError: a field is malformed or too long, a line type cannot be
            represented, or ``payload`` is a deletion stub.
    """
    e = "invoice"
    if payload.get(_QI["status"]) == "Deleted":
        _fail(e, "status", "a QBO deletion stub has no fields; use as_deleted(base)")
    void = is_qbo_void(payload)
    sales_lines = [] if void else _qbo_sales_lines(payload)

    # Resolve every reference first, so one error names all missing links.
    customer = _ref_value(
        _present(payload, _QI["customer_key"], e, "customer_key"), e, "customer_key"
    )
    items = [_qbo_line_item(line) for line in sales_lines]
    missing_customers = () if customer in customer_keys else (customer,)
    missing_items = tuple(sorted({i for i in items if i not in item_keys}))
    if missing_customers or missing_items:
        raise errors.ReferenceError_(
            f"unlinked QBO references: customers {list(missing_customers)}, "
            f"items {list(missing_items)}",
            missing_customers=missing_customers,
            missing_items=missing_items,
            id_side="qbo",
        )

    currency_ref = payload.get(_QI["currency"])
    memo = payload.get(_QI["memo"])
    return model.Invoice(
        doc_number=_text(payload.get(_QI["doc_number"]), e, "doc_number"),
        customer_key=customer_keys[customer],
        currency=(
            home_currency
            if currency_ref is None
            else _ref_value(currency_ref, e, "currency")
        ),
        issue_date=_date(
            _present(payload, _QI["issue_date"], e, "issue_date"), e, "issue_date"
        ),
        due_date=_optional_date(payload.get(_QI["due_date"]), e, "due_date"),
        lines=tuple(
            _line_from_qbo(line, item_keys[item])
            for line, item in zip(sales_lines, items, strict=True)
        ),
        memo=""
        if memo is None
        else _text(_object(memo, e, "memo").get("value"), e, "memo"),
        status=model.Status.VOID if void else model.Status.OPEN,
    )


def _qbo_sales_lines(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the SalesItemLineDetail lines; skip SubTotal, refuse the rest."""
    raw_lines = payload.get(_QI["lines"]) or []
    if not isinstance(raw_lines, list):
        _fail("invoice", "lines", f"expected a list, got {raw_lines!r}")
    kept = []
    for raw in raw_lines:
        line = _object(raw, "invoice", "lines")
        detail_type = line.get("DetailType")
        owner = ownership.QBO_LINE_DETAIL_TYPES.get(str(detail_type))
        if owner is ownership.Owner.QBO_COMPUTED:
            continue
        if owner is not ownership.Owner.SYNCED:
            # Dropping a discount or text line would silently change what the
            # customer is billed or told; a person has to decide.
            _fail(
                "invoice",
                "lines",
                f"line type {detail_type!r} cannot be synced "
                "(only SalesItemLineDetail lines are supported)",
            )
        kept.append(line)
    return kept


def _qbo_line_item(line: Mapping[str, Any]) -> str:
    e = "invoice.lines"
    detail = _object(_present(line, _SALES_DETAIL, e, "item_key"), e, "item_key")
    return _ref_value(_present(detail, _QS["item_key"], e, "item_key"), e, "item_key")


def _line_from_qbo(line: Mapping[str, Any], item_key: str) -> model.Line:
    e = "invoice.lines"
    detail = _object(line[_SALES_DETAIL], e, "item_key")
    amount = _money(_present(line, _QL["amount"], e, "amount"), e, "amount")
    raw_qty, raw_price = detail.get(_QS["quantity"]), detail.get(_QS["unit_price"])
    if raw_qty is None and raw_price is None:
        # An amount-only line (possible through the API) reads as one unit.
        quantity, unit_price = Decimal(1), codec.normalize_decimal(amount)
    elif raw_price is None:
        # QBO accepts Qty with Amount and no UnitPrice; the price is implied.
        quantity = _number(raw_qty, e, "quantity")
        unit_price = _implied_price(amount, quantity)
    else:
        quantity = _number(raw_qty, e, "quantity")
        unit_price = _number(raw_price, e, "unit_price")
    return model.Line(
        item_key=item_key,
        description=_text(line.get(_QL["description"]), e, "description"),
        quantity=quantity,
        unit_price=unit_price,
        amount=amount,
    )


def _implied_price(amount: Decimal, quantity: Decimal) -> Decimal:
    """Amount / quantity, when a price of at most 5 decimals reproduces the
    amount the way QBO checks it; otherwise the line cannot be carried."""
    if quantity.is_zero():
        _fail("invoice.lines", "unit_price", "missing, and quantity 0 implies none")
    price = codec.normalize_decimal(
        (amount / quantity).quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)
    )
    if line_amount(quantity, price) != amount:
        _fail(
            "invoice.lines",
            "unit_price",
            f"missing, and no price reproduces {amount} for quantity {quantity}; "
            "set the unit price on the line in QBO, then replay",
        )
    return price


# QBO invoice: writing ----------------------------------------------------------


def _check_qbo_invoice(invoice: model.Invoice, fields: Collection[str]) -> None:
    """Refuse what QBO would refuse: field lengths, empty or inconsistent lines."""
    if "doc_number" in fields and len(invoice.doc_number) > DOC_NUMBER_MAX_CHARS:
        _fail("invoice", "doc_number", f"longer than {DOC_NUMBER_MAX_CHARS} characters")
    if "memo" in fields and len(invoice.memo) > CUSTOMER_MEMO_MAX_CHARS:
        _fail("invoice", "memo", f"longer than {CUSTOMER_MEMO_MAX_CHARS} characters")
    if "lines" not in fields:
        return
    if not invoice.lines:
        _fail("invoice", "lines", "QBO requires at least one line")
    for number, line in enumerate(invoice.lines, start=1):
        expected = line_amount(line.quantity, line.unit_price)
        if line.amount != expected:
            _fail(
                "invoice",
                "lines",
                f"line {number}: amount {line.amount} != round_half_up("
                f"{line.quantity} x {line.unit_price}, 2) = {expected} "
                "(QBO would reject it with 6070)",
            )


def _check_qbo_references(
    invoice: model.Invoice,
    fields: Collection[str],
    customer_ids: Mapping[str, str],
    item_ids: Mapping[str, str],
) -> None:
    customers = [invoice.customer_key] if "customer_key" in fields else []
    items = [line.item_key for line in invoice.lines] if "lines" in fields else []
    missing_customers = tuple(sorted({c for c in customers if c not in customer_ids}))
    missing_items = tuple(sorted({i for i in items if i not in item_ids}))
    if missing_customers or missing_items:
        raise errors.ReferenceError_(
            f"no QBO counterpart for internal customers {list(missing_customers)}, "
            f"items {list(missing_items)}",
            missing_customers=missing_customers,
            missing_items=missing_items,
            id_side="internal",
        )


def _qbo_invoice_value(
    invoice: model.Invoice,
    field: str,
    customer_ids: Mapping[str, str],
    item_ids: Mapping[str, str],
) -> Any:
    if field == "customer_key":
        return {"value": customer_ids[invoice.customer_key]}
    if field == "currency":
        return {"value": invoice.currency}
    if field == "issue_date":
        return invoice.issue_date.isoformat()
    if field == "due_date":
        return invoice.due_date.isoformat() if invoice.due_date else None
    if field == "memo":
        return {"value": invoice.memo}
    if field == "lines":
        return [
            {
                "DetailType": _SALES_DETAIL,
                _QL["amount"]: line.amount,
                _QL["description"]: line.description,
                _SALES_DETAIL: {
                    _QS["item_key"]: {"value": item_ids[line.item_key]},
                    _QS["quantity"]: line.quantity,
                    _QS["unit_price"]: line.unit_price,
                },
            }
            for line in invoice.lines
        ]
    return getattr(invoice, field)


def invoice_to_qbo_create(
    invoice: model.Invoice,
    *,
    customer_ids: Mapping[str, str],
    item_ids: Mapping[str, str],
) -> dict[str, Any]:
    """Build a QBO Invoice create body (amounts as Decimal).

    ``customer_ids`` and ``item_ids`` map internal ids to QBO ids. An empty
    doc number, memo or due date is left out (QBO numbers or defaults it).

    Raises:
        ReferenceError_: internal ids without a QBO counterpart
            (``missing_customers``, ``missing_items``, ``id_side="internal"``).
        MappingError: the invoice is not open (a void canonical invoice has no
            lines left to create), has no lines, a line amount is
            not ``round_half_up(qty x price, 2)``, or a field is too long.
    """
    if invoice.status != model.Status.OPEN:
        _fail("invoice", "status", f"a {invoice.status} invoice is not created in QBO")
    fields = model.INVOICE_FIELDS
    _check_qbo_invoice(invoice, fields)
    _check_qbo_references(invoice, fields, customer_ids, item_ids)
    body: dict[str, Any] = {}
    for field in fields:
        value = getattr(invoice, field)
        if field == "status" or value in ("", None):
            continue
        body[_QI[field]] = _qbo_invoice_value(invoice, field, customer_ids, item_ids)
    return body


def invoice_to_qbo_update(
    invoice: model.Invoice,
    previous: model.Invoice,
    *,
    qbo_id: str,
    sync_token: str,
    customer_ids: Mapping[str, str],
    item_ids: Mapping[str, str],
) -> dict[str, Any]:
    """Build a QBO sparse update: changed fields plus ``Id``, ``SyncToken``, ``sparse``.

    ``previous`` is the canonical form of what QBO holds now. Sending ``Line``
    replaces all of QBO's lines. ``status`` is never in the body (the engine
    calls ``operation=void``/``delete``), nor are lines when ``invoice`` is not
    open. Check ``is_noop_qbo_update`` before sending.

    Raises:
        ReferenceError_: as for ``invoice_to_qbo_create``.
        MappingError: as for ``invoice_to_qbo_create``, or the update would
            reopen a void invoice.
    """
    _refuse_reopen(invoice, previous)
    fields = _writable_invoice_fields(invoice, previous)
    _check_qbo_invoice(invoice, fields)
    _check_qbo_references(invoice, fields, customer_ids, item_ids)
    # TODO(qbo-lines): rewritten lines lose QBO-only line data (TaxCodeRef,
    # ServiceDate, ClassRef) because lines carry no shared identity; QBO then
    # applies its defaults, which may change tax on the invoice.
    body: dict[str, Any] = {"Id": qbo_id, "SyncToken": sync_token, "sparse": True}
    for field in fields:
        body[_QI[field]] = _qbo_invoice_value(invoice, field, customer_ids, item_ids)
    return body


def is_noop_qbo_update(body: Mapping[str, Any]) -> bool:
    """Tell whether a sparse update body changes nothing (only Id/SyncToken/sparse)."""
    return set(body) <= _QBO_UPDATE_ENVELOPE


# Customers ---------------------------------------------------------------------


def customer_from_internal(payload: Mapping[str, Any]) -> model.Customer:
    """Map an internal customer ``{id, name, email, version}`` to canonical."""
    e = "customer"
    return model.Customer(
        name=_text(_present(payload, _IC["name"], e, "name"), e, "name"),
        email=_text(payload.get(_IC["email"]), e, "email"),
    )


def customer_to_internal_create(customer: model.Customer) -> dict[str, Any]:
    """Build the internal ``POST /api/customers`` body."""
    return {_IC[f]: getattr(customer, f) for f in model.CUSTOMER_FIELDS}


def customer_to_internal_patch(
    customer: model.Customer, previous: model.Customer
) -> dict[str, Any]:
    """Build the internal customer ``PATCH`` body (changed fields only)."""
    return {_IC[f]: getattr(customer, f) for f in _changed(customer, previous)}


def customer_from_qbo(payload: Mapping[str, Any]) -> model.Customer:
    """Map a QBO Customer (``DisplayName``, ``PrimaryEmailAddr.Address``) to canonical."""
    e = "customer"
    email = payload.get(_QC["email"])
    return model.Customer(
        name=_text(_present(payload, _QC["name"], e, "name"), e, "name"),
        email=""
        if email is None
        else _text(_object(email, e, "email").get("Address"), e, "email"),
    )


def _qbo_customer_value(customer: model.Customer, field: str) -> Any:
    if field == "email":
        return {"Address": customer.email}
    return getattr(customer, field)


def customer_to_qbo_create(customer: model.Customer) -> dict[str, Any]:
    """Build a QBO Customer create body (active; no email object when empty)."""
    body: dict[str, Any] = {"Active": True}
    for field in model.CUSTOMER_FIELDS:
        if getattr(customer, field) != "":
            body[_QC[field]] = _qbo_customer_value(customer, field)
    return body


def customer_to_qbo_update(
    customer: model.Customer,
    previous: model.Customer,
    *,
    qbo_id: str,
    sync_token: str,
) -> dict[str, Any]:
    """Build a QBO Customer sparse update of the fields that differ from ``previous``."""
    body: dict[str, Any] = {"Id": qbo_id, "SyncToken": sync_token, "sparse": True}
    for field in _changed(customer, previous):
        body[_QC[field]] = _qbo_customer_value(customer, field)
    return body


# Items -------------------------------------------------------------------------


def item_from_internal(payload: Mapping[str, Any]) -> model.Item:
    """Map an internal item ``{id, sku, name, unit_price, version}`` to canonical."""
    e = "item"
    return model.Item(
        sku=_text(payload.get(_IT["sku"]), e, "sku"),
        name=_text(_present(payload, _IT["name"], e, "name"), e, "name"),
        unit_price=_number(payload.get(_IT["unit_price"], "0"), e, "unit_price"),
    )


def _internal_item_value(item: model.Item, field: str) -> Any:
    if field == "unit_price":
        return _internal_price_text(item.unit_price)
    return getattr(item, field)


def item_to_internal_create(item: model.Item) -> dict[str, Any]:
    """Build the internal ``POST /api/items`` body (price as a string)."""
    return {_IT[f]: _internal_item_value(item, f) for f in model.ITEM_FIELDS}


def item_to_internal_patch(item: model.Item, previous: model.Item) -> dict[str, Any]:
    """Build the internal item ``PATCH`` body (changed fields only)."""
    return {_IT[f]: _internal_item_value(item, f) for f in _changed(item, previous)}


def item_from_qbo(payload: Mapping[str, Any]) -> model.Item:
    """Map a QBO Item (``Name``, ``Sku``, ``UnitPrice``) to canonical."""
    e = "item"
    return model.Item(
        sku=_text(payload.get(_QT["sku"]), e, "sku"),
        name=_text(_present(payload, _QT["name"], e, "name"), e, "name"),
        unit_price=_number(payload.get(_QT["unit_price"], 0), e, "unit_price"),
    )


def item_to_qbo_create(item: model.Item, *, income_account_id: str) -> dict[str, Any]:
    """Build a QBO Item create body: a Service item booked to ``income_account_id``."""
    body: dict[str, Any] = {
        "Type": "Service",
        "IncomeAccountRef": {"value": income_account_id},
        "Active": True,
    }
    body.update(_qbo_item_fields(item, model.ITEM_FIELDS))
    return body


def item_to_qbo_update(
    item: model.Item, previous: model.Item, *, qbo_id: str, sync_token: str
) -> dict[str, Any]:
    """Build a QBO Item sparse update of the fields that differ from ``previous``."""
    body: dict[str, Any] = {"Id": qbo_id, "SyncToken": sync_token, "sparse": True}
    body.update(_qbo_item_fields(item, _changed(item, previous)))
    return body


def _qbo_item_fields(item: model.Item, fields: Iterable[str]) -> dict[str, Any]:
    return {_QT[f]: getattr(item, f) for f in fields}
