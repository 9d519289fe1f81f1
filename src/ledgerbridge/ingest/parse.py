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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.MalformedPayload(f"body is not JSON: {exc}") from exc


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
        realm = note.get("realmId")
        entities = (note.get("dataChangeEvent") or {}).get("entities")
        if not isinstance(realm, str) or not isinstance(entities, list):
            raise errors.MalformedPayload("eventNotification without realmId/entities")
        for entity in entities:
            if not isinstance(entity, dict):
                raise errors.MalformedPayload("an entity entry is not an object")
            name = str(entity.get("name", "")).lower()
            entity_id = entity.get("id")
            if not isinstance(entity_id, str) or not entity_id:
                raise errors.MalformedPayload("an entity entry has no id")
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
                    merged_from=entity.get("deletedId"),
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
        entity_id = event.get("intuitentityid")
        realm = event.get("intuitaccountid")
        event_id = event.get("id")
        if len(parts) < 3 or not entity_id or not realm or not event_id:
            raise errors.MalformedPayload("a CloudEvent lacks type, id or entity")
        name, operation = parts[1], parts[2]
        if name not in QBO_ENTITIES:
            skipped += 1
            continue
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        signals.append(
            Signal(
                side="qbo",
                entity_type=QBO_ENTITIES[name],
                entity_id=str(entity_id),
                operation=operation,
                dedupe_key=f"qbo:ce:{event_id}",
                occurred_at=_parse_time(event.get("time")),
                realm_id=str(realm),
                merged_from=(data or {}).get("deletedid"),
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
    event_id = data.get("id")
    kind = str(data.get("type") or "")
    entity = data.get("data") if isinstance(data.get("data"), dict) else {}
    entity_id = (entity or {}).get("id")
    name, _, operation = kind.partition(".")
    if not isinstance(event_id, str) or not event_id:
        raise errors.MalformedPayload("the event has no id")
    if name not in INTERNAL_ENTITIES:
        raise errors.MalformedPayload(f"unknown event type {kind!r}")
    if not isinstance(entity_id, str) or not entity_id:
        raise errors.MalformedPayload("the event names no entity id")
    return Signal(
        side="internal",
        entity_type=INTERNAL_ENTITIES[name],
        entity_id=entity_id,
        operation=operation,
        dedupe_key=f"internal:{event_id}",
        occurred_at=_parse_time(data.get("occurred_at")),
    )
