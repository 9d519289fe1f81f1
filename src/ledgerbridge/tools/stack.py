"""The whole system on loopback: both simulators, LedgerBridge, a worker.

The simulators run in threads (their own event loops); LedgerBridge's web app
and worker run in the test's event loop with services the test can inspect.
Nothing waits on a timer: ``settle()`` flushes both simulators' webhooks and
drains the queue, repeating until neither produces anything new.

The tests pass a database of their own; the CLI's ``chaos`` and ``bench`` use
``throwaway_database`` (a fresh ``CREATE DATABASE``, migrated, dropped at the
end) through ``open_stack``, so they never touch a real deployment's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from psycopg import sql

from ledgerbridge import runtime
from ledgerbridge.clock import make_rng
from ledgerbridge.connectors.qbo.models import TokenSet
from ledgerbridge.db import migrate
from ledgerbridge.db import pool as db_pool
from ledgerbridge.settings import Settings
from ledgerbridge.simulators.internal import app as internal_sim
from ledgerbridge.simulators.qbo import app as qbo_sim
from ledgerbridge.tools.servers import listening_socket, serve_in_thread
from ledgerbridge.web.app import create_app

__all__ = [
    "MAX_SETTLE_ROUNDS",
    "Stack",
    "open_stack",
    "run_stack",
    "throwaway_database",
]

MAX_SETTLE_ROUNDS = 30
CONTROL_TIMEOUT_SECONDS = 120.0


@dataclasses.dataclass
class Stack:
    lb_url: str
    qbo_url: str
    internal_url: str
    realm_id: str
    connection_id: int
    services: runtime.Services
    qbo: httpx.AsyncClient  # a person (or app) using QBO's API with a token
    internal: httpx.AsyncClient  # a person using the internal system's API
    qbo_control: httpx.AsyncClient
    internal_control: httpx.AsyncClient

    # -- waiting without sleeping --------------------------------------------

    async def drain(self, *, concurrency: int = 2) -> None:
        """Run the worker until no job can be fetched right now."""
        await self.services.queue.run_worker_async(
            wait=False,
            concurrency=concurrency,
            additional_context={"services": self.services},
            install_signal_handlers=False,
            listen_notify=False,
            delete_jobs="never",
        )

    async def settle(self, *, concurrency: int = 2) -> None:
        """Deliver every webhook and run every job, until the system is quiet."""
        for _ in range(MAX_SETTLE_ROUNDS):
            before = await self._activity()
            await self.qbo_control.post("/_sim/webhooks/flush", json={})
            await self.internal_control.post("/_sim/webhooks/flush")
            await self.drain(concurrency=concurrency)
            if await self._activity() == before:
                return
        raise AssertionError("the system did not settle")

    async def _activity(self) -> tuple[int, int]:
        async with self.services.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM events) AS e,"
                " (SELECT count(*) FROM procrastinate_jobs WHERE status <> 'todo'"
                "  OR scheduled_at IS NULL OR scheduled_at <= now()) AS j"
            )
            row = await cur.fetchone()
        assert row is not None  # noqa: S101 - an aggregate always answers a row
        return int(row["e"]), int(row["j"])

    async def arm_qbo_create_timeout(self, hold_seconds: float) -> None:
        """Make QBO's next invoice create land but answer only after
        ``hold_seconds`` (longer than LedgerBridge's timeout)."""
        resp = await self.qbo_control.post(
            "/_sim/faults",
            json={
                "kind": "timeout_after_commit",
                "method": "POST",
                "path_regex": r"/invoice$",
                "operation": "create",
                "hold_seconds": hold_seconds,
            },
        )
        resp.raise_for_status()

    async def retries_due_now(self) -> int:
        """Make every job waiting for its backoff due now; return how many.

        The retry policy is tested on its own; a run that must not sleep
        fast-forwards the queue's clock instead of waiting out the backoff.
        """
        async with self.services.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE procrastinate_jobs SET scheduled_at = now()"
                " WHERE status = 'todo' AND scheduled_at > now()"
            )
            return int(cur.rowcount)

    # -- reading both sides --------------------------------------------------

    async def qbo_query(self, statement: str) -> list[dict[str, Any]]:
        resp = await self.qbo.get(
            f"/v3/company/{self.realm_id}/query", params={"query": statement}
        )
        resp.raise_for_status()
        body = resp.json()["QueryResponse"]
        found: list[dict[str, Any]] = next(
            (v for v in body.values() if isinstance(v, list)), []
        )
        return found

    async def qbo_invoice_by_number(self, number: str) -> list[dict[str, Any]]:
        escaped = number.replace("\\", "\\\\").replace("'", "\\'")
        return await self.qbo_query(
            f"select * from Invoice where DocNumber = '{escaped}'"
        )

    async def qbo_requests(self, since: int = 0) -> list[dict[str, Any]]:
        resp = await self.qbo_control.get("/_sim/requests", params={"since": since})
        return list(resp.json())

    async def internal_requests(self, since: int = 0) -> list[dict[str, Any]]:
        resp = await self.internal_control.get(
            "/_sim/requests", params={"since": since}
        )
        return list(resp.json())

    async def events(self) -> list[dict[str, Any]]:
        async with self.services.pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM events ORDER BY id")
            return list(await cur.fetchall())


