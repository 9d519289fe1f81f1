"""``ledgerbridge demo``: both simulators, the service, a worker, seeded data.

Every part runs as its own process, as in production; Ctrl-C stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx

from ledgerbridge import runtime
from ledgerbridge.db import embedded, migrate
from ledgerbridge.settings import Settings

QBO_PORT = 8001
INTERNAL_PORT = 8002
STARTUP_TIMEOUT_SECONDS = 30.0

# Names the simulator's sample company does not use, so the two companies'
# records meet only where the demo means them to.
CUSTOMERS = [
    ("O'Neill Harbor Logistics", "ap@oneill-harbor.example"),
    ("Northwind Traders", "billing@northwind.example"),
    ("Blue Fern Studio", "hello@bluefern.example"),
]
ITEMS = [
    ("CONS-1", "Strategy consulting", Decimal("150.00")),
    ("DES-1", "Brand design", Decimal("95.50")),
    ("SUP-1", "Support hours", Decimal("60.00")),
]


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own entry point, fixed arguments
        [sys.executable, "-m", "ledgerbridge", *args],
        env=env,
        start_new_session=True,  # Ctrl-C reaches us; we stop the children
    )


def _wait_http(url: str, procs: list[subprocess.Popen[bytes]]) -> None:
    """Block until ``url`` answers (start-up of a child process)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(
                    f"a demo process exited early (code {proc.returncode})"
                )
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {STARTUP_TIMEOUT_SECONDS:.0f}s")


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


async def _connect_demo_realm(settings: Settings, url: str) -> str:
    """Connect the simulator's sample company, as the OAuth flow would."""
    from ledgerbridge.connectors.qbo.models import TokenSet

    async with httpx.AsyncClient(base_url=settings.qbo_base_url) as http:
        realms = (await http.get("/_sim/realms")).json()
        realm_id = str(realms[0]["realm_id"])
        # Tokens for LedgerBridge's own app: QBO's per-second budget is per
        # realm and app, so people using the console do not spend it.
        token = (
            await http.post(
                "/_sim/tokens",
                json={"realm_id": realm_id, "client_id": settings.qbo_client_id},
            )
        ).json()
    async with runtime.open_services(settings, database_url=url) as services:
        now = services.clock.now()
        await services.tokens.connect(
            realm_id,
            TokenSet(
                access_token=token["access_token"],
                refresh_token=token["refresh_token"],
                access_expires_at=now + dt.timedelta(seconds=int(token["expires_in"])),
                refresh_expires_at=now
                + dt.timedelta(
                    seconds=int(token.get("x_refresh_token_expires_in", 8726400))
                ),
            ),
            name=str(realms[0].get("name", "Demo company")),
        )
    return realm_id


def _seed_internal(settings: Settings) -> int:
    """Customers, items and ten invoices on the internal side, once."""
    headers = {"Authorization": f"Bearer {settings.internal_api_token}"}
    with httpx.Client(base_url=settings.internal_base_url, headers=headers) as http:
        if http.get("/api/invoices", params={"limit": 1}).json()["data"]:
            return 0
        customers = [
            http.post(
                "/api/customers",
                json={"name": n, "email": e},
                headers={"Idempotency-Key": f"demo-customer-{i}"},
            ).json()
            for i, (n, e) in enumerate(CUSTOMERS)
        ]
        items = [
            http.post(
                "/api/items",
                json={"sku": s, "name": n, "unit_price": str(p)},
                headers={"Idempotency-Key": f"demo-item-{i}"},
            ).json()
            for i, (s, n, p) in enumerate(ITEMS)
        ]
        today = dt.date(2026, 12, 1)
        for n in range(10):
            item = items[n % len(items)]
            qty = Decimal(n % 4 + 1)
            http.post(
                "/api/invoices",
                headers={"Idempotency-Key": f"demo-invoice-{n}"},
                json={
                    "number": f"INV-{1001 + n}",
                    "customer_id": customers[n % len(customers)]["id"],
                    "currency": "USD",
                    "issue_date": (today + dt.timedelta(days=n)).isoformat(),
                    "due_date": (today + dt.timedelta(days=n + 30)).isoformat(),
                    "lines": [
                        {
                            "item_id": item["id"],
                            "description": f"{item['name']}, December",
                            "quantity": str(qty),
                            "unit_price": item["unit_price"],
                        }
                    ],
                    "memo": "Thank you for your business",
                    "status": "open",
                },
            ).raise_for_status()
    return 10


