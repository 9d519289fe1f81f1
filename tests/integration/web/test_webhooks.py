"""The webhook endpoints, over real HTTP: verify, record, dedupe, enqueue."""

from __future__ import annotations

import json
import logging

import httpx

from ledgerbridge.ingest import signature
from support import factories


def _internal_body(event_id, entity_id, *, version=None):
    data = {"id": entity_id}
    if version is not None:
        data["version"] = version
    return json.dumps(
        {"id": event_id, "type": "invoice.updated", "data": data}
    ).encode()


async def _post_internal(stack, body, *, secret=None, ts=None):
    settings = stack.services.settings
    ts = ts if ts is not None else int(stack.services.clock.now().timestamp())
    header = signature.sign_internal(
        secret or settings.internal_webhook_secret, ts, body
    )
    async with httpx.AsyncClient(base_url=stack.lb_url) as http:
        return await http.post(
            "/webhooks/internal",
            content=body,
            headers={"X-Signature": header, "Content-Type": "application/json"},
        )


async def _deliveries(stack):
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM deliveries ORDER BY id")
        return await cur.fetchall()


async def _jobs(stack):
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM procrastinate_jobs ORDER BY id")
        return await cur.fetchall()


async def test_webhook_bad_signature_is_401_logged_and_kept(stack, caplog):
    caplog.set_level(logging.WARNING, logger="ledgerbridge")
    body = _internal_body("evt_bad", "inv_x")

    resp = await _post_internal(stack, body, secret="not-the-secret")

    assert resp.status_code == 401
    deliveries = await _deliveries(stack)
    assert [(d["signature_ok"], d["status_code"]) for d in deliveries] == [(False, 401)]
    assert deliveries[0]["body"] == body.decode()
    assert await stack.events() == []
    assert any(getattr(r, "action", "") == "webhook_refused" for r in caplog.records)


async def test_webhook_replayed_old_delivery_is_401(stack):
    old = int(stack.services.clock.now().timestamp()) - 3600
    resp = await _post_internal(stack, _internal_body("evt_old", "inv_x"), ts=old)
    assert resp.status_code == 401


async def test_webhook_qbo_missing_signature_is_401(stack):
    async with httpx.AsyncClient(base_url=stack.lb_url) as http:
        resp = await http.post("/webhooks/qbo", content=b'{"eventNotifications": []}')
    assert resp.status_code == 401


async def test_webhook_malformed_body_is_400_and_kept(stack):
    resp = await _post_internal(stack, b'{"id": "evt_1", "type": "invoice.updated"}')
    assert resp.status_code == 400
    assert "entity id" in resp.json()["error"]
    deliveries = await _deliveries(stack)
    assert [(d["signature_ok"], d["status_code"]) for d in deliveries] == [(True, 400)]


async def test_webhook_qbo_cloudevents_content_type_is_accepted(stack):
    body = json.dumps(
        [
            {
                "specversion": "1.0",
                "id": "ce-1",
                "type": "qbo.invoice.updated.v1",
                "intuitentityid": "999",
                "intuitaccountid": stack.realm_id,
                "time": "2026-12-04T10:00:00Z",
                "data": {},
            }
        ]
    ).encode()
    header = signature.sign_qbo(stack.services.settings.qbo_verifier_token, body)
    async with httpx.AsyncClient(base_url=stack.lb_url) as http:
        resp = await http.post(
            "/webhooks/qbo",
            content=body,
            headers={
                "intuit-signature": header,
                "Content-Type": "application/cloudevents+json",
            },
        )
    assert resp.status_code == 200
    assert resp.json()["accepted"] == 1


async def _quiet_internal_sim(stack):
    """Hold the simulator's own webhooks so only the test's deliveries count."""
    await stack.internal_control.post("/_sim/webhooks/config", json={"hold": True})


async def test_webhook_duplicate_delivery_is_recorded_once(stack):
    await _quiet_internal_sim(stack)
    invoice = await factories.internal_invoice(stack)
    body = _internal_body("evt_dup", invoice["id"], version=1)

    first = await _post_internal(stack, body)
    second = await _post_internal(stack, body)

    assert first.json()["accepted"] == 1
    assert second.json()["duplicates"] == 1
    assert len(await _deliveries(stack)) == 2
    ours = [e for e in await stack.events() if e["dedupe_key"] == "internal:evt_dup"]
    assert len(ours) == 1


