"""Companies, tokens and their atomic persistence to one JSON file."""

from __future__ import annotations

import copy
import os
import random
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import wire

DEFAULT_REALM_ID = "9341453050121670"
DEFAULT_REALM_NAME = "Sandbox Company_US_1"
# Bound the requestid memory per realm; QBO's own window is undocumented.
MAX_REMEMBERED_REPLIES = 5000
# Entity types that have a resource path and queries. Account is read-only.
ENTITY_NAMES = ("Invoice", "Customer", "Item", "Payment", "Account")


@dataclass
class Realm:
    """One QBO company: its objects, deletions and preferences."""

    realm_id: str
    name: str
    settings: dict[str, Any]
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # entity -> id -> MetaData.LastUpdatedTime of the delete, for CDC.
    tombstones: dict[str, dict[str, str]] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=dict)
    # requestid -> the first answer (status and exact body text).
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = ""
    # In memory only: (entity, id) -> [(epoch seconds, object or None)], kept
    # while the realm's query index lags behind its writes.
    history: dict[tuple[str, str], list[tuple[float, dict[str, Any] | None]]] = field(
        default_factory=dict
    )

    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(entity, {})

    def allocate_id(self, entity: str) -> str:
        number = self.next_id.get(entity, 1)
        self.next_id[entity] = number + 1
        return str(number)

    def remember_reply(self, requestid: str, status: int, body: str) -> None:
        self.replies[requestid] = {"status": status, "body": body}
        while len(self.replies) > MAX_REMEMBERED_REPLIES:
            self.replies.pop(next(iter(self.replies)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "realm_id": self.realm_id,
            "name": self.name,
            "settings": self.settings,
            "objects": self.objects,
            "tombstones": self.tombstones,
            "next_id": self.next_id,
            "replies": self.replies,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Realm:
        return cls(
            realm_id=data["realm_id"],
            name=data["name"],
            settings=data["settings"],
            objects=data["objects"],
            tombstones=data["tombstones"],
            next_id=data["next_id"],
            replies=data["replies"],
            created=data.get("created", ""),
        )


@dataclass
class OAuthState:
    """Grants (connections) and the tokens and codes issued under them.

    Instants are epoch seconds kept as strings, so the state file holds no
    floats.
    """

    grants: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "grants": self.grants,
            "access": self.access,
            "refresh": self.refresh,
            "codes": self.codes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OAuthState:
        return cls(
            **{
                key: data.get(key, {})
                for key in ("grants", "access", "refresh", "codes")
            }
        )


def new_realm_id(rng: random.Random) -> str:
    # Real realm ids are 16-19 digits; keep the sandbox-looking prefix.
    return "9341" + "".join(str(rng.randrange(10)) for _ in range(12))


def _meta(stamp: str) -> dict[str, str]:
    return {"CreateTime": stamp, "LastUpdatedTime": stamp}


def _account(account_id: str, name: str, sub_type: str, stamp: str) -> dict[str, Any]:
    return {
        "Id": account_id,
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "Name": name,
        "FullyQualifiedName": name,
        "SubAccount": False,
        "Active": True,
        "Classification": "Revenue",
        "AccountType": "Income",
        "AccountSubType": sub_type,
        "CurrentBalance": Decimal("0"),
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "MetaData": _meta(stamp),
    }


SAMPLE_CUSTOMERS: tuple[tuple[str, str, str, str], ...] = (
    ("Amy's Bird Sanctuary", "Amy", "Lauterbach", "birds@example.com"),
    ("Bill's Windsurf Shop", "Bill", "Lucchini", "surf@example.com"),
    ("Cool Cars", "Grace", "Pariente", "cool_cars@example.com"),
    ("Diego Rodriguez", "Diego", "Rodriguez", "diego@example.com"),
    ("Dukes Basketball Camp", "Peter", "Dukes", "dukes@example.com"),
)

# (name, type, unit price, income account id, sku)
SAMPLE_ITEMS: tuple[tuple[str, str, str | None, str | None, str | None], ...] = (
    ("Services", "Service", "150.00", "1", "SVC-1"),
    ("Hours", "Service", "50.00", "1", "HRS-1"),
    ("Design", "Service", "75.00", "79", "DSG-1"),
    ("Gardening", "Service", "25.50", "79", "GRD-1"),
    ("Rock Fountain", "NonInventory", "275.00", "79", "RF-1"),
    ("Landscaping", "Category", None, None, None),
)


def seed_realm(realm: Realm, stamp: str, *, sample: bool) -> None:
    """Fill a fresh company the way a new QBO sandbox comes."""
    accounts = realm.table("Account")
    accounts["1"] = _account("1", "Services", "ServiceFeeIncome", stamp)
    accounts["79"] = _account(
        "79", "Sales of Product Income", "SalesOfProductIncome", stamp
    )
    realm.next_id["Account"] = 80
    # Sandbox ids start well above 1 for transactions; mimic that so a client
    # never assumes small or shared id ranges.
    realm.next_id["Invoice"] = 130
    realm.next_id["Payment"] = 170
    realm.next_id["Customer"] = 1
    realm.next_id["Item"] = 1
    if not sample:
        return
    customers = realm.table("Customer")
    for display, given, family, email in SAMPLE_CUSTOMERS:
        customer_id = realm.allocate_id("Customer")
        customers[customer_id] = {
            "Id": customer_id,
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "DisplayName": display,
            "GivenName": given,
            "FamilyName": family,
            "CompanyName": display,
            "FullyQualifiedName": display,
            "PrimaryEmailAddr": {"Address": email},
            "Active": True,
            "Job": False,
            "Taxable": False,
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "PreferredDeliveryMethod": "Print",
            "MetaData": _meta(stamp),
        }
    items = realm.table("Item")
    for name, kind, price, account_id, sku in SAMPLE_ITEMS:
        item_id = realm.allocate_id("Item")
        item: dict[str, Any] = {
            "Id": item_id,
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "Name": name,
            "FullyQualifiedName": name,
            "Type": kind,
            "Active": True,
            "MetaData": _meta(stamp),
        }
        if price is not None:
            item["UnitPrice"] = Decimal(price)
            item["Taxable"] = False
        if account_id is not None:
            item["IncomeAccountRef"] = {
                "value": account_id,
                "name": accounts[account_id]["Name"],
            }
        if sku is not None:
            item["Sku"] = sku
        items[item_id] = item


class StateFile:
    """Write the whole state atomically (temp file + rename) after each change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        data = wire.loads(text)
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> None:
        # Amounts stay exact: the file holds them as JSON number text that is
        # read back with parse_float=Decimal.
        text = wire.dumps(data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=".qbo-sim-", suffix=".json"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def deep_copy(value: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(value)
