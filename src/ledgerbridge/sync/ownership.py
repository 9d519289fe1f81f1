"""Who owns every field on each side: the single table the mapping reads its keys from.

Each payload key of each side is classified:

- ``SYNCED``: carries one canonical field (named in ``Rule.field``) and is
  compared and written both ways. Container keys the mapping walks into
  (``DetailType``, ``SalesItemLineDetail``) are ``SYNCED`` without a field.
- ``QBO_COMPUTED``: QBO computes or assigns it (totals, balance, tokens,
  metadata, the SubTotal line). Never compared, never written. A payment
  applied in QBO only moves these, so it produces no canonical difference.
- ``QBO_ONLY``: a QBO user's own data that the internal system has no place
  for (PrivateNote, addresses, tax codes...). Never compared; only written
  with a fixed default on create where QBO requires it.
- ``INTERNAL_ONLY``: the internal system's bookkeeping (id, version,
  updated_at). Held in the link, never compared.
- ``UNSUPPORTED``: content the canonical model cannot represent (discount,
  description-only and group lines). The mapping refuses the record with a
  ``MappingError`` instead of dropping it silently.

Keys not in a table are unknown: the mapping ignores them (QBO adds fields in
new minor versions) and the tests check that recorded samples hold none.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping


class Owner(enum.StrEnum):
    SYNCED = "synced"
    QBO_COMPUTED = "qbo_computed"
    QBO_ONLY = "qbo_only"
    INTERNAL_ONLY = "internal_only"
    UNSUPPORTED = "unsupported"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    owner: Owner
    field: str | None = None
    note: str = ""


def _synced(field: str | None, note: str = "") -> Rule:
    return Rule(owner=Owner.SYNCED, field=field, note=note)


def _computed(note: str = "") -> Rule:
    return Rule(owner=Owner.QBO_COMPUTED, note=note)


def _qbo_only(note: str = "") -> Rule:
    return Rule(owner=Owner.QBO_ONLY, note=note)


def _internal_only(note: str = "") -> Rule:
    return Rule(owner=Owner.INTERNAL_ONLY, note=note)


Table = Mapping[str, Rule]

# QBO Invoice -------------------------------------------------------------------

QBO_INVOICE: Table = {
    "DocNumber": _synced("doc_number", "max 21 characters"),
    "CustomerRef": _synced("customer_key", ".value, through the customer link"),
    "CurrencyRef": _synced("currency", ".value; absent without multicurrency"),
    "TxnDate": _synced("issue_date"),
    "DueDate": _synced("due_date"),
    "CustomerMemo": _synced("memo", ".value, max 1000 characters"),
    "Line": _synced("lines", "SalesItemLineDetail lines; see QBO_INVOICE_LINE"),
    "status": _synced("status", "only on CDC deletion stubs: 'Deleted'"),
    "Id": _computed("identity, held in the link"),
    "SyncToken": _computed("concurrency token, held in the link"),
    "domain": _computed(),
    "sparse": _computed(),
    "MetaData": _computed("create and update times"),
    "TotalAmt": _computed("read only to detect a void"),
    "Balance": _computed("moves when payments are applied"),
    "HomeTotalAmt": _computed(),
    "HomeBalance": _computed(),
    "TxnTaxDetail": _computed("recomputed by automated sales tax"),
    "LinkedTxn": _computed("payments, estimates"),
    "EmailStatus": _computed(),
    "PrintStatus": _computed(),
    "DeliveryInfo": _computed(),
    "InvoiceLink": _computed(),
    "PrivateNote": _qbo_only("read only to detect a void ('Voided')"),
    "BillEmail": _qbo_only(),
    "BillEmailCc": _qbo_only(),
    "BillEmailBcc": _qbo_only(),
    "BillAddr": _qbo_only(),
    "ShipAddr": _qbo_only(),
    "ShipFromAddr": _qbo_only(),
    "ShipDate": _qbo_only(),
    "ShipMethodRef": _qbo_only(),
    "TrackingNum": _qbo_only(),
    "SalesTermRef": _qbo_only(),
    "CustomField": _qbo_only(),
    "ClassRef": _qbo_only(),
    "DepartmentRef": _qbo_only(),
    "ProjectRef": _qbo_only(),
    "ApplyTaxAfterDiscount": _qbo_only(),
    "GlobalTaxCalculation": _qbo_only(),
    "TaxExemptionRef": _qbo_only(),
    "AllowOnlinePayment": _qbo_only(),
    "AllowOnlineCreditCardPayment": _qbo_only(),
    "AllowOnlineACHPayment": _qbo_only(),
    "AllowIPNPayment": _qbo_only(),
    "Deposit": _qbo_only(),
    "DepositToAccountRef": _qbo_only(),
    "ExchangeRate": _qbo_only("home units per foreign unit"),
    "RecurDataRef": _qbo_only(),
    "TransactionLocationType": _qbo_only(),
}

QBO_INVOICE_LINE: Table = {
    "Description": _synced("description"),
    "Amount": _synced("amount", "must equal round_half_up(Qty x UnitPrice, 2)"),
    "DetailType": _synced(None, "selects the detail object; see QBO_LINE_DETAIL_TYPES"),
    "SalesItemLineDetail": _synced(None, "see QBO_SALES_ITEM_LINE_DETAIL"),
    "Id": _computed("server-assigned; new lines get new ids"),
    "LineNum": _computed(),
    "LinkedTxn": _computed(),
    "SubTotalLineDetail": _computed("QBO appends a SubTotal line to every read"),
    "DiscountLineDetail": Rule(owner=Owner.UNSUPPORTED),
    "DescriptionLineDetail": Rule(owner=Owner.UNSUPPORTED),
    "GroupLineDetail": Rule(owner=Owner.UNSUPPORTED),
}

# What each ``Line[].DetailType`` means to the sync.
QBO_LINE_DETAIL_TYPES: Mapping[str, Owner] = {
    "SalesItemLineDetail": Owner.SYNCED,
    "SubTotalLineDetail": Owner.QBO_COMPUTED,
    "DiscountLineDetail": Owner.UNSUPPORTED,
    "DescriptionOnly": Owner.UNSUPPORTED,
    "GroupLineDetail": Owner.UNSUPPORTED,
}

QBO_SALES_ITEM_LINE_DETAIL: Table = {
    "ItemRef": _synced("item_key", ".value, through the item link"),
    "Qty": _synced("quantity"),
    "UnitPrice": _synced("unit_price"),
    # Rewriting lines (a sparse update sends them all) resets these to QBO's
    # defaults; see the TODO in mapping.invoice_to_qbo_update.
    "TaxCodeRef": _qbo_only("lost when our lines replace QBO's"),
    "ServiceDate": _qbo_only(),
    "ClassRef": _qbo_only(),
    "PriceLevelRef": _qbo_only(),
    "MarkupInfo": _qbo_only(),
    "ItemAccountRef": _qbo_only(),
    "TaxClassificationRef": _qbo_only(),
}

# QBO Customer and Item ---------------------------------------------------------

QBO_CUSTOMER: Table = {
    "DisplayName": _synced("name", "unique across customers, vendors, employees"),
    "PrimaryEmailAddr": _synced("email", ".Address"),
    "Active": _qbo_only("written true on create; false is QBO's 'deleted'"),
    "Id": _computed("identity, held in the link"),
    "SyncToken": _computed("concurrency token, held in the link"),
    "domain": _computed(),
    "sparse": _computed(),
    "MetaData": _computed(),
    "Balance": _computed(),
    "BalanceWithJobs": _computed(),
    "FullyQualifiedName": _computed(),
    "Job": _computed(),
    "BillWithParent": _qbo_only(),
    "ParentRef": _qbo_only(),
    "Level": _computed(),
    "IsProject": _computed(),
    "V4IDPseudonym": _computed(),
    "GivenName": _qbo_only(),
    "MiddleName": _qbo_only(),
    "FamilyName": _qbo_only(),
    "Title": _qbo_only(),
    "Suffix": _qbo_only(),
    "CompanyName": _qbo_only(),
    "PrintOnCheckName": _qbo_only(),
    "BillAddr": _qbo_only(),
    "ShipAddr": _qbo_only(),
    "PrimaryPhone": _qbo_only(),
    "Mobile": _qbo_only(),
    "Fax": _qbo_only(),
    "WebAddr": _qbo_only(),
    "Notes": _qbo_only(),
    "Taxable": _qbo_only(),
    "ResaleNum": _qbo_only(),
    "PreferredDeliveryMethod": _qbo_only(),
    "CurrencyRef": _qbo_only(),
    "SalesTermRef": _qbo_only(),
    "PaymentMethodRef": _qbo_only(),
    "DefaultTaxCodeRef": _qbo_only(),
}

QBO_ITEM: Table = {
    "Name": _synced("name"),
    "Sku": _synced("sku", "returned by queries only when named"),
    "UnitPrice": _synced("unit_price"),
    "Type": _qbo_only("written 'Service' on create"),
    "IncomeAccountRef": _qbo_only("supplied by the caller on create"),
    "Active": _qbo_only("written true on create"),
    "Id": _computed("identity, held in the link"),
    "SyncToken": _computed("concurrency token, held in the link"),
    "domain": _computed(),
    "sparse": _computed(),
    "MetaData": _computed(),
    "FullyQualifiedName": _computed(),
    "Level": _computed(),
    "QtyOnHand": _computed(),
    "Description": _qbo_only(),
    "Taxable": _qbo_only(),
    "SalesTaxIncluded": _qbo_only(),
    "PurchaseDesc": _qbo_only(),
    "PurchaseCost": _qbo_only(),
    "PurchaseTaxIncluded": _qbo_only(),
    "ExpenseAccountRef": _qbo_only(),
    "AssetAccountRef": _qbo_only(),
    "TrackQtyOnHand": _qbo_only(),
    "InvStartDate": _qbo_only(),
    "SubItem": _qbo_only(),
    "ParentRef": _qbo_only(),
}

# Internal system ---------------------------------------------------------------

INTERNAL_INVOICE: Table = {
    "number": _synced("doc_number"),
    "customer_id": _synced("customer_key"),
    "currency": _synced("currency"),
    "issue_date": _synced("issue_date"),
    "due_date": _synced("due_date"),
    "lines": _synced("lines", "see INTERNAL_INVOICE_LINE"),
    "memo": _synced("memo"),
    "status": _synced("status", "changed through /void and DELETE, not PATCH"),
    "id": _internal_only("identity, held in the link"),
    "version": _internal_only("If-Match token, held in the link"),
    "updated_at": _internal_only(),
}

INTERNAL_INVOICE_LINE: Table = {
    "item_id": _synced("item_key"),
    "description": _synced("description"),
    "quantity": _synced("quantity"),
    "unit_price": _synced("unit_price"),
    "amount": _synced("amount", "optional on create"),
}

INTERNAL_CUSTOMER: Table = {
    "name": _synced("name"),
    "email": _synced("email"),
    "id": _internal_only("identity, held in the link"),
    "version": _internal_only("If-Match token, held in the link"),
    "updated_at": _internal_only(),
}

INTERNAL_ITEM: Table = {
    "sku": _synced("sku"),
    "name": _synced("name"),
    "unit_price": _synced("unit_price"),
    "id": _internal_only("identity, held in the link"),
    "version": _internal_only("If-Match token, held in the link"),
    "updated_at": _internal_only(),
}


# Queries -----------------------------------------------------------------------


def synced_keys(table: Table) -> dict[str, str]:
    """Return canonical field -> payload key for the synced keys of ``table``."""
    return {
        rule.field: key
        for key, rule in table.items()
        if rule.owner is Owner.SYNCED and rule.field is not None
    }


def keys_owned_by(table: Table, owner: Owner) -> frozenset[str]:
    """Return the payload keys of ``table`` classified as ``owner``."""
    return frozenset(key for key, rule in table.items() if rule.owner is owner)


def unclassified_keys(table: Table, keys: Iterable[str]) -> frozenset[str]:
    """Return the keys that ``table`` does not classify."""
    return frozenset(keys) - frozenset(table)
