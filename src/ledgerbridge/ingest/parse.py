"""Turn webhook bodies into entity signals; payload fields beyond "which entity"
are kept for the log but never trusted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from ledgerbridge import errors

QBO_ENTITIES = {"invoice": "invoice", "customer": "customer", "item": "item"}
INTERNAL_ENTITIES = {"invoice": "invoice", "customer": "customer", "item": "item"}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Signal:
    """Something about one entity may have changed."""

    side: str
    entity_type: str
    entity_id: str
    operation: str
    dedupe_key: str
    occurred_at: dt.datetime | None
    realm_id: str | None = None
    # Set for QBO merges: the id that was merged away.
    merged_from: str | None = None
    # Set when the origin already knows the connection (reconciler, replay).
    connection_id: int | None = None


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        text = value.replace("Z", "+00:00")
        # CloudEvents times may carry nanoseconds; Python keeps microseconds.
        if "." in text:
            head, _, rest = text.partition(".")
            frac = "".join(ch for ch in rest if ch.isdigit())
            zone = rest[len(frac) :]
            text = f"{head}.{frac[:6]}{zone}"
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _load(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers too long to read.
        raise errors.MalformedPayload(f"body is not JSON: {exc}") from exc


MAX_ID_CHARS = 128


def _id(value: Any, what: str) -> str:
    """An identifier from a payload: a short printable string, or refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise errors.MalformedPayload(f"{what} is not a short string")
    if not value.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise errors.MalformedPayload(f"{what} holds control or invalid characters")
    return value


def _optional_id(value: Any, what: str) -> str | None:
    return None if value is None else _id(value, what)


def parse_qbo(body: bytes) -> tuple[list[Signal], int]:
    """Signals from a legacy ``eventNotifications`` or CloudEvents body.

    Returns the signals and how many entries were skipped (entities we do not
    sync, such as Payment). Raises ``MalformedPayload`` when the body is
    neither format or names no entity at all.
    """
    data = _load(body)
    if isinstance(data, dict) and "eventNotifications" in data:
        signals, skipped = _parse_qbo_legacy(data["eventNotifications"])
    elif isinstance(data, list):
        signals, skipped = _parse_qbo_cloudevents(data)
    else:
        raise errors.MalformedPayload("neither eventNotifications nor CloudEvents")
    if not signals and not skipped:
        raise errors.MalformedPayload("the delivery names no entity")
    return signals, skipped


def _parse_qbo_legacy(notifications: Any) -> tuple[list[Signal], int]:
    if not isinstance(notifications, list):
        raise errors.MalformedPayload("eventNotifications is not a list")
    signals: list[Signal] = []
    skipped = 0
    for note in notifications:
        if not isinstance(note, dict):
            raise errors.MalformedPayload("an eventNotification is not an object")
        change = note.get("dataChangeEvent")
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            raise errors.MalformedPayload("eventNotification without entities")
        realm = _id(note.get("realmId"), "realmId")
        for entity in entities:
            if not isinstance(entity, dict):
                raise errors.MalformedPayload("an entity entry is not an object")
            name = str(entity.get("name", "")).lower()
            entity_id = _id(entity.get("id"), "an entity's id")
            if name not in QBO_ENTITIES:
                skipped += 1
                continue
            operation = str(entity.get("operation") or "")
            updated = entity.get("lastUpdated")
            signals.append(
                Signal(
                    side="qbo",
                    entity_type=QBO_ENTITIES[name],
                    entity_id=entity_id,
                    operation=operation.lower(),
                    dedupe_key=f"qbo:{realm}:{name}:{entity_id}:{operation}:{updated}",
                    occurred_at=_parse_time(updated),
                    realm_id=realm,
                    merged_from=_optional_id(entity.get("deletedId"), "deletedId"),
                )
            )
    return signals, skipped


def _parse_qbo_cloudevents(events: list[Any]) -> tuple[list[Signal], int]:
    signals: list[Signal] = []
    skipped = 0
    for event in events:
        if not isinstance(event, dict) or "specversion" not in event:
            raise errors.MalformedPayload("a CloudEvent has no specversion")
        parts = str(event.get("type", "")).split(".")
        if len(parts) < 3:
            raise errors.MalformedPayload("a CloudEvent lacks a type")
        entity_id = _id(event.get("intuitentityid"), "intuitentityid")
        realm = _id(event.get("intuitaccountid"), "intuitaccountid")
        event_id = _id(event.get("id"), "a CloudEvent's id")
        name, operation = parts[1], parts[2]
        if name not in QBO_ENTITIES:
            skipped += 1
            continue
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        signals.append(
            Signal(
                side="qbo",
                entity_type=QBO_ENTITIES[name],
                entity_id=entity_id,
                operation=operation[:40],
                dedupe_key=f"qbo:ce:{event_id}",
                occurred_at=_parse_time(event.get("time")),
                realm_id=realm,
                merged_from=_optional_id((data or {}).get("deletedid"), "deletedid"),
            )
        )
    return signals, skipped


def parse_internal(body: bytes) -> Signal:
    """The signal in an internal-system webhook ``{id, type, occurred_at, data}``.

    Only the event id, the entity type and the entity id are required: a
    half-filled payload still triggers a refetch.
    """
    data = _load(body)
    if not isinstance(data, dict):
        raise errors.MalformedPayload("the body is not a JSON object")
    kind = str(data.get("type") or "")
    entity = data.get("data") if isinstance(data.get("data"), dict) else {}
    name, _, operation = kind.partition(".")
    if not data.get("id"):
        raise errors.MalformedPayload("the event has no id")
    event_id = _id(data.get("id"), "the event id")
    if name not in INTERNAL_ENTITIES:
        raise errors.MalformedPayload(f"unknown event type {kind[:40]!r}")
    if not (entity or {}).get("id"):
        raise errors.MalformedPayload("the event names no entity id")
    entity_id = _id((entity or {}).get("id"), "the entity id")
    return Signal(
        side="internal",
        entity_type=INTERNAL_ENTITIES[name],
        entity_id=entity_id,
        operation=operation[:40],
        dedupe_key=f"internal:{event_id}",
        occurred_at=_parse_time(data.get("occurred_at")),
    )
