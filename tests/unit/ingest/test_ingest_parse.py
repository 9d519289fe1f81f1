"""Webhook bodies become entity signals; nothing else in them is trusted."""

from __future__ import annotations

import json

import pytest

from ledgerbridge import errors
from ledgerbridge.ingest import parse


def _legacy(*entities, realm="310687"):
    return json.dumps(
        {
            "eventNotifications": [
                {"realmId": realm, "dataChangeEvent": {"entities": list(entities)}}
            ]
        }
    ).encode()


def test_parse_qbo_legacy_batch_keeps_each_entity():
    body = _legacy(
        {
            "name": "Invoice",
            "id": "12",
            "operation": "Update",
            "lastUpdated": "2026-12-04T15:04:05.123Z",
        },
        {
            "name": "Customer",
            "id": "3",
            "operation": "Create",
            "lastUpdated": "2026-12-04T15:04:06Z",
        },
        {
            "name": "Payment",
            "id": "9",
            "operation": "Create",
            "lastUpdated": "2026-12-04T15:04:07Z",
        },
    )
    signals, skipped = parse.parse_qbo(body)
    assert [(s.entity_type, s.entity_id, s.operation) for s in signals] == [
        ("invoice", "12", "update"),
        ("customer", "3", "create"),
    ]
    assert skipped == 1
    assert signals[0].realm_id == "310687"
    assert signals[0].occurred_at.isoformat() == "2026-12-04T15:04:05.123000+00:00"


def test_parse_qbo_legacy_same_change_twice_has_the_same_dedupe_key():
    entity = {
        "name": "Invoice",
        "id": "12",
        "operation": "Update",
        "lastUpdated": "2026-12-04T15:04:05Z",
    }
    first, _ = parse.parse_qbo(_legacy(entity))
    again, _ = parse.parse_qbo(_legacy(entity))
    later, _ = parse.parse_qbo(
        _legacy({**entity, "lastUpdated": "2026-12-04T15:05:00Z"})
    )
    assert first[0].dedupe_key == again[0].dedupe_key
    assert first[0].dedupe_key != later[0].dedupe_key


def test_parse_qbo_cloudevents_uses_the_event_id_and_nanosecond_times():
    body = json.dumps(
        [
            {
                "specversion": "1.0",
                "id": "88cd52aa",
                "type": "qbo.invoice.voided.v1",
                "time": "2025-09-10T21:31:25.179851517Z",
                "intuitentityid": "1234",
                "intuitaccountid": "310687",
                "data": {},
            },
            {
                "specversion": "1.0",
                "id": "88cd52ab",
                "type": "qbo.customer.merged.v1",
                "intuitentityid": "5",
                "intuitaccountid": "310687",
                "data": {"deletedid": "27"},
            },
        ]
    ).encode()
    signals, skipped = parse.parse_qbo(body)
    assert skipped == 0
    assert signals[0].dedupe_key == "qbo:ce:88cd52aa"
    assert signals[0].operation == "voided"
    assert signals[0].occurred_at.microsecond == 179851
    assert signals[1].merged_from == "27"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"eventNotifications": "x"}',
        _legacy({"name": "Invoice", "operation": "Update"}),
        b'[{"id": "x"}]',
        b'{"eventNotifications": []}',
    ],
)
def test_parse_qbo_refuses_malformed_bodies(body):
    with pytest.raises(errors.MalformedPayload):
        parse.parse_qbo(body)


def test_parse_internal_half_payload_still_names_the_entity():
    signal = parse.parse_internal(
        b'{"id": "evt_9", "type": "invoice.updated", "data": {"id": "inv_1"}}'
    )
    assert (signal.side, signal.entity_type, signal.entity_id) == (
        "internal",
        "invoice",
        "inv_1",
    )
    assert signal.occurred_at is None
    assert signal.dedupe_key == "internal:evt_9"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"type": "invoice.updated", "data": {"id": "inv_1"}}',
        b'{"id": "evt_1", "type": "order.updated", "data": {"id": "o_1"}}',
        b'{"id": "evt_1", "type": "invoice.updated", "data": {}}',
        b"\xff\xfe",
    ],
)
def test_parse_internal_refuses_malformed_bodies(body):
    with pytest.raises(errors.MalformedPayload):
        parse.parse_internal(body)
