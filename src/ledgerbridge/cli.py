"""The ``ledgerbridge`` command line."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerbridge import logconfig
from ledgerbridge.settings import Settings

# Tracebacks without local variables: they may hold tokens or whole payloads.
app = typer.Typer(
    help="Two-way invoice sync between an internal system and QuickBooks Online.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
sim_app = typer.Typer(
    help="Run a simulator (QBO or the internal system).", no_args_is_help=True
)
conflicts_app = typer.Typer(
    help="List, show and resolve conflicts.", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")
app.add_typer(conflicts_app, name="conflicts")


def _settings() -> Settings:
    settings = Settings()
    logconfig.configure(settings.log_level, json=settings.log_json)
    return settings


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


async def _with_services(fn: Any) -> Any:
    """Run ``fn`` against the configured database, which must be migrated.

    Without ``DATABASE_URL`` that is the embedded server in the data
    directory; the command stops it again unless another process (a running
    demo) uses it too.
    """
    from ledgerbridge import runtime
    from ledgerbridge.db import embedded
    from ledgerbridge.db import migrate as db_migrate

    settings = _settings()
    url = runtime.resolve_database_url(settings)
    try:
        if db_migrate.current(url) is None:
            typer.echo(
                f"No LedgerBridge schema in {_where(settings)}. Run "
                "`ledgerbridge migrate` (or `ledgerbridge demo`) first, or point "
                "DATABASE_URL / LEDGERBRIDGE_DATA_DIR at the demo's database.",
                err=True,
            )
            raise typer.Exit(2)
        async with runtime.open_services(settings, database_url=url) as services:
            return await fn(services)
    finally:
        if settings.database_url is None:
            embedded.stop(settings.data_dir)


def _where(settings: Settings) -> str:
    if settings.database_url:
        return "the database at DATABASE_URL"
    return f"the embedded database under {settings.data_dir}"


@app.command()
def migrate() -> None:
    """Apply the database migrations (embedded PostgreSQL without DATABASE_URL)."""
    from ledgerbridge import runtime
    from ledgerbridge.db import embedded
    from ledgerbridge.db import migrate as db_migrate

    settings = _settings()
    url = runtime.resolve_database_url(settings)
    try:
        db_migrate.upgrade(url)
        typer.echo(f"database at revision {db_migrate.current(url)}")
    finally:
        if settings.database_url is None:
            embedded.stop(settings.data_dir)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Serve webhooks, the JSON API and the dashboard."""
    import uvicorn

    from ledgerbridge.web.app import create_app

    settings = _settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
) -> None:
    """Drain the sync queue (any number of workers may run, on any machine)."""
    from ledgerbridge.queue import worker as worker_module

    settings = _settings()
    asyncio.run(
        worker_module.run(
            settings, concurrency=concurrency or settings.worker_concurrency
        )
    )


@app.command()
def reconcile(
    full: Annotated[
        bool,
        typer.Option("--full", help="Compare every record, not just recent changes"),
    ] = False,
) -> None:
    """Sweep both systems once for drift and enqueue what is out of step."""
    from ledgerbridge.reconciler import reconciler

    found = asyncio.run(
        _with_services(lambda s: reconciler.reconcile_all(s, full=full))
    )
    typer.echo(f"{found} records enqueued for a refetch")


@app.command()
def replay(
    event_id: Annotated[int | None, typer.Argument(help="The event to replay")] = None,
    dead_letters: Annotated[
        bool, typer.Option("--dead-letters", help="Replay every dead letter")
    ] = False,
) -> None:
    """Enqueue an event's entity again (always safe), or every dead letter."""
    from ledgerbridge.web import actions

    if dead_letters:
        n = asyncio.run(_with_services(actions.replay_dead_letters))
        typer.echo(f"{n} dead letters replayed")
        return
    if event_id is None:
        raise typer.BadParameter("give an event id or --dead-letters")
    try:
        _print(asyncio.run(_with_services(lambda s: actions.replay_event(s, event_id))))
    except (actions.NotFound, actions.Refused) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@conflicts_app.command("list")
def conflicts_list(
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones")] = False,
) -> None:
    """Conflicts held for a person."""
    from ledgerbridge.db.queries import QUERIES

    async def run(services: Any) -> list[dict[str, Any]]:
        async with services.pool.connection() as conn:
            cur = await conn.execute(
                QUERIES["list_conflicts"],
                {"status": None if all_ else "open", "limit": 500},
            )
            return list(await cur.fetchall())

    rows = asyncio.run(_with_services(run))
    if not rows:
        typer.echo("no conflicts")
    for row in rows:
        fields = ", ".join(f["field"] for f in row["fields"])
        typer.echo(
            f"{row['id']:>5}  {row['status']:<8} {row['entity_type']} {row['natural_key']}: {fields}"
        )


