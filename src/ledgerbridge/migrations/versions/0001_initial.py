"""Initial schema: connections, event log, links, conflicts, cursors, queue.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE connections (
    id bigserial PRIMARY KEY,
    realm_id text NOT NULL UNIQUE,
    name text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'disconnected'
        CHECK (status IN ('connected', 'disconnected')),
    access_token_enc text,
    refresh_token_enc text,
    access_expires_at timestamptz,
    refresh_expires_at timestamptz,
    token_generation integer NOT NULL DEFAULT 0,
    income_account_id text,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Requests spent per realm and window, shared by every worker on every machine.
CREATE TABLE qbo_rate_windows (
    realm_id text NOT NULL,
    window_seconds integer NOT NULL,
    window_start timestamptz NOT NULL,
    used integer NOT NULL DEFAULT 0,
    PRIMARY KEY (realm_id, window_seconds, window_start)
);

-- Every webhook delivery as received, valid or not: the raw material for replay.
CREATE TABLE deliveries (
    id bigserial PRIMARY KEY,
    source text NOT NULL CHECK (source IN ('qbo', 'internal')),
    received_at timestamptz NOT NULL DEFAULT now(),
    signature_ok boolean NOT NULL,
    status_code integer NOT NULL,
    error text,
    headers jsonb NOT NULL DEFAULT '{}',
    body text NOT NULL
);

-- One row per "entity X may have changed" signal, whatever its origin.
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    connection_id bigint REFERENCES connections (id),
    delivery_id bigint REFERENCES deliveries (id),
    origin text NOT NULL
        CHECK (origin IN ('webhook', 'reconciler', 'replay', 'resolve', 'seed')),
    side text NOT NULL CHECK (side IN ('qbo', 'internal')),
    entity_type text NOT NULL CHECK (entity_type IN ('invoice', 'customer', 'item')),
    entity_id text NOT NULL,
    operation text NOT NULL DEFAULT '',
    dedupe_key text UNIQUE,
    occurred_at timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'received' CHECK (status IN (
        'received', 'enqueued', 'coalesced', 'applied', 'echo', 'noop',
        'conflict', 'held', 'dead_letter', 'failed')),
    detail text NOT NULL DEFAULT '',
    job_id bigint,
    link_id bigint,
    processed_at timestamptz
);
CREATE INDEX events_entity_idx ON events (connection_id, side, entity_type, entity_id, id);
CREATE INDEX events_status_idx ON events (status, id);
CREATE INDEX events_received_idx ON events (received_at DESC);

-- One row per synced pair, holding the last state both sides agreed on.
CREATE TABLE links (
    id bigserial PRIMARY KEY,
    connection_id bigint NOT NULL REFERENCES connections (id),
    entity_type text NOT NULL CHECK (entity_type IN ('invoice', 'customer', 'item')),
    internal_id text,
    qbo_id text,
    natural_key text NOT NULL,
    state text NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'held', 'deleted')),
    base jsonb,
    base_hash text,
    qbo_hash text,
    qbo_sync_token text,
    internal_hash text,
    internal_version integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, entity_type, internal_id),
    UNIQUE (connection_id, entity_type, qbo_id),
    UNIQUE (connection_id, entity_type, natural_key)
);

CREATE TABLE conflicts (
    id bigserial PRIMARY KEY,
    link_id bigint NOT NULL REFERENCES links (id),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    fields jsonb NOT NULL,
    internal_state jsonb,
    qbo_state jsonb,
    events_held integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by text,
    resolution jsonb
);
CREATE UNIQUE INDEX conflicts_one_open_per_link ON conflicts (link_id)
    WHERE status = 'open';

-- Where each reconciler sweep got to.
CREATE TABLE sync_cursors (
    connection_id bigint NOT NULL REFERENCES connections (id),
    name text NOT NULL,
    position timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, name)
);
"""


def upgrade() -> None:
    # The psycopg connection itself, inside Alembic's transaction: SQL run
    # without parameters goes to the server untouched, so procrastinate's
    # schema (full of "::" casts and "%") is not read as placeholders.
    driver = op.get_bind().connection.driver_connection
    if driver is None:
        raise RuntimeError("the migration needs a live psycopg connection")
    driver.execute(SCHEMA)
    # The queue's own schema, at the version of procrastinate pinned in
    # pyproject. Upgrading procrastinate means a new revision applying its
    # shipped migrations in sql/migrations.
    driver.execute(SchemaManager.get_schema())


def downgrade() -> None:
    raise NotImplementedError("LedgerBridge migrations only go forward")
