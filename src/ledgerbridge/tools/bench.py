"""``ledgerbridge bench``: figures for ingest, sync, echoes, memory and storage.

It prints, never asserts: numbers depend on the machine. Everything runs on
loopback in one process (``tools.stack``: the simulators in threads,
LedgerBridge's app and worker on this event loop) against a throwaway
database, so the figures measure LedgerBridge plus the simulators' overhead,
not a production deployment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import resource
import statistics
import sys
import time
from typing import Any

import httpx

from ledgerbridge.ingest import signature
from ledgerbridge.settings import Settings
from ledgerbridge.tools.stack import Stack, open_stack

# Requests in flight at once while measuring ingest.
INGEST_CONCURRENCY = 8
# At least this many deliveries, so percentiles mean something on tiny runs.
MIN_DELIVERIES = 50
DELIVERIES_PER_INVOICE = 5
# Invoices edited to measure what one echo costs.
MAX_ECHOES = 50
# Worker concurrency while syncing (the CLI's worker default).
SYNC_CONCURRENCY = 4


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""


def render(figures: list[Figure]) -> str:
    """A compact table: figure, value, unit, how it was measured."""
    width = max(len(f.name) for f in figures)
    lines = [f"{'figure':<{width}}  {'value':>10}  unit"]
    lines.append("-" * (width + 40))
    for f in figures:
        value = f"{f.value:,.0f}" if f.value >= 100 else f"{f.value:,.2f}"
        note = f"  ({f.note})" if f.note else ""
        lines.append(f"{f.name:<{width}}  {value:>10}  {f.unit}{note}")
    return "\n".join(lines)


def _percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def _scalar(stack: Stack, statement: str) -> int:
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(statement)
        row = await cur.fetchone()
    return int(next(iter(row.values()))) if row else 0


async def _db_size(stack: Stack) -> int:
    return await _scalar(stack, "SELECT pg_database_size(current_database()) AS s")


async def _events(stack: Stack) -> int:
    return await _scalar(stack, "SELECT count(*) AS n FROM events")


async def _seq(stack: Stack, side: str) -> int:
    requests = await (
        stack.qbo_requests() if side == "qbo" else stack.internal_requests()
    )
    return int(requests[-1]["seq"]) if requests else 0


async def _setup(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = await stack.internal.post(
        "/api/customers",
        json={"name": "Bench Customer", "email": "bench@example.com"},
        headers={"Idempotency-Key": "bench-customer"},
    )
    item = await stack.internal.post(
        "/api/items",
        json={"sku": "BENCH-1", "name": "Bench item", "unit_price": "150.00"},
        headers={"Idempotency-Key": "bench-item"},
    )
    customer.raise_for_status()
    item.raise_for_status()
    # Linked before timing starts, so each invoice costs only itself.
    await stack.settle()
    return customer.json(), item.json()


async def _linked(stack: Stack, prefix: str) -> int:
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM links WHERE entity_type = 'invoice'"
            " AND qbo_id IS NOT NULL AND natural_key LIKE %(p)s",
            {"p": f"{prefix}%"},
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def _sync_throughput(
    stack: Stack, invoices: int, customer: dict[str, Any], item: dict[str, Any]
) -> list[Figure]:
    qbo_seq = await _seq(stack, "qbo")
    started = time.perf_counter()
    for n in range(invoices):
        resp = await stack.internal.post(
            "/api/invoices",
            json={
                "number": f"BN-{n + 1}",
                "customer_id": customer["id"],
                "currency": "USD",
                "issue_date": "2026-12-01",
                "due_date": "2026-12-31",
                "lines": [
                    {
                        "item_id": item["id"],
                        "description": "Benchmarked work",
                        "quantity": str(n % 5 + 1),
                        "unit_price": item["unit_price"],
                    }
                ],
                "memo": "Thank you for your business",
                "status": "open",
            },
            headers={"Idempotency-Key": f"bench-invoice-{n}"},
        )
        resp.raise_for_status()
    created = time.perf_counter()
    await stack.settle(concurrency=SYNC_CONCURRENCY)
    finished = time.perf_counter()
    linked = await _linked(stack, "BN-")
    qbo_requests = len(await stack.qbo_requests(qbo_seq))
    elapsed = finished - started
    return [
        Figure(
            name="sync throughput",
            value=linked / elapsed if elapsed else 0.0,
            unit="invoices/s",
            note=f"{linked}/{invoices} linked in {elapsed:.1f}s from the first create"
            f" ({created - started:.1f}s creating)",
        ),
        Figure(
            name="QBO requests per synced invoice",
            value=qbo_requests / linked if linked else 0.0,
            unit="requests",
            note="incl. the echo of each create",
        ),
    ]


async def _echo_cost(stack: Stack, invoices: int) -> list[Figure]:
    """Edit invoices with QBO's webhooks held; then count what the echoes cost."""
    count = min(invoices, MAX_ECHOES)
    await stack.qbo_control.post("/_sim/webhooks/config", json={"hold": True})
    async with stack.services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT internal_id FROM links WHERE entity_type = 'invoice'"
            " AND natural_key LIKE 'BN-%%' ORDER BY id LIMIT %(n)s",
            {"n": count},
        )
        ids = [str(row["internal_id"]) for row in await cur.fetchall()]
    for invoice_id in ids:
        current = (await stack.internal.get(f"/api/invoices/{invoice_id}")).json()
        resp = await stack.internal.patch(
            f"/api/invoices/{invoice_id}",
            json={"memo": "Edited for the echo bench"},
            headers={"If-Match": str(current["version"])},
        )
        resp.raise_for_status()
    await stack.settle(concurrency=SYNC_CONCURRENCY)
    echoes_before = await _scalar(
        stack, "SELECT count(*) AS n FROM events WHERE status = 'echo'"
    )
    qbo_seq, internal_seq = await _seq(stack, "qbo"), await _seq(stack, "internal")
    await stack.qbo_control.post("/_sim/webhooks/flush", json={})
    await stack.qbo_control.post("/_sim/webhooks/release", json={})
    await stack.qbo_control.post("/_sim/webhooks/config", json={"hold": False})
    await stack.settle(concurrency=SYNC_CONCURRENCY)
    echoes = (
        await _scalar(stack, "SELECT count(*) AS n FROM events WHERE status = 'echo'")
        - echoes_before
    )
    qbo = len(await stack.qbo_requests(qbo_seq))
    internal = len(await stack.internal_requests(internal_seq))
    return [
        Figure(
            name="requests per echo",
            value=(qbo + internal) / echoes if echoes else 0.0,
            unit="requests",
            note=f"{echoes} echoes of our QBO writes: {qbo} QBO + {internal} internal",
        )
    ]


