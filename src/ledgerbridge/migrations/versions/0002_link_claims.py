"""Serialise first syncs through claims, not a unique natural key on links.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

A unique (connection, type, natural key) on links made two invoices that swap
numbers impossible to save (each wanted the number the other still held) and
kept a deleted invoice's number from ever being used again. The uniqueness is
only needed while a record is seen for the first time, so a job now holds a
short-lived claim on the number inside its transaction instead.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE links DROP CONSTRAINT links_connection_id_entity_type_natural_key_key;
CREATE INDEX links_natural_key_idx ON links (connection_id, entity_type, natural_key);

-- A row exists only inside the transaction of a job syncing a record it has
-- never seen; a second job for the same number waits on it, then finds the
-- link the first one made.
CREATE TABLE link_claims (
    connection_id bigint NOT NULL,
    entity_type text NOT NULL,
    natural_key text NOT NULL,
    PRIMARY KEY (connection_id, entity_type, natural_key)
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("LedgerBridge migrations only go forward")
