"""The migrated schema holds what the sync engine relies on."""

from __future__ import annotations

import psycopg
import pytest

from ledgerbridge.db import migrate


def test_migrate_reaches_head(db_url):
    assert migrate.current(db_url) == "0003"


def test_links_may_share_a_number_but_claims_may_not(db_url):
    # Two pairs hold one number while invoices swap numbers; only the
    # short-lived claim of a first sync is unique.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO connections (realm_id) VALUES ('1')")
        for internal_id in ("inv_1", "inv_2"):
            conn.execute(
                "INSERT INTO links (connection_id, entity_type, internal_id, natural_key)"
                " VALUES (1, 'invoice', %s, 'INV-1')",
                (internal_id,),
            )
        claim = (
            "INSERT INTO link_claims (connection_id, entity_type, natural_key)"
            " VALUES (1, 'invoice', 'INV-1')"
        )
        conn.execute(claim)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(claim)


def test_queue_schema_is_installed(db_url):
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') AS t").fetchone()
    assert row is not None and row[0] == "procrastinate_jobs"
