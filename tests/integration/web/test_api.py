"""The JSON API, health, readiness and metrics."""

from __future__ import annotations

import httpx

from support import factories


async def test_api_health_ready_and_metrics(stack):
    async with httpx.AsyncClient(base_url=stack.lb_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"
        await factories.internal_invoice(stack, number="INV-MET")
        await stack.settle()
        metrics = (await http.get("/metrics")).text
    assert 'ledgerbridge_sync_outcomes_total{status="applied"}' in metrics


async def test_api_links_events_and_replay(stack):
    await factories.internal_invoice(stack, number="INV-API")
    await stack.settle()
    async with httpx.AsyncClient(base_url=stack.lb_url) as http:
        links = (await http.get("/api/links", params={"entity_type": "invoice"})).json()
        link = next(x for x in links if x["natural_key"] == "INV-API")
        detail = (await http.get(f"/api/links/{link['id']}")).json()
        assert detail["qbo_id"] and detail["internal_id"]
        assert detail["base"]["doc_number"] == "INV-API"
        assert detail["events"], "the timeline lists the pair's events"

        event_id = detail["events"][-1]["id"]
        replayed = await http.post(f"/api/events/{event_id}/replay")
        assert replayed.status_code == 200
        assert replayed.json()["enqueued"] == 1
        await stack.settle()
        events = (await http.get("/api/events", params={"limit": 5})).json()
        replay = next(e for e in events if e["origin"] == "replay")
        # Replaying changes nothing: both sides already agree.
        assert replay["status"] in {"echo", "noop"}

        assert (await http.post("/api/events/999999/replay")).status_code == 404
        assert (await http.get("/api/links/999999")).status_code == 404
        assert (await http.get("/api/conflicts")).json() == []
        assert (await http.get("/api/dead-letters")).json() == []


async def test_api_refuses_odd_query_parameters_with_422(stack):
    async with httpx.AsyncClient(base_url=stack.lb_url) as http:
        for path in (
            "/api/events?limit=-1",
            "/api/events?limit=100000",
            "/api/events?after_id=99999999999999999999",
            "/api/events?status=%00",
            "/api/links?entity_type=%00",
            "/api/conflicts?limit=-5",
            "/api/conflicts?status=maybe",
        ):
            resp = await http.get(path)
            assert resp.status_code == 422, (path, resp.status_code)
