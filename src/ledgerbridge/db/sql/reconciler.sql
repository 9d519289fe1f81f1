-- name: get_cursor
SELECT position FROM sync_cursors
WHERE connection_id = %(connection_id)s AND name = %(name)s;

-- name: set_cursor
INSERT INTO sync_cursors (connection_id, name, position)
VALUES (%(connection_id)s, %(name)s, %(position)s)
ON CONFLICT (connection_id, name) DO UPDATE
SET position = EXCLUDED.position, updated_at = now();

-- name: connected_connections
SELECT id, realm_id FROM connections
WHERE status = 'connected' AND (%(connection_id)s::bigint IS NULL OR id = %(connection_id)s)
ORDER BY id;

-- name: link_versions
-- What we last saw of each linked record, to skip what is already in step.
SELECT entity_type, internal_id, qbo_id, qbo_sync_token, internal_version
FROM links WHERE connection_id = %(connection_id)s;
