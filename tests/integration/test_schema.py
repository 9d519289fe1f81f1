"""The migrated schema holds what the sync engine relies on."""

from __future__ import annotations

import psycopg
import pytest

from ledgerbridge.db import migrate


def test_migrate_reaches_head(db_url):
    assert migrate.current(db_url) == "0001"


def test_links_refuse_two_pairs_for_one_doc_number(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO connections (realm_id) VALUES ('1')")
        conn.execute(
            "INSERT INTO links (connection_id, entity_type, internal_id, natural_key)"
            " VALUES (1, 'invoice', 'inv_1', 'INV-1')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO links (connection_id, entity_type, internal_id, natural_key)"
                " VALUES (1, 'invoice', 'inv_2', 'INV-1')"
            )


def test_queue_schema_is_installed(db_url):
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') AS t").fetchone()
    assert row is not None and row[0] == "procrastinate_jobs"