@conflicts_app.command("show")
def conflicts_show(conflict_id: int) -> None:
    """One conflict with the base, internal and QBO value of each field."""
    from ledgerbridge.db.queries import QUERIES

    async def run(services: Any) -> dict[str, Any] | None:
        async with services.pool.connection() as conn:
            cur = await conn.execute(
                QUERIES["get_conflict"], {"conflict_id": conflict_id}
            )
            row: dict[str, Any] | None = await cur.fetchone()
            return row

    row = asyncio.run(_with_services(run))
    if row is None:
        typer.echo(f"no conflict {conflict_id}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"conflict {row['id']} ({row['status']}): {row['entity_type']} {row['natural_key']}"
    )
    for f in row["fields"]:
        typer.echo(f"\n  {f['field']}")
        for side in ("base", "internal", "qbo"):
            typer.echo(f"    {side:<9} {json.dumps(f[side], default=str)}")


@conflicts_app.command("resolve")
def conflicts_resolve(
    conflict_id: int,
    take: Annotated[
        list[str], typer.Option("--take", help="FIELD=internal|qbo, repeatable")
    ] = [],  # noqa: B006 - Typer reads the default
    value: Annotated[
        list[str], typer.Option("--value", help="FIELD=<JSON value>, repeatable")
    ] = [],  # noqa: B006 - as above
    by: Annotated[str, typer.Option(help="Who resolves it")] = "cli",
) -> None:
    """Choose per field, then write the result to both sides."""
    from ledgerbridge.web import actions

    choices: dict[str, Any] = {}
    for item in take:
        field, _, side = item.partition("=")
        choices[field] = side
    for item in value:
        field, _, text = item.partition("=")
        try:
            choices[field] = {"value": json.loads(text)}
        except json.JSONDecodeError:
            choices[field] = {"value": text}
    try:
        _print(
            asyncio.run(
                _with_services(
                    lambda s: actions.resolve_conflict(
                        s, conflict_id, choices, resolved_by=by
                    )
                )
            )
        )
    except (actions.NotFound, actions.Refused) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@sim_app.command("qbo")
def sim_qbo(
    port: Annotated[int, typer.Option()] = 8001,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    webhook_url: Annotated[str | None, typer.Option()] = None,
    verifier_token: Annotated[str, typer.Option()] = "demo-qbo-verifier",
    client_id: Annotated[str, typer.Option()] = "demo-client-id",
    client_secret: Annotated[str, typer.Option()] = "demo-client-secret",
    state_file: Annotated[
        Path | None, typer.Option(help="Keep state across restarts")
    ] = None,
    webhook_format: Annotated[
        str, typer.Option(help="legacy or cloudevents")
    ] = "legacy",
) -> None:
    """A QuickBooks Online stand-in (API v3 paths, OAuth, signed webhooks, faults)."""
    from ledgerbridge.simulators.qbo import server

    server.serve(
        host=host,
        port=port,
        webhook_url=webhook_url,
        verifier_token=verifier_token,
        client_id=client_id,
        client_secret=client_secret,
        state_path=state_file,
        webhook_format=webhook_format,
        log_level="warning",
    )


@sim_app.command("internal")
def sim_internal(
    port: Annotated[int, typer.Option()] = 8002,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    webhook_url: Annotated[str | None, typer.Option()] = None,
    webhook_secret: Annotated[str, typer.Option()] = "demo-internal-secret",
    api_token: Annotated[str, typer.Option()] = "demo-internal-token",
    state_file: Annotated[
        Path | None, typer.Option(help="Keep state across restarts")
    ] = None,
) -> None:
    """The reference internal invoicing system."""
    from ledgerbridge.simulators.internal import server

    server.serve(
        host=host,
        port=port,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        api_token=api_token,
        state_path=state_file,
    )


@app.command()
def demo() -> None:
    """Start everything on loopback, connect the demo company, seed invoices."""
    from ledgerbridge import demo as demo_module

    demo_module.run(_settings())


@app.command()
def chaos(
    seed: Annotated[int, typer.Option(help="Seed of the random sequence")] = 1,
    invoices: Annotated[int, typer.Option(help="Invoices created")] = 30,
    steps: Annotated[int, typer.Option(help="Random events")] = 200,
    sequence: Annotated[
        bool, typer.Option("--sequence", help="Print every step, even on success")
    ] = False,
) -> None:
    """Run a seeded storm of events and faults on loopback, then check invariants."""
    import logging

    from ledgerbridge.tools import chaos as chaos_module

    settings = _settings()
    # The injected faults make the service warn, and dead letters log
    # tracebacks; the report lists what matters, so only errors get through
    # and the queue library's job tracebacks not at all.
    logging.getLogger("ledgerbridge").setLevel(logging.ERROR)
    logging.getLogger("procrastinate").setLevel(logging.CRITICAL)
    report = asyncio.run(
        chaos_module.run_chaos(settings, seed=seed, invoices=invoices, steps=steps)
    )
    typer.echo(report.render(sequence=True if sequence else None))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def bench(
    invoices: Annotated[int, typer.Option(help="Invoices synced end to end")] = 200,
) -> None:
    """Measure ingest and sync throughput, echo cost, memory and DB growth."""
    import logging

    from ledgerbridge.tools import bench as bench_module

    settings = _settings()
    # A log line per job would be measured along with the work.
    logging.getLogger("ledgerbridge").setLevel(logging.WARNING)
    figures = asyncio.run(bench_module.run_bench(settings, invoices=invoices))
    typer.echo(bench_module.render(figures))


def main() -> None:
    # platformdirs warns on every run in containers without XDG_RUNTIME_DIR;
    # the embedded server falls back to /tmp, which is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    app()