def _stop_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so the children are stopped either way."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run(settings: Settings) -> None:
    _stop_on_sigterm()
    embedded_started = settings.database_url is None
    try:
        _run(settings)
    finally:
        if embedded_started:
            # The data stays in data_dir for the next run; the server stops.
            embedded.stop(settings.data_dir)


def _run(settings: Settings) -> None:
    url = runtime.resolve_database_url(settings)
    migrate.upgrade(url)
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "LEDGERBRIDGE_DEMO_PANEL": "1"}
    # The dashboard shows every sync as it happens; the terminal keeps the
    # banner readable and shows only problems (LEDGERBRIDGE_LOG_LEVEL=INFO
    # brings every line back).
    env.setdefault("LEDGERBRIDGE_LOG_LEVEL", "WARNING")
    public = settings.public_url.rstrip("/")

    with _processes() as procs:
        procs.append(
            _spawn(
                [
                    "sim",
                    "qbo",
                    "--port",
                    str(QBO_PORT),
                    "--webhook-url",
                    f"{public}/webhooks/qbo",
                    "--verifier-token",
                    settings.qbo_verifier_token,
                    "--client-id",
                    settings.qbo_client_id,
                    "--client-secret",
                    settings.qbo_client_secret,
                    "--state-file",
                    str(data / "qbo-sim.json"),
                ],
                env,
            )
        )
        procs.append(
            _spawn(
                [
                    "sim",
                    "internal",
                    "--port",
                    str(INTERNAL_PORT),
                    "--webhook-url",
                    f"{public}/webhooks/internal",
                    "--webhook-secret",
                    settings.internal_webhook_secret,
                    "--api-token",
                    settings.internal_api_token,
                    "--state-file",
                    str(data / "internal-sim.json"),
                ],
                env,
            )
        )
        _wait_http(f"{settings.qbo_base_url}/_sim/realms", procs)
        _wait_http(f"{settings.internal_base_url}/_sim/requests", procs)

        realm_id = asyncio.run(_connect_demo_realm(settings, url))
        procs.append(_spawn(["serve"], env))
        procs.append(_spawn(["worker"], env))
        _wait_http(f"{public}/healthz", procs)
        seeded = _seed_internal(settings)

        print(
            "\nLedgerBridge demo is running. Ctrl-C stops everything.\n\n"
            f"  Dashboard, API, webhooks  {public}\n"
            f"  Demo panel (faults)       {public}/demo\n"
            f"  QBO simulator             {settings.qbo_base_url}   realm {realm_id}\n"
            f"  Internal system           {settings.internal_base_url}\n\n"
            f"  QBO webhook verifier      {settings.qbo_verifier_token}\n"
            f"  Internal webhook secret   {settings.internal_webhook_secret}\n"
            f"  Internal API token        {settings.internal_api_token}\n"
            f"  Database                  {_redact(url)}\n"
            "  CLI beside the demo       ledgerbridge conflicts list  (same\n"
            "                            LEDGERBRIDGE_DATA_DIR, or DATABASE_URL above)\n"
            + (
                f"\n  Seeded {seeded} invoices on the internal side; they sync to QBO now.\n"
                if seeded
                else ""
            ),
            flush=True,
        )
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            print("a demo process stopped; shutting down", file=sys.stderr)
        except KeyboardInterrupt:
            print("\nstopping…", flush=True)


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
