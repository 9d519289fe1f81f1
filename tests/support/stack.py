"""The whole system on loopback: both simulators, LedgerBridge, a worker.

The simulators run in threads (their own event loops); LedgerBridge's web app
and worker run in the test's event loop with services the test can inspect.
Nothing waits on a timer: ``settle()`` flushes both simulators' webhooks and
drains the queue, repeating until neither produces anything new.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ledgerbridge import runtime
from ledgerbridge.clock import make_rng
from ledgerbridge.connectors.qbo.models import TokenSet
from ledgerbridge.settings import Settings
from ledgerbridge.simulators.internal import app as internal_sim
from ledgerbridge.simulators.qbo import app as qbo_sim
from ledgerbridge.web.app import create_app
from support.servers import listening_socket, serve_in_thread

MAX_SETTLE_ROUNDS = 30


@dataclasses.dataclass
class Stack:
    lb_url: str
    qbo_url: str
    internal_url: str
    realm_id: str
    connection_id: int
    services: Any
    qbo: httpx.AsyncClient  # a person (or app) using QBO's API with a token
    internal: httpx.AsyncClient  # a person using the internal system's API
    qbo_control: httpx.AsyncClient
    internal_control: httpx.AsyncClient

    # -- waiting without sleeping --------------------------------------------

    async def drain(self) -> None:
        """Run the worker until no job can be fetched right now."""
        await self.services.queue.run_worker_async(
            wait=False,
            concurrency=2,
            additional_context={"services": self.services},
            install_signal_handlers=False,
            listen_notify=False,
            delete_jobs="never",
        )

    async def settle(self) -> None:
        """Deliver every webhook and run every job, until the system is quiet."""
        for _ in range(MAX_SETTLE_ROUNDS):
            before = await self._activity()
            await self.qbo_control.post("/_sim/webhooks/flush", json={})
            await self.internal_control.post("/_sim/webhooks/flush")
            await self.drain()
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
        return int(row["e"]), int(row["j"])

    # -- reading both sides --------------------------------------------------

    async def qbo_query(self, statement: str) -> list[dict[str, Any]]:
        resp = await self.qbo.get(
            f"/v3/company/{self.realm_id}/query", params={"query": statement}
        )
        resp.raise_for_status()
        body = resp.json()["QueryResponse"]
        return next((v for k, v in body.items() if isinstance(v, list)), [])

    async def qbo_invoice_by_number(self, number: str) -> list[dict[str, Any]]:
        escaped = number.replace("\\", "\\\\").replace("'", "\\'")
        return await self.qbo_query(
            f"select * from Invoice where DocNumber = '{escaped}'"
        )

    async def qbo_requests(self, since: int = 0) -> list[dict[str, Any]]:
        return (
            await self.qbo_control.get("/_sim/requests", params={"since": since})
        ).json()

    async def internal_requests(self, since: int = 0) -> list[dict[str, Any]]:
        return (
            await self.internal_control.get("/_sim/requests", params={"since": since})
        ).json()

    async def events(self) -> list[dict[str, Any]]:
        async with self.services.pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM events ORDER BY id")
            return list(await cur.fetchall())


@contextlib.asynccontextmanager
async def run_stack(
    db_url: str, tmp_path: Path, **settings_overrides: Any
) -> AsyncIterator[Stack]:
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
        qbo_authorize_url=f"{qbo_url}/connect",
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
        async with runtime.open_services(settings, rng=make_rng(3)) as services:
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(services=services), log_level="warning", lifespan="on"
                )
            )
            serving = asyncio.create_task(server.serve(sockets=[lb_sock]))
            async with (
                httpx.AsyncClient(base_url=qbo_url) as qbo_control,
                httpx.AsyncClient(base_url=internal_url) as internal_control,
            ):
                realm_id = str(
                    (await qbo_control.get("/_sim/realms")).json()[0]["realm_id"]
                )
                token = (
                    await qbo_control.post("/_sim/tokens", json={"realm_id": realm_id})
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
