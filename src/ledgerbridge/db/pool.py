"""The async connection pool every LedgerBridge process uses."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def json_dumps(value: Any) -> str:
    return json.dumps(value, default=_default, sort_keys=True)


def json_loads(text: str | bytes) -> Any:
    # Never let a JSON number become a float on its way out of the database.
    return json.loads(text, parse_float=Decimal)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    set_json_dumps(json_dumps, conn)
    set_json_loads(json_loads, conn)


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs too (``postgresql+psycopg://``)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncConnectionPool[Any]:
    """An unopened pool handing out dict-row connections; ``await pool.open()``."""
    return AsyncConnectionPool(
        libpq_url(url),
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        configure=_configure,
        open=False,
        name="ledgerbridge",
    )


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))
