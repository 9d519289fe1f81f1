"""Shared fixtures: a real PostgreSQL, one migrated template, a copy per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from ledgerbridge.db import embedded, migrate
from ledgerbridge.db import pool as db_pool

_with_dbname = db_pool.with_database


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A server to create test databases on: LEDGERBRIDGE_TEST_DSN or embedded."""
    dsn = os.environ.get("LEDGERBRIDGE_TEST_DSN")
    if dsn:
        yield dsn
        return
    data_dir = Path(
        os.environ.get("LEDGERBRIDGE_TEST_PGDATA", "/tmp/ledgerbridge-test-pg")  # noqa: S108 - a fixed place reused across runs
    )
    yield embedded.start(data_dir, database="postgres")
    embedded.stop(data_dir)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A database migrated once per session, cloned for every test."""
    name = f"lbtest_tpl_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate.upgrade(_with_dbname(pg_admin_url, name))
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"lbtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    yield _with_dbname(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = db_pool.create_pool(db_url, min_size=1, max_size=10)
    await p.open(wait=True)
    yield p
    await p.close()


@pytest.fixture
async def stack(db_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """Both simulators, LedgerBridge and a worker on loopback (see support.stack)."""
    from support.stack import run_stack

    async with run_stack(db_url, tmp_path) as running:
        yield running
