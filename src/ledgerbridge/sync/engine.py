"""One sync job: refetch, map, echo check, three-way merge, apply, persist.

The job holds the link's row lock from the moment it reads until it commits,
so two jobs for the same record (one per side's id) never interleave: the
second one waits, then sees what the first wrote. Writes to either side carry
an idempotency key (QBO ``requestid``, internal ``Idempotency-Key``) or a
version guard (QBO ``SyncToken``, internal ``If-Match``), so a job that dies
after writing and runs again finds its own write and adopts it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from decimal import Decimal
from typing import Any, cast

from psycopg.types.json import Jsonb

from ledgerbridge import errors
from ledgerbridge.db.queries import QUERIES
from ledgerbridge.sync import codec, hashing, mapping, merge, model, sides

logger = logging.getLogger(__name__)

# How often one job refetches and merges again after a stale write or after
# linking missing references, before it gives up and lets the queue retry.
MAX_PASSES = 4


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    status: str  # applied | echo | noop | conflict | held
    detail: str
    link_id: int | None


@dataclasses.dataclass(kw_only=True, slots=True)
class State:
    """One side's current view of a record."""

    side: str
    id: str
    raw: dict[str, Any] | None  # None: confirmed deleted
    canonical: model.Entity | None = None

    @property
    def token(self) -> str | None:
        if self.raw is None:
            return None
        if self.side == "qbo":
            token = self.raw.get("SyncToken")
            return None if token is None else str(token)
        version = self.raw.get("version")
        return None if version is None else str(version)


class _NeedReferences(Exception):
    """Customers or items must be linked before this record can be mapped."""

    def __init__(self, refs: list[tuple[str, str, str]]) -> None:
        super().__init__(f"unlinked references: {refs}")
        self.refs = refs


def _other(side: str) -> str:
    return "qbo" if side == "internal" else "internal"


def _merge(base: Any, internal: Any, qbo: Any) -> merge.MergeResult[Any]:
    """Three-way merge; without a base (two records adopted by number) every
    field that differs is a conflict, so neither side silently wins."""
    if base is not None:
        return merge.merge(base, internal, qbo)
    conflicts = tuple(
        merge.FieldConflict(
            field=f, base=None, internal=getattr(internal, f), qbo=getattr(qbo, f)
        )
        for f in model.fields_of(internal)
        if getattr(internal, f) != getattr(qbo, f)
    )
    return merge.MergeResult(
        merged=internal, conflicts=conflicts, to_internal={}, to_qbo={}
    )


# Fault elements that name a customer or item reference rather than the
# record itself: a 610 on one of them means the reference is inactive or gone.
REFERENCE_ELEMENTS = frozenset(
    {"CustomerRef", "ItemRef", "Line.SalesItemLineDetail.ItemRef"}
)


def _refused_reference(
    exc: errors.QboError, entity: model.Entity, refs: sides.RefMaps
) -> errors.PermanentError:
    """Say which reference QBO refused and what a person can do about it."""
    what = "a customer or item it names"
    if isinstance(entity, model.Invoice):
        if exc.element == "CustomerRef" or exc.element is None:
            qbo_id = refs.customers_i2q.get(entity.customer_key, "?")
            what = f"its customer {entity.customer_key} (QBO customer {qbo_id})"
        else:
            items = ", ".join(sorted({line.item_key for line in entity.lines}))
            what = f"one of its items ({items})"
    return errors.PermanentError(
        f"QBO refused {sides.type_of(entity)} {sides.natural_key(entity)!r}: {what} "
        f"is inactive or deleted in QBO ({exc}). Make it active again in QBO, or "
        "point the record at an active one, then replay this dead letter"
    )


# What a person can do about QBO's business faults, by fault code.
FAULT_ADVICE = {
    "6240": "QBO already has a customer, vendor or employee with that name (QBO "
    "compares names without case); rename one of them, then replay",
    "6000": "QBO refused it as a business rule (a negative total, i.e. a credit, "
    "is one: record credits as credit memos in QBO); fix it, then replay",
    "6140": "QBO already has an invoice with that number and refuses duplicates; "
    "renumber one of them, then replay",
}


def _explained(
    exc: errors.QboPermanentError, entity: model.Entity
) -> errors.PermanentError | None:
    """QBO's refusal, with the record named and the way out, when known."""
    advice = FAULT_ADVICE.get(str(getattr(exc, "code", "")))
    if advice is None:
        return None
    return errors.PermanentError(
        f"QBO refused {sides.type_of(entity)} {sides.natural_key(entity)!r}: "
        f"{advice} ({exc})"
    )