async def _ingest(stack: Stack, deliveries: int) -> list[Figure]:
    """POST signed internal webhooks over loopback and time each answer."""
    secret = stack.services.settings.internal_webhook_secret
    latencies: list[float] = []
    failures = 0
    semaphore = asyncio.Semaphore(INGEST_CONCURRENCY)

    async def deliver(client: httpx.AsyncClient, n: int) -> None:
        nonlocal failures
        body = json.dumps(
            {
                "id": f"evt_bench_{n}",
                "type": "invoice.updated",
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                # Entities that do not exist: ingest never looks at them, and
                # their jobs are discarded before anything could run them.
                "data": {"id": f"inv_bench_{n % 997}", "version": n},
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Signature": signature.sign_internal(secret, int(time.time()), body),
        }
        async with semaphore:
            t0 = time.perf_counter()
            resp = await client.post(
                "/webhooks/internal", content=body, headers=headers
            )
            latencies.append(time.perf_counter() - t0)
        if resp.status_code >= 300:
            failures += 1

    async with httpx.AsyncClient(base_url=stack.lb_url, trust_env=False) as client:
        started = time.perf_counter()
        await asyncio.gather(*(deliver(client, n) for n in range(deliveries)))
        elapsed = time.perf_counter() - started
    async with stack.services.pool.connection() as conn:
        await conn.execute(
            "DELETE FROM procrastinate_jobs WHERE status = 'todo'"
            " AND args->>'entity_id' LIKE 'inv_bench_%%'"
        )
    return [
        Figure(
            name="webhook ingest",
            value=deliveries / elapsed if elapsed else 0.0,
            unit="deliveries/s",
            note=f"{deliveries} signed deliveries, {INGEST_CONCURRENCY} in flight"
            + (f", {failures} refused" if failures else ""),
        ),
        Figure(
            name="ingest latency p50",
            value=_percentile(latencies, 50) * 1000,
            unit="ms",
        ),
        Figure(
            name="ingest latency p95",
            value=_percentile(latencies, 95) * 1000,
            unit="ms",
        ),
    ]


async def run_bench(settings: Settings, *, invoices: int = 200) -> list[Figure]:
    """Run every measurement on a throwaway stack and return the figures."""
    async with open_stack(settings, prefix="lb_bench") as stack:
        customer, item = await _setup(stack)
        size_before, events_before = await _db_size(stack), await _events(stack)
        figures = await _sync_throughput(stack, invoices, customer, item)
        figures += await _echo_cost(stack, invoices)
        figures = (
            await _ingest(stack, max(MIN_DELIVERIES, invoices * DELIVERIES_PER_INVOICE))
            + figures
        )
        grown = await _db_size(stack) - size_before
        events = await _events(stack) - events_before
    figures.append(
        Figure(
            name="peak RSS",
            value=_peak_rss_mib(),
            unit="MiB",
            note="this process, simulators included",
        )
    )
    figures.append(
        Figure(
            name="DB growth per 1000 events",
            value=grown / events * 1000 / 1024 if events else 0.0,
            unit="KiB",
            note=f"{events} events, {grown / 1024:,.0f} KiB in all",
        )
    )
    return figures


__all__ = ["Figure", "render", "run_bench"]
