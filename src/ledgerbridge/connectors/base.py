"""The interfaces the sync engine needs from each side.

Payloads are the systems' own JSON shapes (dicts) parsed with ``Decimal`` for
every number; mapping them to the canonical model is the sync engine's job.
Errors are the classes in ``ledgerbridge.errors``: transient ones are retried,
permanent ones become dead letters.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Protocol

QboEntity = Literal["Invoice", "Customer", "Item"]
InternalEntity = Literal["invoices", "customers", "items"]

JsonObject = dict[str, Any]


class QboApi(Protocol):
    """One QuickBooks Online company (realm), reached with a valid token."""

    realm_id: str

    async def get(self, entity: QboEntity, entity_id: str) -> JsonObject:
        """Read one object. Raises ``QboNotFound`` for fault 610."""
        ...

    async def create(
        self, entity: QboEntity, body: JsonObject, *, request_id: str
    ) -> JsonObject:
        """Create an object; the same ``request_id`` never creates twice."""
        ...

    async def update(
        self, entity: QboEntity, body: JsonObject, *, request_id: str
    ) -> JsonObject:
        """Sparse update: ``body`` carries ``Id``, ``SyncToken`` and changed fields.

        Raises ``QboTransientError`` with ``code == "5010"`` when the token is stale.
        """
        ...

    async def void_invoice(
        self, invoice_id: str, sync_token: str, *, request_id: str
    ) -> JsonObject: ...

    async def delete(
        self, entity: QboEntity, entity_id: str, sync_token: str, *, request_id: str
    ) -> None: ...

    async def query(self, statement: str) -> list[JsonObject]:
        """Run a QBO query, following pages; raises on fault 4000, never
        answers "nothing found" for a query that failed."""
        ...

    async def find_by(
        self, entity: QboEntity, field: str, value: str
    ) -> list[JsonObject]:
        """``select * from <entity> where <field> = '<escaped value>'``."""
        ...

    async def cdc(
        self, entities: list[QboEntity], changed_since: dt.datetime
    ) -> tuple[dict[str, list[JsonObject]], dt.datetime]:
        """Changed objects per entity since a time, and the server's ``time``."""
        ...


class InternalApi(Protocol):
    """The internal invoicing system's HTTP contract."""

    async def get(self, entity: InternalEntity, entity_id: str) -> JsonObject:
        """Read one record. Raises ``InternalGone`` (410) or ``InternalNotFound``."""
        ...

    async def list_changed(
        self,
        entity: InternalEntity,
        *,
        updated_since: dt.datetime | None,
        cursor: str | None = None,
    ) -> tuple[list[JsonObject], str | None]:
        """One page of records changed since a time, and the next cursor."""
        ...

    async def find(self, entity: InternalEntity, **filters: str) -> list[JsonObject]:
        """Records matching exact filters (``number=``, ``name=``, ``sku=``)."""
        ...

    async def create(
        self, entity: InternalEntity, body: JsonObject, *, idempotency_key: str
    ) -> JsonObject: ...

    async def update(
        self,
        entity: InternalEntity,
        entity_id: str,
        fields: JsonObject,
        *,
        version: int,
    ) -> JsonObject:
        """PATCH with ``If-Match``; raises ``InternalVersionMismatch`` on 412."""
        ...

    async def void_invoice(self, invoice_id: str) -> JsonObject: ...

    async def delete(self, entity: InternalEntity, entity_id: str) -> None: ...
