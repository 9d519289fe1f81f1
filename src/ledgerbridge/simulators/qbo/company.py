"""QBO business rules for one company: validation, totals, writes, query, CDC."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import clock, faults, query, wire
from .state import ENTITY_NAMES, Realm, deep_copy

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
DOC_NUMBER_MAX = 21
PRIVATE_NOTE_MAX = 4000
CUSTOMER_MEMO_MAX = 1000
DISPLAY_NAME_MAX = 500
ITEM_NAME_MAX = 100
CDC_LOOKBACK = dt.timedelta(days=30)
CDC_MAX_OBJECTS = 1000
USD = {"value": "USD", "name": "United States Dollar"}
LINE_TYPES = ("SalesItemLineDetail", "DiscountLineDetail", "DescriptionOnly")
ITEM_TYPES = ("Service", "NonInventory", "Inventory", "Group", "Category")
# Fields the server owns; a client's values for them are ignored.
SERVER_FIELDS = frozenset(
    {"Id", "SyncToken", "MetaData", "domain", "sparse", "status", "FullyQualifiedName"}
    | {
        "TotalAmt",
        "Balance",
        "HomeBalance",
        "HomeTotalAmt",
        "LinkedTxn",
        "BalanceWithJobs",
    }
)
FILTERABLE: dict[str, frozenset[str]] = {
    "Invoice": frozenset(
        {"Id", "DocNumber", "TxnDate", "DueDate", "CustomerRef", "TotalAmt", "Balance"}
    ),
    "Customer": frozenset(
        {"Id", "DisplayName", "GivenName", "FamilyName", "CompanyName", "Active"}
        | {"Balance", "PrimaryEmailAddr", "FullyQualifiedName"}
    ),
    "Item": frozenset({"Id", "Name", "Sku", "Type", "Active", "FullyQualifiedName"}),
    "Payment": frozenset({"Id", "TxnDate", "CustomerRef", "TotalAmt"}),
    "Account": frozenset({"Id", "Name", "AccountType", "Active", "FullyQualifiedName"}),
}
COMMON_FILTERABLE = frozenset({"MetaData.CreateTime", "MetaData.LastUpdatedTime"})
NAME_LISTS = ("Customer", "Item", "Account")


@dataclass(frozen=True, slots=True)
class Change:
    """Something a webhook must announce."""

    realm_id: str
    entity: str
    entity_id: str
    operation: str  # Create, Update, Delete, Void, Merge
    when: dt.datetime
    deleted_id: str | None = None


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def entity_for(name: str) -> str | None:
    """Resolve an entity name case-insensitively (``invoice`` -> ``Invoice``)."""
    for entity in ENTITY_NAMES:
        if entity.lower() == name.lower():
            return entity
    return None


class Company:
    """Operations on one realm. Validates fully before it mutates anything."""

    def __init__(
        self,
        realm: Realm,
        sim_clock: clock.SimClock,
        on_change: Callable[[Change], None],
        *,
        hidden: set[tuple[str, str]] | None = None,
    ) -> None:
        self.realm = realm
        self.clock = sim_clock
        self.on_change = on_change
        # Objects created earlier in the same batch: QBO does not let later
        # batch items see them.
        self.hidden = hidden if hidden is not None else set()

    # -- lookups --------------------------------------------------------------

    def _visible(self, entity: str) -> dict[str, dict[str, Any]]:
        table = self.realm.table(entity)
        if not self.hidden:
            return table
        return {
            key: obj for key, obj in table.items() if (entity, key) not in self.hidden
        }

    def _existing(self, entity: str, entity_id: Any) -> dict[str, Any]:
        if entity_id is None or str(entity_id).strip() == "":
            raise faults.required("Id")
        key = str(entity_id).strip()
        obj = self._visible(entity).get(key)
        if obj is not None:
            return obj
        if key in self.realm.tombstones.get(entity, {}):
            raise faults.object_not_found(faults.DELETED_TXN)
        raise faults.object_not_found(
            f"Object Not Found : Something you're trying to use has been made "
            f"inactive or does not exist. {entity} Id={key}"
        )

    def _ref(self, entity: str, ref: Any, element: str) -> dict[str, Any]:
        """Resolve a ``{value, name}`` reference to an active object."""
        if not isinstance(ref, dict) or ref.get("value") in (None, ""):
            raise faults.required(element)
        obj = self._visible(entity).get(str(ref["value"]).strip())
        if obj is None:
            raise faults.invalid_reference(element)
        if obj.get("Active") is False:
            raise faults.object_not_found(faults.INACTIVE_REF, element)
        return obj

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        return self.render(entity, self._existing(entity, entity_id))

    def render(self, entity: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = deep_copy(obj)
        if entity == "Customer":
            # A customer's Balance is the open balance of its invoices.
            total = sum(
                (
                    wire.to_decimal(inv.get("Balance")) or ZERO
                    for inv in self.realm.table("Invoice").values()
                    if inv.get("CustomerRef", {}).get("value") == obj["Id"]
                ),
                ZERO,
            )
            out["Balance"] = total
            out["BalanceWithJobs"] = total
        return out

    # -- bookkeeping ----------------------------------------------------------

    def _now(self) -> tuple[dt.datetime, str]:
        moment = self.clock.now()
        return moment, clock.company_time(moment)

    def _lag_seconds(self) -> float:
        return float(self.realm.settings.get("index_lag_seconds") or 0)

    def _track(self, entity: str, entity_id: str) -> None:
        """Remember this version for a lagging query index (only when lag > 0)."""
        lag = self._lag_seconds()
        if lag <= 0:
            return
        now = self.clock.timestamp()
        current = self.realm.table(entity).get(entity_id)
        versions = self.realm.history.setdefault((entity, entity_id), [])
        versions.append((now, deep_copy(current) if current is not None else None))
        # Keep the newest version older than the lag window and all newer ones.
        while len(versions) > 1 and versions[1][0] <= now - lag:
            versions.pop(0)

    def snapshot_index(self) -> None:
        """Start a lagging index: every current object counts as long indexed."""
        for entity, table in self.realm.objects.items():
            for entity_id, obj in table.items():
                self.realm.history.setdefault(
                    (entity, entity_id), [(0.0, deep_copy(obj))]
                )

    def _indexed(self, entity: str) -> dict[str, dict[str, Any]]:
        """What query and CDC see: each object as it was ``lag`` seconds ago.

        QBO never promised that a query sees a write at once; with the realm's
        ``index_lag_seconds`` set, a client that looks an invoice up by
        DocNumber right after creating it misses it, as it might in production.
        """
        visible = dict(self._visible(entity))
        lag = self._lag_seconds()
        if lag <= 0:
            return visible
        cutoff = self.clock.timestamp() - lag
        for (name, entity_id), versions in self.realm.history.items():
            if name != entity or (entity, entity_id) in self.hidden:
                continue
            older = [obj for stamp, obj in versions if stamp <= cutoff]
            if len(older) == len(versions):
                continue  # the index has caught up with this object
            if older and older[-1] is not None:
                visible[entity_id] = older[-1]
            elif older or _created_after(versions, cutoff):
                visible.pop(entity_id, None)
        return visible

    def _emit(
        self,
        entity: str,
        entity_id: str,
        operation: str,
        when: dt.datetime,
        deleted_id: str | None = None,
    ) -> None:
        self._track(entity, entity_id)
        self.on_change(
            Change(self.realm.realm_id, entity, entity_id, operation, when, deleted_id)
        )

    @staticmethod
    def _check_token(
        entity: str, existing: dict[str, Any], body: dict[str, Any]
    ) -> None:
        token = body.get("SyncToken")
        if token is None or isinstance(token, bool) or str(token).strip() == "":
            raise faults.required("SyncToken")
        # Clients send the token as a string or an int; both mean the same.
        if str(token).strip() != existing["SyncToken"]:
            raise faults.stale(entity)

    @staticmethod
    def _bump(obj: dict[str, Any], stamp: str) -> None:
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj["MetaData"] = {
            "CreateTime": obj["MetaData"]["CreateTime"],
            "LastUpdatedTime": stamp,
        }

    # -- writes ---------------------------------------------------------------

    def write(
        self, entity: str, body: Any, *, operation: str, allow_dup: bool = False
    ) -> dict[str, Any]:
        """Run create/update/void/delete; return the response envelope body."""
        if not isinstance(body, dict):
            raise faults.invalid_property("", "request body must be a JSON object")
        if entity == "Account":
            raise faults.unsupported(
                "Operation not supported for Account in this simulator"
            )
        if operation == "create":
            obj = self._create(entity, body, allow_dup=allow_dup)
        elif operation == "update":
            obj = self._update(entity, body, allow_dup=allow_dup)
        elif operation == "void":
            obj = self._void(entity, body)
        elif operation == "delete":
            return {entity: self._delete(entity, body)}
        else:
            raise faults.unsupported(f"Operation {operation} is not supported")
        return {entity: self.render(entity, obj)}

    @staticmethod
    def _fields(body: dict[str, Any], entity: str = "") -> dict[str, Any]:
        # A payment's TotalAmt is what the customer paid: the client's value.
        owned = SERVER_FIELDS - {"TotalAmt"} if entity == "Payment" else SERVER_FIELDS
        # QBO treats an empty string like an absent field: client libraries
        # (python-quickbooks) send "" for every unset date, enum and name.
        return {
            key: value
            for key, value in body.items()
            if key not in owned and value is not None and value != ""
        }

    def _create(
        self, entity: str, body: dict[str, Any], *, allow_dup: bool
    ) -> dict[str, Any]:
        fields = self._fields(body, entity)
        moment, stamp = self._now()
        if entity == "Payment":
            return self._create_payment(fields, moment, stamp)
        built = self._build(entity, fields, None, allow_dup=allow_dup)
        entity_id = self.realm.allocate_id(entity)
        obj = {"Id": entity_id, "SyncToken": "0", "domain": "QBO", "sparse": False}
        obj.update(built)
        obj["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        if entity == "Invoice":
            self._settle_invoice(obj)
        self.realm.table(entity)[entity_id] = obj
        self._emit(entity, entity_id, "Create", moment)
        return obj

    def _update(
        self, entity: str, body: dict[str, Any], *, allow_dup: bool
    ) -> dict[str, Any]:
        if entity == "Payment":
            raise faults.unsupported(
                "Updating a Payment is not supported in this simulator "
                "(void it with include=void, or delete it)"
            )
        existing = self._existing(entity, body.get("Id"))
        self._check_token(entity, existing, body)
        sparse = body.get("sparse") is True or str(body.get("sparse")).lower() == "true"
        if sparse:
            # Only supplied fields change; a supplied Line replaces all lines.
            fields = {k: v for k, v in existing.items() if k not in SERVER_FIELDS}
            for key, value in body.items():
                if key in SERVER_FIELDS:
                    continue
                if value is None or value == "":
                    fields.pop(key, None)
                else:
                    fields[key] = value
        else:
            # A full update sets every writable field left out to NULL.
            fields = self._fields(body)
        built = self._build(entity, fields, existing, allow_dup=allow_dup)
        moment, stamp = self._now()
        obj = {key: existing[key] for key in ("Id", "SyncToken", "domain", "sparse")}
        obj["sparse"] = False
        obj.update(built)
        obj["MetaData"] = existing["MetaData"]
        self._bump(obj, stamp)
        if entity == "Invoice":
            self._settle_invoice(obj)
        self.realm.table(entity)[obj["Id"]] = obj
        operation = "Update"
        # QBO never hard-deletes name-list objects; making one inactive is
        # what it announces as a Delete.
        deactivated = existing.get("Active") is not False and obj.get("Active") is False
        if entity in ("Customer", "Item") and deactivated:
            operation = "Delete"
        self._emit(entity, obj["Id"], operation, moment)
        return obj

    def _void(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if entity not in ("Invoice", "Payment"):
            raise faults.unsupported(f"Operation void is not supported for {entity}")
        existing = self._existing(entity, body.get("Id"))
        self._check_token(entity, existing, body)
        moment, stamp = self._now()
        obj = deep_copy(existing)
        if entity == "Payment":
            obj["UnappliedAmt"] = ZERO
        for line in obj.get("Line", []):
            line["Amount"] = ZERO
            detail = line.get("SalesItemLineDetail")
            if isinstance(detail, dict) and "Qty" in detail:
                detail["Qty"] = Decimal(0)
        note = obj.get("PrivateNote")
        obj["PrivateNote"] = f"Voided - {note}" if note else "Voided"
        obj["TotalAmt"] = ZERO
        if entity == "Invoice":
            obj["Balance"] = ZERO
        self._bump(obj, stamp)
        self.realm.table(entity)[obj["Id"]] = obj
        self._emit(entity, obj["Id"], "Void", moment)
        if entity == "Payment":
            self._resettle(obj, moment, stamp)
        return obj

    def _resettle(
        self, payment: dict[str, Any], moment: dt.datetime, stamp: str
    ) -> None:
        """A payment changed: its invoices' Balance and LinkedTxn change too."""
        touched = {
            str(link.get("TxnId"))
            for line in payment.get("Line", [])
            for link in line.get("LinkedTxn", [])
            if link.get("TxnType") == "Invoice"
        }
        for invoice_id in sorted(touched):
            invoice = self.realm.table("Invoice").get(invoice_id)
            if invoice is None:
                continue
            self._settle_invoice(invoice)
            self._bump(invoice, stamp)
            self._emit("Invoice", invoice_id, "Update", moment)

    def _delete(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if entity in NAME_LISTS:
            raise faults.unsupported(
                f"Operation delete is not supported for {entity}; set Active to false"
            )
        existing = self._existing(entity, body.get("Id"))
        self._check_token(entity, existing, body)
        moment, stamp = self._now()
        del self.realm.table(entity)[existing["Id"]]
        self.realm.tombstones.setdefault(entity, {})[existing["Id"]] = stamp
        self._emit(entity, existing["Id"], "Delete", moment)
        if entity == "Payment":
            self._resettle(existing, moment, stamp)
        return {"status": "Deleted", "domain": "QBO", "Id": existing["Id"]}

    # -- builders -------------------------------------------------------------

    def _build(
        self,
        entity: str,
        fields: dict[str, Any],
        existing: dict[str, Any] | None,
        *,
        allow_dup: bool,
    ) -> dict[str, Any]:
        if entity == "Invoice":
            return self._build_invoice(fields, existing, allow_dup=allow_dup)
        if entity == "Customer":
            return self._build_customer(fields, existing)
        if entity == "Item":
            return self._build_item(fields, existing)
        raise faults.unsupported(f"Operation not supported for {entity}")

    def _build_invoice(
        self,
        fields: dict[str, Any],
        existing: dict[str, Any] | None,
        *,
        allow_dup: bool,
    ) -> dict[str, Any]:
        lines_in = fields.get("Line")
        if not lines_in:
            raise faults.required("Line")
        customer = self._ref("Customer", fields.get("CustomerRef"), "CustomerRef")
        out = dict(fields)
        out["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        self._check_doc_number(out, existing, allow_dup=allow_dup)
        _check_length(out.get("PrivateNote"), "PrivateNote", PRIVATE_NOTE_MAX)
        memo = out.get("CustomerMemo")
        if isinstance(memo, dict):
            _check_length(memo.get("value"), "CustomerMemo", CUSTOMER_MEMO_MAX)
        today = clock.company_date(self.clock.now())
        out["TxnDate"] = _check_date(out.get("TxnDate", today), "TxnDate")
        out["DueDate"] = _check_date(out.get("DueDate", out["TxnDate"]), "DueDate")
        out.setdefault("CurrencyRef", dict(USD))
        out.setdefault("EmailStatus", "NotSet")
        out.setdefault("PrintStatus", "NotSet")
        out.setdefault("ApplyTaxAfterDiscount", False)
        out["TxnTaxDetail"] = {"TotalTax": Decimal(0)}
        lines, total = self._build_lines(lines_in)
        out["Line"] = lines
        out["TotalAmt"] = total
        if "Deposit" in out:
            out["Deposit"] = _decimal(out["Deposit"], "Deposit")
        else:
            out["Deposit"] = Decimal(0)
        return out

    def _check_doc_number(
        self, out: dict[str, Any], existing: dict[str, Any] | None, *, allow_dup: bool
    ) -> None:
        doc = out.get("DocNumber")
        if doc is None or doc == "":
            out.pop("DocNumber", None)
            if not self.realm.settings.get("custom_txn_numbers", True):
                out["DocNumber"] = self._next_doc_number()
            return
        if not isinstance(doc, str):
            doc = format(doc, "f") if isinstance(doc, Decimal) else str(doc)
            out["DocNumber"] = doc
        _check_length(doc, "DocNumber", DOC_NUMBER_MAX)
        if allow_dup or not self.realm.settings.get("duplicate_docnum_check", False):
            return
        own_id = existing["Id"] if existing else None
        for other in self._visible("Invoice").values():
            if other["Id"] != own_id and other.get("DocNumber") == doc:
                raise faults.QboFault(
                    "6140",
                    "Duplicate Document Number Error",
                    "Duplicate Document Number Error : You must specify a different "
                    f"number. This number has already been used. DocNumber={doc} is "
                    f"assigned to TxnType=Invoice with TxnId={other['Id']}",
                )

    def _next_doc_number(self) -> str:
        highest = 1000
        for other in self.realm.table("Invoice").values():
            doc = other.get("DocNumber")
            if isinstance(doc, str) and doc.isdigit():
                highest = max(highest, int(doc))
        return str(highest + 1)

    def _build_lines(self, lines_in: Any) -> tuple[list[dict[str, Any]], Decimal]:
        if not isinstance(lines_in, list):
            raise faults.invalid_property("Line", "Line")
        built: list[dict[str, Any]] = []
        subtotal = ZERO
        discount = ZERO
        for raw in lines_in:
            if not isinstance(raw, dict):
                raise faults.invalid_property("Line", "Line")
            detail_type = raw.get("DetailType")
            if detail_type == "SubTotalLineDetail":
                continue  # computed by the server; a read-back payload carries one
            if detail_type is None:
                raise faults.required("Line.DetailType")
            if detail_type not in LINE_TYPES:
                raise faults.QboFault(
                    "2170",
                    "Invalid Enumeration",
                    f"Invalid Enumeration : {detail_type}",
                    element="Line.DetailType",
                )
            line = {key: value for key, value in raw.items() if value is not None}
            line.pop("LineNum", None)
            if detail_type == "SalesItemLineDetail":
                amount = self._sales_line(line)
                subtotal += amount
            elif detail_type == "DiscountLineDetail":
                amount = self._discount_line(line, subtotal)
                discount += amount
            else:
                if "Amount" in line:
                    line["Amount"] = round_money(
                        _decimal(line["Amount"], "Line.Amount")
                    )
            built.append(line)
        # Keep the line Ids a client sent back (QBO matches lines by Id on an
        # update); number new or repeated ones after the highest seen.
        given = [str(line.get("Id", "")) for line in built]
        next_id = max((int(value) for value in given if value.isdigit()), default=0) + 1
        seen: set[str] = set()
        for number, line in enumerate(built, start=1):
            line_id = str(line.get("Id", ""))
            if not line_id.isdigit() or line_id in seen:
                line_id = str(next_id)
                next_id += 1
            seen.add(line_id)
            line.pop("Id", None)
            reordered = {"Id": line_id, "LineNum": number, **line}
            line.clear()
            line.update(reordered)
        total = subtotal - discount
        if total < 0:
            raise faults.business("The transaction total can't be negative.")
        built.append(
            {
                "Amount": subtotal,
                "DetailType": "SubTotalLineDetail",
                "SubTotalLineDetail": {},
            }
        )
        return built, total

    def _sales_line(self, line: dict[str, Any]) -> Decimal:
        element = "Line.SalesItemLineDetail.ItemRef"
        detail = line.get("SalesItemLineDetail")
        if not isinstance(detail, dict):
            raise faults.required("Line.SalesItemLineDetail")
        detail = {key: value for key, value in detail.items() if value is not None}
        item = self._ref("Item", detail.get("ItemRef"), element)
        if item.get("Type") == "Category":
            raise faults.QboFault(
                "2500",
                "Invalid Reference Id",
                "Invalid Reference Id : Categories cannot be used in transactions.",
                element=element,
            )
        detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
        if "Amount" not in line:
            raise faults.required("Line.Amount")
        amount = _decimal(line["Amount"], "Line.Amount")
        qty = (
            _decimal(detail["Qty"], "Line.SalesItemLineDetail.Qty")
            if "Qty" in detail
            else None
        )
        price = (
            _decimal(detail["UnitPrice"], "Line.SalesItemLineDetail.UnitPrice")
            if "UnitPrice" in detail
            else None
        )
        if qty is not None and price is not None:
            # QBO recomputes Qty x UnitPrice rounded half-up to cents and
            # refuses any other Amount (1861.075 must be sent as 1861.08).
            expected = round_money(qty * price)
            if amount != expected:
                raise faults.QboFault(
                    "6070",
                    "Amount is not equal to UnitPrice * Qty",
                    "Amount is not equal to UnitPrice * Qty. Supplied value:"
                    f"{format(amount, 'f')}",
                )
        if qty is not None:
            detail["Qty"] = qty
        if price is not None:
            detail["UnitPrice"] = price
        detail.setdefault("TaxCodeRef", {"value": "NON"})
        line["SalesItemLineDetail"] = detail
        line["Amount"] = round_money(amount)
        return round_money(amount)

    def _discount_line(self, line: dict[str, Any], subtotal: Decimal) -> Decimal:
        detail = line.get("DiscountLineDetail")
        detail = dict(detail) if isinstance(detail, dict) else {}
        if detail.get("PercentBased") is True:
            if "DiscountPercent" not in detail:
                raise faults.required("Line.DiscountLineDetail.DiscountPercent")
            percent = _decimal(detail["DiscountPercent"], "Line.DiscountLineDetail")
            detail["DiscountPercent"] = percent
            amount = round_money(subtotal * percent / Decimal(100))
        else:
            if "Amount" not in line:
                raise faults.required("Line.Amount")
            amount = round_money(_decimal(line["Amount"], "Line.Amount"))
            detail.setdefault("PercentBased", False)
        line["DiscountLineDetail"] = detail
        line["Amount"] = amount
        return amount

    def _applied(self, invoice_id: str) -> tuple[Decimal, list[dict[str, str]]]:
        paid = ZERO
        links: list[dict[str, str]] = []
        for payment in self.realm.table("Payment").values():
            for line in payment.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    if (
                        link.get("TxnType") == "Invoice"
                        and link.get("TxnId") == invoice_id
                    ):
                        paid += wire.to_decimal(line.get("Amount")) or ZERO
                        entry = {"TxnId": payment["Id"], "TxnType": "Payment"}
                        if entry not in links:
                            links.append(entry)
        return paid, links

    def _settle_invoice(self, invoice: dict[str, Any]) -> None:
        paid, links = self._applied(invoice["Id"])
        total = wire.to_decimal(invoice.get("TotalAmt")) or ZERO
        invoice["Balance"] = round_money(total - paid)
        invoice["LinkedTxn"] = links

    def _build_customer(
        self, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        out = dict(fields)
        display = out.get("DisplayName")
        if not display:
            parts = [
                str(out[key])
                for key in ("GivenName", "MiddleName", "FamilyName")
                if out.get(key)
            ]
            display = " ".join(parts) or out.get("CompanyName")
        if not display or not str(display).strip():
            raise faults.required("DisplayName")
        display = str(display)
        _check_length(display, "DisplayName", DISPLAY_NAME_MAX)
        self._check_unique_name("Customer", "DisplayName", display, existing)
        out["DisplayName"] = display
        out["FullyQualifiedName"] = display
        out["Active"] = out.get("Active", True) is not False
        out.setdefault("CurrencyRef", dict(USD))
        out.setdefault("Job", False)
        out.setdefault("Taxable", False)
        return out

    def _check_unique_name(
        self, entity: str, key: str, name: str, existing: dict[str, Any] | None
    ) -> None:
        # Names are unique case-insensitively, and inactive objects still
        # hold their names (QBO renames them only in its UI).
        wanted = name.strip().lower()
        own_id = existing["Id"] if existing else None
        for other in self._visible(entity).values():
            if (
                other["Id"] != own_id
                and str(other.get(key, "")).strip().lower() == wanted
            ):
                who = "customer, vendor or employee" if entity == "Customer" else "item"
                raise faults.QboFault(
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another {who} is already "
                    f"using this name. Please use a different name. Id={other['Id']}",
                )

    def _build_item(
        self, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        out = dict(fields)
        name = out.get("Name")
        if not name or not str(name).strip():
            raise faults.required("Name")
        name = str(name)
        _check_length(name, "Name", ITEM_NAME_MAX)
        self._check_unique_name("Item", "Name", name, existing)
        out["Name"] = name
        out["FullyQualifiedName"] = name
        kind = out.get("Type", "Service")
        if kind not in ITEM_TYPES:
            raise faults.QboFault(
                "2170",
                "Invalid Enumeration",
                f"Invalid Enumeration : {kind}",
                element="Type",
            )
        out["Type"] = kind
        if kind in ("Service", "NonInventory", "Inventory"):
            account = self._ref(
                "Account", out.get("IncomeAccountRef"), "IncomeAccountRef"
            )
            out["IncomeAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        if kind == "Inventory":
            for key in (
                "AssetAccountRef",
                "ExpenseAccountRef",
                "QtyOnHand",
                "InvStartDate",
            ):
                if key not in out:
                    raise faults.required(key)
        if "UnitPrice" in out:
            out["UnitPrice"] = _decimal(out["UnitPrice"], "UnitPrice")
        out["Active"] = out.get("Active", True) is not False
        return out

    def _create_payment(
        self, fields: dict[str, Any], moment: dt.datetime, stamp: str
    ) -> dict[str, Any]:
        customer = self._ref("Customer", fields.get("CustomerRef"), "CustomerRef")
        if "TotalAmt" not in fields:
            raise faults.required("TotalAmt")
        total = round_money(_decimal(fields.get("TotalAmt"), "TotalAmt"))
        lines_out: list[dict[str, Any]] = []
        applied = ZERO
        touched: dict[str, Decimal] = {}
        for raw in fields.get("Line") or []:
            if not isinstance(raw, dict):
                raise faults.invalid_property("Line", "Line")
            amount = round_money(_decimal(raw.get("Amount"), "Line.Amount"))
            links = raw.get("LinkedTxn") or []
            if not isinstance(links, list) or not links:
                raise faults.required("Line.LinkedTxn")
            for link in links:
                if not isinstance(link, dict) or link.get("TxnType") != "Invoice":
                    raise faults.invalid_reference("Line.LinkedTxn")
                invoice = self._existing("Invoice", link.get("TxnId"))
                if invoice["CustomerRef"]["value"] != customer["Id"]:
                    raise faults.business(
                        "The payment's customer does not match the linked invoice.",
                        "Line.LinkedTxn",
                    )
                already = touched.get(invoice["Id"], ZERO)
                balance = wire.to_decimal(invoice.get("Balance")) or ZERO
                if amount + already > balance:
                    raise faults.business(
                        "The amount applied exceeds the open balance of the invoice.",
                        "Line.Amount",
                    )
                touched[invoice["Id"]] = already + amount
            applied += amount
            lines_out.append(
                {
                    "Amount": amount,
                    "LinkedTxn": [
                        {"TxnId": str(link["TxnId"]).strip(), "TxnType": "Invoice"}
                        for link in links
                    ],
                }
            )
        if applied > total:
            raise faults.business(
                "The amounts applied exceed the payment amount.", "TotalAmt"
            )
        today = clock.company_date(moment)
        payment_id = self.realm.allocate_id("Payment")
        payment = {
            "Id": payment_id,
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
            "TxnDate": _check_date(fields.get("TxnDate", today), "TxnDate"),
            "TotalAmt": total,
            "UnappliedAmt": total - applied,
            "CurrencyRef": dict(USD),
            "Line": lines_out,
            "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp},
        }
        self.realm.table("Payment")[payment_id] = payment
        self._emit("Payment", payment_id, "Create", moment)
        for invoice_id in touched:
            invoice = self.realm.table("Invoice")[invoice_id]
            self._settle_invoice(invoice)
            self._bump(invoice, stamp)
            self._emit("Invoice", invoice_id, "Update", moment)
        return payment

    def send_invoice(self, invoice_id: str, send_to: str | None) -> dict[str, Any]:
        """E-mail an invoice: EmailStatus becomes EmailSent, webhook ``Emailed``."""
        existing = self._existing("Invoice", invoice_id)
        address = send_to or (existing.get("BillEmail") or {}).get("Address")
        if not address:
            raise faults.business("An email address is required to send this invoice.")
        _check_length(address, "BillEmail", 100)
        moment, stamp = self._now()
        obj = deep_copy(existing)
        if send_to:
            obj["BillEmail"] = {"Address": send_to}
        obj["EmailStatus"] = "EmailSent"
        obj["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": stamp}
        self._bump(obj, stamp)
        self.realm.table("Invoice")[obj["Id"]] = obj
        self._emit("Invoice", obj["Id"], "Emailed", moment)
        return self.render("Invoice", obj)

    def merge_customer(self, source_id: str, target_id: str) -> dict[str, Any]:
        """Merge ``source`` into ``target`` as QBO's UI does."""
        source = self._existing("Customer", source_id)
        target = self._existing("Customer", target_id)
        if source["Id"] == target["Id"] or source.get("Active") is False:
            raise faults.business("These customers cannot be merged.")
        moment, stamp = self._now()
        for entity in ("Invoice", "Payment"):
            for obj in self.realm.table(entity).values():
                if obj.get("CustomerRef", {}).get("value") == source["Id"]:
                    obj["CustomerRef"] = {
                        "value": target["Id"],
                        "name": target["DisplayName"],
                    }
                    self._bump(obj, stamp)
                    self._emit(entity, obj["Id"], "Update", moment)
        source["Active"] = False
        self._bump(source, stamp)
        self._track("Customer", source["Id"])
        self._bump(target, stamp)
        self._emit("Customer", target["Id"], "Merge", moment, deleted_id=source["Id"])
        return self.render("Customer", target)

    # -- query and CDC --------------------------------------------------------

    def query(self, statement: str) -> dict[str, Any]:
        parsed = query.parse(statement)
        entity = entity_for(parsed.entity)
        if entity is None:
            raise faults.query_invalid(f"Unsupported entity: {parsed.entity}")
        allowed = {
            name.lower(): name for name in FILTERABLE[entity] | COMMON_FILTERABLE
        }
        names = [cond.field for cond in parsed.conditions] + [
            f for f, _ in parsed.order_by
        ]
        for name in names:
            if name.lower() not in allowed:
                raise faults.query_invalid(f"property '{name}' is not queryable")
        rows = [self.render(entity, obj) for obj in self._indexed(entity).values()]
        mentions_active = any(
            cond.field.lower() == "active" for cond in parsed.conditions
        )
        if entity in NAME_LISTS and not mentions_active:
            # Name lists answer with active objects only unless asked.
            rows = [row for row in rows if row.get("Active") is not False]
        rows = [
            row for row in rows if all(query.matches(row, c) for c in parsed.conditions)
        ]
        if parsed.count:
            return {"totalCount": len(rows)}
        rows.sort(key=functools.partial(_sort_key, "Id"))
        for name, descending in reversed(parsed.order_by):
            rows.sort(key=functools.partial(_sort_key, name), reverse=descending)
        start = parsed.start_position - 1
        page = rows[start : start + parsed.max_results]
        if not page:
            return {}
        return {
            entity: page,
            "startPosition": parsed.start_position,
            "maxResults": len(page),
        }

    def cdc(
        self, entities: str | None, changed_since: str | None
    ) -> list[dict[str, Any]]:
        if not entities:
            raise faults.required("entities")
        if not changed_since:
            raise faults.required("changedSince")
        wanted: list[str] = []
        for name in entities.split(","):
            entity = entity_for(name.strip())
            if entity is None:
                raise faults.invalid_property("entities", name.strip())
            wanted.append(entity)
        since = clock.parse_instant(changed_since)
        if since is None:
            raise faults.invalid_property("changedSince", changed_since)
        if self.clock.now() - since > CDC_LOOKBACK:
            raise faults.QboFault(
                "2010",
                "Request has invalid or unsupported property",
                "changedSince must be within the last 30 days",
                element="changedSince",
            )
        found: list[tuple[dt.datetime, str, dict[str, Any]]] = []
        for entity in wanted:
            for obj in self._indexed(entity).values():
                updated = clock.parse_instant(obj["MetaData"]["LastUpdatedTime"])
                if updated is not None and updated >= since:
                    found.append((updated, entity, self.render(entity, obj)))
            indexed = self._indexed(entity)
            for entity_id, stamp in self.realm.tombstones.get(entity, {}).items():
                deleted = clock.parse_instant(stamp)
                if entity_id in indexed:
                    continue  # the index has not seen the delete yet
                if deleted is not None and deleted >= since:
                    tombstone = {
                        "Id": entity_id,
                        "status": "Deleted",
                        "domain": "QBO",
                        "MetaData": {"LastUpdatedTime": stamp},
                    }
                    found.append((deleted, entity, tombstone))
        # QBO caps a CDC answer at 1000 objects; a client must poll shorter
        # windows rather than trust one answer to be complete.
        found.sort(key=lambda entry: entry[0])
        found = found[:CDC_MAX_OBJECTS]
        responses: list[dict[str, Any]] = []
        for entity in wanted:
            objects = [obj for _, name, obj in found if name == entity]
            if objects:
                responses.append(
                    {entity: objects, "startPosition": 1, "maxResults": len(objects)}
                )
            else:
                responses.append({})
        return responses


def _created_after(
    versions: list[tuple[float, dict[str, Any] | None]], cutoff: float
) -> bool:
    """Whether the first tracked version is a create newer than ``cutoff``."""
    first_stamp, first = versions[0]
    return first is not None and first.get("SyncToken") == "0" and first_stamp > cutoff


def _sort_key(path: str, row: dict[str, Any]) -> tuple[int, Any]:
    return query.sort_key(row, path)


def _decimal(value: Any, element: str) -> Decimal:
    number = wire.to_decimal(value)
    if number is None:
        raise faults.invalid_property(element, element)
    return number


def _check_length(value: Any, element: str, maximum: int) -> None:
    if isinstance(value, str) and len(value) > maximum:
        raise faults.string_length(element, maximum, len(value))


def _check_date(value: Any, element: str) -> str:
    if not isinstance(value, str):
        raise faults.invalid_property(element, element)
    try:
        return dt.date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise faults.invalid_property(element, element) from None
