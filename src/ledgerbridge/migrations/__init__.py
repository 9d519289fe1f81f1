"""Alembic migrations: the schema's history, applied by ``ledgerbridge migrate``."""