def _refuse_total_below_paid(current: State, merged: model.Entity) -> None:
    """Money received against a QBO invoice must stay covered by its total."""
    if not isinstance(merged, model.Invoice) or current.raw is None:
        return
    if not sides.qbo_has_payments(current.raw):
        return
    total = codec.parse_decimal(current.raw.get("TotalAmt", 0))
    paid = total - codec.parse_decimal(current.raw.get("Balance", total))
    new_total = sum((line.amount for line in merged.lines), start=Decimal(0))
    if new_total < paid:
        raise errors.PermanentError(
            f"QBO invoice {current.id} ({merged.doc_number!r}) has {paid} received "
            f"against it; the new total {new_total} would be less than that. Unapply "
            "or refund the payment in QBO, or change the lines, then replay"
        )


def idempotency_key(
    connection_id: int, entity_type: str, side: str, source_id: str
) -> str:
    """The key a create derived from a source record always carries.

    QBO limits ``requestid`` to 50 characters, so the key is a digest.
    """
    text = f"ledgerbridge:{connection_id}:{entity_type}:{side}:{source_id}"
    return "lb-" + hashlib.sha256(text.encode()).hexdigest()[:40]


async def sync_entity(
    services: Any,
    *,
    connection_id: int,
    side: str,
    entity_type: str,
    entity_id: str,
    job_id: int | None = None,
) -> Outcome:
    """Bring one record into agreement on both sides and record the outcome."""
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            QUERIES["max_pending_event"],
            {
                "connection_id": connection_id,
                "side": side,
                "entity_type": entity_type,
                "entity_id": entity_id,
            },
        )
        row = await cur.fetchone()
    max_event_id = int(row["max_id"]) if row else 0

    job = _Job(services, connection_id, await services.qbo_for(connection_id))
    outcome = await job.sync(side, entity_type, entity_id)

    async with services.pool.connection() as conn:
        await conn.execute(
            QUERIES["finish_events"],
            {
                "status": outcome.status,
                "detail": outcome.detail,
                "link_id": outcome.link_id,
                "connection_id": connection_id,
                "side": side,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "max_id": max_event_id,
            },
        )
    services.metrics.outcomes.labels(status=outcome.status).inc()
    logger.info(
        "sync %s: %s",
        outcome.status,
        outcome.detail,
        extra={
            "action": f"sync_{outcome.status}",
            "connection_id": connection_id,
            "entity": f"{side}:{entity_type}:{entity_id}",
            "job_id": job_id,
        },
    )
    return outcome


async def record_failure(
    services: Any,
    *,
    connection_id: int,
    side: str,
    entity_type: str,
    entity_id: str,
    error: BaseException,
    dead: bool,
) -> None:
    """Note a failed attempt on the entity's events; ``dead`` makes it a dead letter."""
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, errors.ConnectionWaiting):
        reason = f"waiting for the QBO connection to be reconnected ({error})"
    async with services.pool.connection() as conn:
        await conn.execute(
            QUERIES["fail_events"],
            {
                "status": "dead_letter" if dead else "failed",
                "detail": reason,
                "connection_id": connection_id,
                "side": side,
                "entity_type": entity_type,
                "entity_id": entity_id,
            },
        )
    services.metrics.failures.labels(dead=str(dead).lower()).inc()
    log = logger.error if dead else logger.warning
    log(
        "sync failed%s: %s",
        " for good" if dead else ", will retry",
        reason,
        extra={
            "action": "sync_dead_letter" if dead else "sync_retry",
            "connection_id": connection_id,
            "entity": f"{side}:{entity_type}:{entity_id}",
        },
    )


