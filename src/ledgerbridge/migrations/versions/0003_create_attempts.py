"""Remember every create sent to the other system, outside the job's transaction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

A create that timed out after landing is found again by number on the next
attempt. This row tells that record (ours, with the state we sent, which is
the base to merge against) apart from someone else's record that happens to
carry the same number.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE create_attempts (
    connection_id bigint NOT NULL REFERENCES connections (id),
    entity_type text NOT NULL,
    target_side text NOT NULL CHECK (target_side IN ('qbo', 'internal')),
    source_id text NOT NULL,
    natural_key text NOT NULL,
    sent jsonb NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, entity_type, target_side, source_id)
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("LedgerBridge migrations only go forward")
