"""Apply the Alembic migrations shipped in ``ledgerbridge.migrations``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from ledgerbridge.db import pool


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "ledgerbridge:migrations")
    sqlalchemy_url = pool.libpq_url(url).replace(
        "postgresql://", "postgresql+psycopg://", 1
    )
    # ConfigParser interpolation treats "%" specially; URLs may contain it.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (blocking)."""
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(alembic_config(url).get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        rev = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    return rev