class _Job:
    def __init__(self, services: Any, connection_id: int, qbo: Any) -> None:
        self.services = services
        self.connection_id = connection_id
        self.qbo = qbo
        self.internal = services.internal

    # -- the loop: stale writes and missing references mean "again" ----------

    async def sync(
        self, side: str, entity_type: str, entity_id: str, depth: int = 0
    ) -> Outcome:
        last: Exception | None = None
        for _ in range(MAX_PASSES):
            try:
                return await self._pass(side, entity_type, entity_id)
            except _NeedReferences as need:
                if depth > 0:
                    raise errors.ReferenceError_(
                        f"references of references cannot be linked: {need.refs}"
                    ) from need
                for ref_side, ref_type, ref_id in need.refs:
                    await self.sync(ref_side, ref_type, ref_id, depth + 1)
                last = need
            except errors.StaleWrite as exc:
                logger.warning(
                    "stale write, merging again: %s",
                    exc,
                    extra={
                        "action": "stale_write",
                        "entity": f"{side}:{entity_type}:{entity_id}",
                    },
                )
                last = exc
        raise errors.StaleWrite(f"gave up after {MAX_PASSES} passes: {last}")

    async def _pass(self, side: str, entity_type: str, entity_id: str) -> Outcome:
        async with self.services.pool.connection() as conn, conn.transaction():
            link = await self._lock_link_by_side(conn, side, entity_type, entity_id)
            if link is None:
                source = await self._fetch(side, entity_type, entity_id)
                return await self._first_sync(conn, side, entity_type, source)
            return await self._linked_sync(conn, link, side, entity_type)

    # -- fetching ----------------------------------------------------------

    async def _fetch(self, side: str, entity_type: str, entity_id: str) -> State:
        if side == "internal":
            try:
                raw = await self.internal.get(
                    sides.INTERNAL_NAME[entity_type], entity_id
                )
            except errors.InternalGone:
                raw = None
            return State(side=side, id=entity_id, raw=raw)
        try:
            raw = await self.qbo.get(sides.QBO_NAME[entity_type], entity_id)
        except errors.QboNotFound:
            await self._confirm_qbo_deleted(entity_type, entity_id)
            raw = None
        return State(side=side, id=entity_id, raw=raw)

    async def _confirm_qbo_deleted(self, entity_type: str, entity_id: str) -> None:
        """A read that says "not found" counts as deleted only if CDC agrees."""
        since = self.services.clock.now() - dt.timedelta(days=29)
        changed, _ = await self.qbo.cdc([sides.QBO_NAME[entity_type]], since)
        for obj in changed.get(sides.QBO_NAME[entity_type], []):
            if str(obj.get("Id")) == entity_id and obj.get("status") == "Deleted":
                return
        raise errors.PermanentError(
            f"QBO {entity_type} {entity_id} is not found but change data capture "
            "lists no delete for it; check the id and replay"
        )

    async def _refs(self, conn: Any) -> sides.RefMaps:
        # TODO(scale): loads every customer and item link of the connection,
        # up to three times a pass; a company with tens of thousands of
        # customers wants a lookup of just the ids the invoice names.
        cur = await conn.execute(
            QUERIES["reference_links"], {"connection_id": self.connection_id}
        )
        return sides.RefMaps.from_rows(await cur.fetchall())

    async def _map(
        self, conn: Any, state: State, entity_type: str, base: model.Entity | None
    ) -> None:
        """Fill ``state.canonical``; a deleted record is the base marked deleted."""
        if state.raw is None:
            if entity_type != "invoice" or base is None:
                raise errors.PermanentError(
                    f"{state.side} {entity_type} {state.id} was deleted; "
                    "only invoices follow deletes"
                )
            assert isinstance(base, model.Invoice)
            state.canonical = dataclasses.replace(base, status=model.Status.DELETED)
            return
        if state.side == "internal":
            state.canonical = sides.internal_to_canonical(entity_type, state.raw)
            return
        refs = await self._refs(conn)
        missing = sides.unlinked_qbo_refs(entity_type, state.raw, refs)
        if missing:
            raise _NeedReferences([("qbo", t, i) for t, i in missing])
        state.canonical = sides.qbo_to_canonical(entity_type, state.raw, refs)

    # -- links ---------------------------------------------------------------

    async def _lock_link_by_side(
        self, conn: Any, side: str, entity_type: str, entity_id: str
    ) -> dict[str, Any] | None:
        query = "lock_link_by_internal" if side == "internal" else "lock_link_by_qbo"
        cur = await conn.execute(
            QUERIES[query],
            {
                "connection_id": self.connection_id,
                "entity_type": entity_type,
                "entity_id": entity_id,
            },
        )
        row: dict[str, Any] | None = await cur.fetchone()
        return row

    async def _save_link(
        self,
        conn: Any,
        link: dict[str, Any],
        *,
        base: model.Entity,
        internal: State,
        qbo: State,
        state: str = "active",
    ) -> None:
        await conn.execute(
            QUERIES["save_link"],
            {
                "link_id": link["id"],
                "internal_id": internal.id,
                "qbo_id": qbo.id,
                "natural_key": sides.natural_key(base),
                "state": state,
                "base": Jsonb(codec.to_json(base)),
                "base_hash": hashing.state_hash(base),
                "qbo_hash": hashing.state_hash(qbo.canonical)
                if qbo.canonical
                else None,
                "qbo_sync_token": qbo.token,
                "internal_hash": hashing.state_hash(internal.canonical)
                if internal.canonical
                else None,
                "internal_version": int(internal.token) if internal.token else None,
            },
        )

    # -- a record seen for the first time ---------------------------------

    async def _first_sync(
        self, conn: Any, side: str, entity_type: str, source: State
    ) -> Outcome:
        if source.raw is None:
            return Outcome(
                status="noop", detail="deleted before it was ever linked", link_id=None
            )
        await self._map(conn, source, entity_type, None)
        assert source.canonical is not None
        key = sides.natural_key(source.canonical)
        number = {
            "connection_id": self.connection_id,
            "entity_type": entity_type,
            "natural_key": key,
        }
        # Claim the number for this transaction. A concurrent job for the same
        # record seen from the other side waits here until this one commits,
        # then finds the finished link instead of creating a twin.
        cur = await conn.execute(QUERIES["claim_number"], number)
        if await cur.fetchone() is None:
            raise errors.StaleWrite(f"the number {key!r} is being synced elsewhere")
        outcome = await self._first_sync_claimed(conn, side, entity_type, source, key)
        await conn.execute(QUERIES["release_number"], number)
        return outcome

    async def _first_sync_claimed(
        self, conn: Any, side: str, entity_type: str, source: State, key: str
    ) -> Outcome:
        assert source.canonical is not None
        cur = await conn.execute(
            QUERIES["lock_link_by_natural_key"],
            {
                "connection_id": self.connection_id,
                "entity_type": entity_type,
                "natural_key": key,
            },
        )
        holders = await cur.fetchall()
        if len(holders) > 1:
            # Two pairs hold one number only while numbers are being swapped.
            raise errors.StaleWrite(f"{len(holders)} pairs hold {key!r} right now")
        if holders:
            # A pair already holds this number: the same record seen from the
            # other side (adopt it), or a real duplicate (refuse).
            link = holders[0]
            if link[f"{side}_id"] not in (None, source.id):
                raise errors.PermanentError(
                    f"two {side} {entity_type} records share the number {key!r} "
                    f"({link[f'{side}_id']} and {source.id}); make one unique, then replay"
                )
            link = await self._set_link_id(conn, link, side, source.id)
            return await self._linked_sync(conn, link, side, entity_type)

        other_side = _other(side)
        matches = await self._find_counterpart(other_side, entity_type, key)
        if len(matches) > 1:
            raise errors.PermanentError(
                f"{len(matches)} {other_side} {entity_type} records carry {key!r}; "
                "cannot tell which one to link"
            )
        if matches:
            return await self._adopt(
                conn, side, entity_type, source, key, other_id=matches[0]
            )

        if (
            isinstance(source.canonical, model.Invoice)
            and source.canonical.status != model.Status.OPEN
        ):
            # Voided (or deleted) before we ever saw it open: there is nothing
            # to carry across (a void invoice has no lines left to send), and
            # the other system has no counterpart to void. Leave no link, so
            # the record is judged afresh should it ever come back.
            return Outcome(
                status="noop",
                detail=f"{source.canonical.status} before it was ever synced; "
                f"nothing to create in {other_side}",
                link_id=None,
            )

        link = await self._insert_link(
            conn, entity_type, key, **{f"{side}_id": source.id}
        )
        created = await self._create(conn, other_side, entity_type, source)
        internal, qbo = (source, created) if side == "internal" else (created, source)
        await self._save_link(
            conn, link, base=source.canonical, internal=internal, qbo=qbo
        )
        return Outcome(
            status="applied",
            detail=f"created in {other_side} as {created.id}",
            link_id=link["id"],
        )

    async def _adopt(
        self,
        conn: Any,
        side: str,
        entity_type: str,
        source: State,
        key: str,
        *,
        other_id: str,
    ) -> Outcome:
        """Link ``source`` with the other system's record carrying its number.

        When that record is one we created earlier (a create whose answer was
        lost), what we sent is the base to merge against. Otherwise it is
        someone else's record: an invoice is linked only if it agrees field
        for field, because two different invoices sharing a number must never
        be merged into one.
        """
        assert source.canonical is not None
        other_side = _other(side)
        cur = await conn.execute(
            QUERIES["create_attempt"],
            {
                "connection_id": self.connection_id,
                "entity_type": entity_type,
                "target_side": other_side,
                "source_id": source.id,
            },
        )
        attempt = await cur.fetchone()
        base: model.Entity | None = None
        if attempt is not None and attempt["natural_key"] == key:
            base = codec.from_json(sides.MODEL[entity_type], attempt["sent"])
        elif entity_type == "invoice":
            other = await self._fetch(other_side, entity_type, other_id)
            await self._map(conn, other, entity_type, None)
            if other.canonical != source.canonical:
                differ = [
                    f
                    for f in model.INVOICE_FIELDS
                    if getattr(other.canonical, f) != getattr(source.canonical, f)
                ]
                raise errors.PermanentError(
                    f"{other_side} invoice {other_id} already carries the number "
                    f"{key!r} but differs in {', '.join(differ)}: it is another "
                    f"invoice, so {side} {source.id} was not linked to it. Give one "
                    "of them a new number, then replay"
                )
        link = await self._insert_link(
            conn,
            entity_type,
            key,
            **{f"{side}_id": source.id, f"{other_side}_id": other_id},
        )
        if base is not None:
            await conn.execute(
                QUERIES["set_link_base"],
                {
                    "link_id": link["id"],
                    "base": Jsonb(codec.to_json(base)),
                    "base_hash": hashing.state_hash(base),
                },
            )
            link = {**link, "base": codec.to_json(base)}
        return await self._linked_sync(conn, link, side, entity_type)

    async def _record_attempt(
        self, entity_type: str, target_side: str, source: State
    ) -> None:
        assert source.canonical is not None
        async with self.services.pool.connection() as own:  # autocommit
            await own.execute(
                QUERIES["record_create_attempt"],
                {
                    "connection_id": self.connection_id,
                    "entity_type": entity_type,
                    "target_side": target_side,
                    "source_id": source.id,
                    "natural_key": sides.natural_key(source.canonical),
                    "sent": Jsonb(codec.to_json(source.canonical)),
                },
            )

    async def _insert_link(
        self,
        conn: Any,
        entity_type: str,
        key: str,
        *,
        internal_id: str | None = None,
        qbo_id: str | None = None,
    ) -> dict[str, Any]:
        cur = await conn.execute(
            QUERIES["insert_link"],
            {
                "connection_id": self.connection_id,
                "entity_type": entity_type,
                "natural_key": key,
                "internal_id": internal_id,
                "qbo_id": qbo_id,
            },
        )
        row: dict[str, Any] = await cur.fetchone()
        return row

    async def _set_link_id(
        self, conn: Any, link: dict[str, Any], side: str, entity_id: str
    ) -> dict[str, Any]:
        await conn.execute(
            f"UPDATE links SET {side}_id = %(entity_id)s, updated_at = now() WHERE id = %(link_id)s",
            {"entity_id": entity_id, "link_id": link["id"]},
        )
        cur = await conn.execute(QUERIES["lock_link"], {"link_id": link["id"]})
        row: dict[str, Any] = await cur.fetchone()
        return row

    async def _find_counterpart(
        self, side: str, entity_type: str, key: str
    ) -> list[str]:
        """Ids on ``side`` carrying the natural key. Errors propagate: a failed
        lookup is never taken for "not found, create"."""
        if side == "qbo":
            field = sides.QBO_KEY_FIELD[entity_type]
            try:
                found = await self.qbo.find_by(sides.QBO_NAME[entity_type], field, key)
            except errors.QboPermanentError as exc:
                # QBO's query lexer rejects some characters even inside a
                # quoted literal (curly quotes, en dashes). Creating without
                # the lookup could make a twin, so the job fails for retry
                # (in case the refusal passes) and ends as a dead letter
                # that says what to change.
                raise errors.TransientError(
                    f"cannot look up {entity_type} {key!r} in QBO ({exc}); QBO "
                    "cannot search for this value, so nothing was created: "
                    "remove curly quotes or dashes from it, then replay"
                ) from exc
            return [str(obj["Id"]) for obj in found]
        filters = {sides.INTERNAL_KEY_FILTER[entity_type]: key}
        found = await self.internal.find(sides.INTERNAL_NAME[entity_type], **filters)
        return [str(obj["id"]) for obj in found if obj.get("status") != "deleted"]

    async def _create(
        self, conn: Any, side: str, entity_type: str, source: State
    ) -> State:
        assert source.canonical is not None
        key = idempotency_key(self.connection_id, entity_type, source.side, source.id)
        if side == "qbo":
            refs = await self._refs(conn)
            missing = sides.unlinked_internal_refs(source.canonical, refs)
            if missing:
                raise _NeedReferences([("internal", t, i) for t, i in missing])
            body = sides.qbo_create_body(
                source.canonical,
                refs,
                income_account_id=await self._income_account(conn),
            )
            await self._record_attempt(entity_type, "qbo", source)
            try:
                raw = await self.qbo.create(
                    sides.QBO_NAME[entity_type], body, request_id=key
                )
            except errors.QboNotFound as exc:
                raise _refused_reference(exc, source.canonical, refs) from exc
            except errors.QboPermanentError as exc:
                explained = _explained(exc, source.canonical)
                if explained is None:
                    raise
                raise explained from exc
            state = State(side="qbo", id=str(raw["Id"]), raw=raw)
        else:
            body = sides.internal_create_body(source.canonical)
            await self._record_attempt(entity_type, "internal", source)
            raw = await self.internal.create(
                sides.INTERNAL_NAME[entity_type], body, idempotency_key=key
            )
            state = State(side="internal", id=str(raw["id"]), raw=raw)
        await self._map(conn, state, entity_type, None)
        return state

    async def _income_account(self, conn: Any) -> str:
        cur = await conn.execute(
            "SELECT income_account_id FROM connections WHERE id = %(id)s",
            {"id": self.connection_id},
        )
        row = await cur.fetchone()
        if row and row["income_account_id"]:
            return str(row["income_account_id"])
        # Borrow the income account of an item QBO already has; a sandbox
        # company always ships with some.
        items = await self.qbo.query("select * from Item maxresults 1")
        account = str(
            ((items[0] if items else {}).get("IncomeAccountRef") or {}).get(
                "value", "1"
            )
        )
        await conn.execute(
            "UPDATE connections SET income_account_id = %(a)s WHERE id = %(id)s",
            {"a": account, "id": self.connection_id},
        )
        return account

    # -- a linked record -----------------------------------------------------

    async def _linked_sync(
        self, conn: Any, link: dict[str, Any], side: str, entity_type: str
    ) -> Outcome:
        link_id = link["id"]
        if link["state"] == "deleted":
            return Outcome(
                status="noop", detail="the pair was deleted", link_id=link_id
            )
        base = (
            codec.from_json(sides.MODEL[entity_type], link["base"])
            if link["base"]
            else None
        )

        source_id = link[f"{side}_id"]
        source = await self._fetch(side, entity_type, source_id)
        if (
            link["state"] == "active"
            and base is not None
            and self._is_echo(link, source)
        ):
            return Outcome(
                status="echo",
                detail=f"our own write to {side} came back",
                link_id=link_id,
            )

        other_side = _other(side)
        other = await self._fetch(other_side, entity_type, link[f"{other_side}_id"])
        internal, qbo = (source, other) if side == "internal" else (other, source)
        await self._map(conn, internal, entity_type, base)
        await self._map(conn, qbo, entity_type, base)
        assert internal.canonical is not None and qbo.canonical is not None

        if link["state"] == "held":
            return await self._held(conn, link, base, internal, qbo)

        result = _merge(base, internal.canonical, qbo.canonical)
        if result.conflicts:
            await self._open_conflict(conn, link, result.conflicts, internal, qbo)
            names = ", ".join(c.field for c in result.conflicts)
            return Outcome(
                status="conflict",
                detail=f"held: both sides changed {names}",
                link_id=link_id,
            )
        return await self._apply(conn, link, result.merged, internal, qbo)

    def _is_echo(self, link: dict[str, Any], source: State) -> bool:
        """Is this exactly the state our last write to that side produced?"""
        if source.raw is None:
            return False
        if source.side == "qbo":
            return source.token is not None and source.token == link["qbo_sync_token"]
        return (
            source.token is not None
            and link["internal_version"] is not None
            and int(source.token) == link["internal_version"]
        )

    async def _apply(
        self,
        conn: Any,
        link: dict[str, Any],
        merged: model.Entity,
        internal: State,
        qbo: State,
    ) -> Outcome:
        wrote: list[str] = []
        deleted = (
            isinstance(merged, model.Invoice) and merged.status == model.Status.DELETED
        )
        for state in (internal, qbo):
            if state.raw is None and not deleted:
                # A merge or a person's resolution keeps a record the other
                # side deleted; a deleted record cannot be brought back.
                raise errors.PermanentError(
                    f"{state.side} {sides.type_of(merged)} {state.id} was deleted and "
                    "cannot be restored; recreate it there or resolve for the delete"
                )
        # Nothing is written to a side whose record is already gone.
        if internal.canonical != merged and internal.raw is not None:
            internal = await self._write_internal(conn, internal, merged)
            wrote.append("internal")
        if qbo.canonical != merged and qbo.raw is not None:
            qbo = await self._write_qbo(conn, qbo, merged, internal)
            wrote.append("qbo")
        await self._save_link(
            conn,
            link,
            base=merged,
            internal=internal,
            qbo=qbo,
            state="deleted" if deleted else "active",
        )
        if not wrote:
            return Outcome(
                status="noop", detail="both sides already agree", link_id=link["id"]
            )
        return Outcome(
            status="applied", detail="wrote " + " and ".join(wrote), link_id=link["id"]
        )

    async def _write_internal(
        self, conn: Any, current: State, merged: model.Entity
    ) -> State:
        entity = sides.INTERNAL_NAME[sides.type_of(merged)]
        assert current.canonical is not None and current.raw is not None
        try:
            if isinstance(merged, model.Invoice) and merged.status != model.Status.OPEN:
                if merged.status == model.Status.DELETED:
                    await self.internal.delete(entity, current.id)
                    return dataclasses.replace(current, raw=None, canonical=merged)
                # A void keeps number, dates and memo: carry their changes
                # first, while the invoice can still be edited, then void it.
                raw = current.raw
                fields = sides.internal_patch(current.canonical, merged)
                if fields:
                    raw = await self.internal.update(
                        entity, current.id, fields, version=int(raw["version"])
                    )
                if getattr(current.canonical, "status", None) != model.Status.VOID:
                    raw = await self.internal.void_invoice(current.id)
            else:
                fields = sides.internal_patch(current.canonical, merged)
                raw = await self.internal.update(
                    entity, current.id, fields, version=int(current.raw["version"])
                )
        except errors.InternalVersionMismatch as exc:
            raise errors.StaleWrite(f"internal {current.id} moved under us") from exc
        state = State(side="internal", id=current.id, raw=raw)
        await self._map(conn, state, sides.type_of(merged), merged)
        return state

    async def _refuse_taken_number(self, current: State, merged: model.Entity) -> None:
        """A renumber must not give QBO a second invoice with one DocNumber
        (QBO itself accepts it when its duplicate check is off)."""
        if not isinstance(merged, model.Invoice) or not isinstance(
            current.canonical, model.Invoice
        ):
            return
        if merged.doc_number == current.canonical.doc_number:
            return
        holders = [
            str(obj["Id"])
            for obj in await self.qbo.find_by("Invoice", "DocNumber", merged.doc_number)
            if str(obj["Id"]) != current.id
        ]
        # A holder that is itself being renumbered away (its internal twin no
        # longer carries the number) lets go of it in its own job: two
        # invoices swapping numbers overlap for a moment, then agree.
        taken = [h for h in holders if not await self._leaving(h, merged.doc_number)]
        if taken:
            raise errors.PermanentError(
                f"cannot renumber QBO invoice {current.id} to {merged.doc_number!r}: "
                f"QBO invoice {', '.join(taken)} already carries it; choose another "
                "number, then replay"
            )

    async def _leaving(self, qbo_id: str, number: str) -> bool:
        """Is the QBO invoice ``qbo_id`` linked to an internal invoice that
        no longer carries ``number``?"""
        async with self.services.pool.connection() as conn:
            cur = await conn.execute(
                QUERIES["find_link_by_qbo"],
                {
                    "connection_id": self.connection_id,
                    "entity_type": "invoice",
                    "entity_id": qbo_id,
                },
            )
            link = await cur.fetchone()
        if link is None or link["internal_id"] is None:
            return False
        try:
            twin = await self.internal.get("invoices", link["internal_id"])
        except errors.InternalGone:
            return False
        return bool(twin.get("number") != number)

    async def _write_qbo(
        self, conn: Any, current: State, merged: model.Entity, internal: State
    ) -> State:
        entity_type = sides.type_of(merged)
        entity = sides.QBO_NAME[entity_type]
        assert current.canonical is not None and current.raw is not None
        token = str(current.raw["SyncToken"])
        key = idempotency_key(
            self.connection_id, entity_type, "merge", f"{current.id}:{token}"
        )
        try:
            if (
                isinstance(merged, model.Invoice)
                and merged.status == model.Status.DELETED
            ):
                if sides.qbo_has_payments(current.raw):
                    # Policy: money was received against it, so QBO keeps the
                    # record and voids it; otherwise the invoice is deleted.
                    raw = await self.qbo.void_invoice(current.id, token, request_id=key)
                    state = State(side="qbo", id=current.id, raw=raw)
                    await self._map(conn, state, entity_type, merged)
                    return state
                await self.qbo.delete(entity, current.id, token, request_id=key)
                return dataclasses.replace(current, raw=None, canonical=merged)
            if isinstance(merged, model.Invoice) and merged.status == model.Status.VOID:
                # As internally: other fields first, then the void.
                raw = current.raw
                body = sides.qbo_update_body(
                    current.canonical, merged, raw, await self._refs(conn)
                )
                if not mapping.is_noop_qbo_update(body):
                    raw = await self.qbo.update(entity, body, request_id=key)
                    token = str(raw["SyncToken"])
                    key = idempotency_key(
                        self.connection_id,
                        entity_type,
                        "merge",
                        f"{current.id}:{token}",
                    )
                if getattr(current.canonical, "status", None) != model.Status.VOID:
                    raw = await self.qbo.void_invoice(current.id, token, request_id=key)
            else:
                if (
                    isinstance(current.canonical, model.Invoice)
                    and current.canonical.status != model.Status.OPEN
                ):
                    raise errors.PermanentError(
                        f"QBO invoice {current.id} is {current.canonical.status} and "
                        "cannot be reopened; void or delete it internally too"
                    )
                refs = await self._refs(conn)
                missing = sides.unlinked_internal_refs(merged, refs)
                if missing:
                    raise _NeedReferences([("internal", t, i) for t, i in missing])
                await self._refuse_taken_number(current, merged)
                _refuse_total_below_paid(current, merged)
                body = sides.qbo_update_body(
                    current.canonical, merged, current.raw, refs
                )
                try:
                    raw = await self.qbo.update(entity, body, request_id=key)
                except errors.QboNotFound as exc:
                    if exc.element in REFERENCE_ELEMENTS:
                        raise _refused_reference(exc, merged, refs) from exc
                    raise
        except errors.QboTransientError as exc:
            if getattr(exc, "code", None) == "5010":
                raise errors.StaleWrite(f"QBO {current.id} moved under us") from exc
            raise
        except errors.QboPermanentError as exc:
            explained = _explained(exc, merged)
            if explained is None:
                raise
            raise explained from exc
        state = State(side="qbo", id=current.id, raw=raw)
        await self._map(conn, state, entity_type, merged)
        return state

    # -- conflicts -------------------------------------------------------------

    def _conflict_fields(self, kind: type[Any], conflicts: Any) -> list[dict[str, Any]]:
        return [
            {
                "field": c.field,
                "base": sides.field_to_json(kind, c.field, c.base),
                "internal": sides.field_to_json(kind, c.field, c.internal),
                "qbo": sides.field_to_json(kind, c.field, c.qbo),
            }
            for c in conflicts
        ]

    async def _open_conflict(
        self,
        conn: Any,
        link: dict[str, Any],
        conflicts: Any,
        internal: State,
        qbo: State,
    ) -> None:
        assert internal.canonical is not None and qbo.canonical is not None
        await conn.execute(
            QUERIES["open_conflict"],
            {
                "link_id": link["id"],
                "fields": Jsonb(
                    self._conflict_fields(type(internal.canonical), conflicts)
                ),
                "internal_state": Jsonb(codec.to_json(internal.canonical)),
                "qbo_state": Jsonb(codec.to_json(qbo.canonical)),
            },
        )
        await conn.execute(QUERIES["hold_link"], {"link_id": link["id"]})
        self.services.metrics.conflicts.inc()

    async def _held(
        self,
        conn: Any,
        link: dict[str, Any],
        base: model.Entity | None,
        internal: State,
        qbo: State,
    ) -> Outcome:
        """A held pair: refresh the conflict, or apply a person's resolution."""
        assert internal.canonical is not None and qbo.canonical is not None
        cur = await conn.execute(
            QUERIES["open_conflict_for_link"], {"link_id": link["id"]}
        )
        conflict = await cur.fetchone()
        if conflict is not None and conflict["resolution"] is not None:
            try:
                # The three states share one entity type; the constrained
                # TypeVar of resolve cannot see that through the Entity union.
                resolved: model.Entity = merge.resolve(
                    cast(Any, base),
                    internal.canonical,
                    qbo.canonical,
                    sides.choices_from_json(
                        sides.MODEL[link["entity_type"]], conflict["resolution"]
                    ),
                    source="internal",
                )
            except ValueError as exc:
                # Both sides changed another field after the person chose:
                # the choice no longer covers the conflict. Ask again.
                result = _merge(base, internal.canonical, qbo.canonical)
                await conn.execute(
                    QUERIES["reopen_conflict"],
                    {
                        "conflict_id": conflict["id"],
                        "fields": Jsonb(
                            self._conflict_fields(
                                type(internal.canonical), result.conflicts
                            )
                        ),
                        "internal_state": Jsonb(codec.to_json(internal.canonical)),
                        "qbo_state": Jsonb(codec.to_json(qbo.canonical)),
                    },
                )
                return Outcome(
                    status="held",
                    detail=f"conflict {conflict['id']} changed after it was resolved "
                    f"({exc}); choose again",
                    link_id=link["id"],
                )
            outcome = await self._apply(conn, link, resolved, internal, qbo)
            await conn.execute(
                QUERIES["close_conflict"], {"conflict_id": conflict["id"]}
            )
            return Outcome(
                status="applied",
                detail=f"conflict {conflict['id']} resolved; {outcome.detail}",
                link_id=link["id"],
            )

        result = _merge(base, internal.canonical, qbo.canonical)
        if conflict is None:
            # Held without a conflict row cannot happen through the engine;
            # recover by treating the pair as active again.
            if result.conflicts:
                await self._open_conflict(conn, link, result.conflicts, internal, qbo)
                return Outcome(status="conflict", detail="held", link_id=link["id"])
            return await self._apply(conn, link, result.merged, internal, qbo)
        await conn.execute(
            QUERIES["refresh_conflict"],
            {
                "conflict_id": conflict["id"],
                "fields": Jsonb(
                    self._conflict_fields(type(internal.canonical), result.conflicts)
                    or conflict["fields"]
                ),
                "internal_state": Jsonb(codec.to_json(internal.canonical)),
                "qbo_state": Jsonb(codec.to_json(qbo.canonical)),
            },
        )
        return Outcome(
            status="held",
            detail=f"conflict {conflict['id']} is open; nothing written",
            link_id=link["id"],
        )