async def test_webhook_pending_signals_for_one_entity_coalesce_into_one_job(stack):
    await _quiet_internal_sim(stack)
    invoice = await factories.internal_invoice(stack)
    before = len(await _jobs(stack))

    for n in range(3):
        resp = await _post_internal(stack, _internal_body(f"evt_c{n}", invoice["id"]))
        assert resp.status_code == 200

    jobs = (await _jobs(stack))[before:]
    assert len(jobs) == 1
    statuses = [
        e["status"]
        for e in await stack.events()
        if e["dedupe_key"].startswith("internal:evt_c")
    ]
    assert statuses == ["enqueued", "coalesced", "coalesced"]

    await stack.settle()
    outcomes = {
        e["status"]
        for e in await stack.events()
        if e["dedupe_key"].startswith("internal:evt_c")
    }
    assert outcomes <= {"applied", "echo", "noop"}, outcomes


async def test_webhook_half_payload_still_triggers_a_refetch(stack):
    await _quiet_internal_sim(stack)
    invoice = await factories.internal_invoice(stack, number="INV-HALF")

    # Only "which entity": no version, no time.
    resp = await _post_internal(stack, _internal_body("evt_half", invoice["id"]))
    assert resp.status_code == 200
    await stack.drain()
    await stack.settle()

    assert len(await stack.qbo_invoice_by_number("INV-HALF")) == 1


async def test_webhook_oversized_body_is_413_and_logged(stack):
    body = b'{"id": "evt_big", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = await _post_internal(stack, body)
    assert resp.status_code == 413
    deliveries = await _deliveries(stack)
    assert [(d["status_code"], d["body"]) for d in deliveries] == [(413, "")]


async def test_webhook_hostile_bodies_never_500(stack):
    deep = b"[" * 100_000 + b"]" * 100_000
    huge_int = (
        b'{"id": ' + b"9" * 5000 + b', "type": "invoice.updated", "data": {"id": "x"}}'
    )
    bodies = [
        b'{"id": "evt_n", "type": "invoice.updated", "data": {"id": "inv\\u0000x"}}',
        b'{"id": "evt_s", "type": "invoice.updated", "data": {"id": "\\ud800"}}',
        deep,
        huge_int,
        b'{"id": "evt_l", "type": "invoice.updated", "data": {"id": ["a"]}}',
    ]
    for body in bodies:
        resp = await _post_internal(stack, body)
        assert resp.status_code == 400, (body[:60], resp.status_code, resp.text)
    unsigned_nul = b'{"x": "\x00"}'
    async with httpx.AsyncClient(base_url=stack.lb_url) as http:
        resp = await http.post("/webhooks/qbo", content=unsigned_nul)
        assert resp.status_code == 401
        legacy = [
            {"eventNotifications": [{"realmId": "1", "dataChangeEvent": []}]},
            {"eventNotifications": [{"realmId": "1", "dataChangeEvent": "x"}]},
            {
                "eventNotifications": [
                    {
                        "realmId": "1",
                        "dataChangeEvent": {
                            "entities": [
                                {
                                    "name": "Customer",
                                    "id": "1",
                                    "operation": "Merge",
                                    "deletedId": {"x": 1},
                                }
                            ]
                        },
                    }
                ]
            },
        ]
        for payload in legacy:
            body = json.dumps(payload).encode()
            header = signature.sign_qbo(
                stack.services.settings.qbo_verifier_token, body
            )
            resp = await http.post(
                "/webhooks/qbo", content=body, headers={"intuit-signature": header}
            )
            assert resp.status_code == 400, (payload, resp.text)
        far = signature.sign_internal(
            stack.services.settings.internal_webhook_secret, 10**400, b"{}"
        )
        resp = await http.post(
            "/webhooks/internal", content=b"{}", headers={"X-Signature": far}
        )
        assert resp.status_code == 401
    # Every refusal was logged.
    assert len(await _deliveries(stack)) == len(bodies) + 1 + len(legacy) + 1