@contextlib.contextmanager
def throwaway_database(
    admin_url: str, *, prefix: str = "lb_chaos", migrate_it: bool = True
) -> Iterator[str]:
    """Create ``<prefix>_<random>`` on ``admin_url``'s server, migrate it, drop it.

    Yields the new database's URL. The drop uses ``WITH (FORCE)`` so a
    connection left behind by a crashed run cannot keep the database alive.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = db_pool.libpq_url(admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = db_pool.with_database(admin, name)
        if migrate_it:
            migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@contextlib.asynccontextmanager
async def open_stack(
    settings: Settings, *, prefix: str = "lb_chaos", **settings_overrides: Any
) -> AsyncIterator[Stack]:
    """The whole stack on a throwaway database and a temporary data directory.

    The server is ``DATABASE_URL`` when set, otherwise the embedded one.
    Migrations are blocking (Alembic), so they run in a thread.
    """
    admin_url = runtime.resolve_database_url(settings)
    with contextlib.ExitStack() as exits:
        db_url = await asyncio.to_thread(
            exits.enter_context, throwaway_database(admin_url, prefix=prefix)
        )
        tmp = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        try:
            async with run_stack(db_url, tmp, **settings_overrides) as stack:
                yield stack
        finally:
            # The drop is blocking too; keep the event loop free meanwhile.
            await asyncio.to_thread(exits.close)


@contextlib.asynccontextmanager
async def run_stack(
    db_url: str, tmp_path: Path, **settings_overrides: Any
) -> AsyncIterator[Stack]:
    """Both simulators, LedgerBridge's app and services, on ``db_url`` (migrated)."""
    lb_sock = listening_socket()
    lb_url = f"http://127.0.0.1:{lb_sock.getsockname()[1]}"
    qbo_sock = listening_socket()
    internal_sock = listening_socket()
    qbo_url = f"http://127.0.0.1:{qbo_sock.getsockname()[1]}"
    internal_url = f"http://127.0.0.1:{internal_sock.getsockname()[1]}"

    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path / "lb",
        public_url=lb_url,
        qbo_base_url=qbo_url,
        qbo_token_url=f"{qbo_url}/oauth2/v1/tokens/bearer",
        qbo_authorize_url=f"{qbo_url}/connect/oauth2",
        qbo_revoke_url=f"{qbo_url}/oauth2/v1/tokens/revoke",
        internal_base_url=internal_url,
        **{"http_timeout_seconds": 5.0, **settings_overrides},
    )
    qbo_app = qbo_sim.create_app(
        qbo_sim.SimConfig(
            webhook_url=f"{lb_url}/webhooks/qbo",
            verifier_token=settings.qbo_verifier_token,
            client_id=settings.qbo_client_id,
            client_secret=settings.qbo_client_secret,
            seed=7,
            rate_per_second=0,
            rate_per_minute=0,
            max_concurrency=0,
        )
    )
    internal_app = internal_sim.create_app(
        internal_sim.SimConfig(
            webhook_url=f"{lb_url}/webhooks/internal",
            webhook_secret=settings.internal_webhook_secret,
            api_token=settings.internal_api_token,
            seed=11,
        )
    )
    with (
        serve_in_thread(qbo_app, qbo_sock),
        serve_in_thread(internal_app, internal_sock),
    ):
        async with runtime.open_services(
            # The reconciler runs when a test or tool asks for it, not on a
            # timer, so a dropped webhook stays dropped until then.
            settings,
            rng=make_rng(3),
            periodic=False,
        ) as services:
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(services=services), log_level="warning", lifespan="on"
                )
            )
            serving = asyncio.create_task(server.serve(sockets=[lb_sock]))
            async with (
                # Releasing held webhooks answers only after every send, each
                # a full round trip through ingest: allow for a long batch.
                httpx.AsyncClient(
                    base_url=qbo_url, timeout=CONTROL_TIMEOUT_SECONDS
                ) as qbo_control,
                httpx.AsyncClient(
                    base_url=internal_url, timeout=CONTROL_TIMEOUT_SECONDS
                ) as internal_control,
            ):
                realm_id = str(
                    (await qbo_control.get("/_sim/realms")).json()[0]["realm_id"]
                )
                # LedgerBridge's tokens belong to its own app, so a person's
                # calls (the console's app) do not spend its per-second budget.
                token = (
                    await qbo_control.post(
                        "/_sim/tokens",
                        json={
                            "realm_id": realm_id,
                            "client_id": settings.qbo_client_id,
                        },
                    )
                ).json()
                now = services.clock.now()
                connection_id = await services.tokens.connect(
                    realm_id,
                    TokenSet(
                        access_token=token["access_token"],
                        refresh_token=token["refresh_token"],
                        access_expires_at=now + dt.timedelta(seconds=3600),
                        refresh_expires_at=now + dt.timedelta(days=100),
                    ),
                    name="test company",
                )
                # A second token for "a person" editing QBO directly.
                person = (
                    await qbo_control.post("/_sim/tokens", json={"realm_id": realm_id})
                ).json()
                async with (
                    httpx.AsyncClient(
                        base_url=qbo_url,
                        headers={
                            "Authorization": f"Bearer {person['access_token']}",
                            "Accept": "application/json",
                        },
                    ) as qbo,
                    httpx.AsyncClient(
                        base_url=internal_url,
                        headers={
                            "Authorization": f"Bearer {settings.internal_api_token}"
                        },
                    ) as internal,
                ):
                    try:
                        yield Stack(
                            lb_url=lb_url,
                            qbo_url=qbo_url,
                            internal_url=internal_url,
                            realm_id=realm_id,
                            connection_id=connection_id,
                            services=services,
                            qbo=qbo,
                            internal=internal,
                            qbo_control=qbo_control,
                            internal_control=internal_control,
                        )
                    finally:
                        server.should_exit = True
                        await serving
