-- name: lock_link_by_internal
SELECT * FROM links
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND internal_id = %(entity_id)s
FOR UPDATE;

-- name: lock_link_by_qbo
SELECT * FROM links
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND qbo_id = %(entity_id)s
FOR UPDATE;

-- name: find_link_by_qbo
-- Read only: another job may hold this link's lock.
SELECT * FROM links
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND qbo_id = %(entity_id)s;

-- name: lock_link_by_natural_key
-- A deleted pair no longer holds its number: it may be used again.
SELECT * FROM links
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND natural_key = %(natural_key)s AND state <> 'deleted'
ORDER BY id
FOR UPDATE;

-- name: claim_number
-- Waits while another job's transaction holds the same claim.
INSERT INTO link_claims (connection_id, entity_type, natural_key)
VALUES (%(connection_id)s, %(entity_type)s, %(natural_key)s)
ON CONFLICT DO NOTHING
RETURNING natural_key;

-- name: release_number
DELETE FROM link_claims
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND natural_key = %(natural_key)s;

-- name: lock_link
SELECT * FROM links WHERE id = %(link_id)s FOR UPDATE;

-- name: insert_link
INSERT INTO links (connection_id, entity_type, internal_id, qbo_id, natural_key)
VALUES (%(connection_id)s, %(entity_type)s, %(internal_id)s, %(qbo_id)s,
        %(natural_key)s)
RETURNING *;

-- name: save_link
UPDATE links
SET internal_id = %(internal_id)s, qbo_id = %(qbo_id)s,
    natural_key = %(natural_key)s, state = %(state)s,
    base = %(base)s, base_hash = %(base_hash)s,
    qbo_hash = %(qbo_hash)s, qbo_sync_token = %(qbo_sync_token)s,
    internal_hash = %(internal_hash)s, internal_version = %(internal_version)s,
    last_error = NULL, updated_at = now()
WHERE id = %(link_id)s;

-- name: set_link_error
UPDATE links SET last_error = %(error)s, updated_at = now() WHERE id = %(link_id)s;

-- name: hold_link
UPDATE links SET state = 'held', updated_at = now() WHERE id = %(link_id)s;

-- name: reference_links
SELECT entity_type, internal_id, qbo_id FROM links
WHERE connection_id = %(connection_id)s AND entity_type IN ('customer', 'item')
  AND internal_id IS NOT NULL AND qbo_id IS NOT NULL;

-- name: repoint_qbo_id
UPDATE links SET qbo_id = %(new_qbo_id)s, updated_at = now()
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND qbo_id = %(old_qbo_id)s;

-- name: repoint_merged_qbo_id
-- A QBO merge: the surviving id takes over the merged one's link, unless the
-- survivor is linked already (qbo_id is unique per connection and type).
UPDATE links SET qbo_id = %(new_qbo_id)s, updated_at = now()
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND qbo_id = %(old_qbo_id)s
  AND NOT EXISTS (
      SELECT 1 FROM links other
      WHERE other.connection_id = %(connection_id)s
        AND other.entity_type = %(entity_type)s
        AND other.qbo_id = %(new_qbo_id)s
  );

-- name: list_links
SELECT l.*, c.id AS conflict_id FROM links l
LEFT JOIN conflicts c ON c.link_id = l.id AND c.status = 'open'
WHERE (%(entity_type)s::text IS NULL OR l.entity_type = %(entity_type)s)
ORDER BY l.updated_at DESC
LIMIT %(limit)s;

-- name: get_link
SELECT * FROM links WHERE id = %(link_id)s;

-- name: link_events
SELECT * FROM events
WHERE link_id = %(link_id)s
   OR (connection_id = %(connection_id)s AND entity_type = %(entity_type)s
       AND ((side = 'internal' AND entity_id = %(internal_id)s)
         OR (side = 'qbo' AND entity_id = %(qbo_id)s)))
ORDER BY id DESC LIMIT 200;

-- name: linked_pairs
SELECT id, entity_type, internal_id, qbo_id, qbo_sync_token, internal_version
FROM links
WHERE connection_id = %(connection_id)s AND state = 'active'
  AND internal_id IS NOT NULL AND qbo_id IS NOT NULL
ORDER BY id;

-- name: record_create_attempt
-- Committed on its own, before the create is sent: it must outlive a job
-- whose transaction rolls back after the create landed.
INSERT INTO create_attempts (connection_id, entity_type, target_side, source_id,
                             natural_key, sent)
VALUES (%(connection_id)s, %(entity_type)s, %(target_side)s, %(source_id)s,
        %(natural_key)s, %(sent)s)
ON CONFLICT (connection_id, entity_type, target_side, source_id) DO UPDATE
SET natural_key = EXCLUDED.natural_key, sent = EXCLUDED.sent, attempted_at = now();

-- name: create_attempt
SELECT natural_key, sent FROM create_attempts
WHERE connection_id = %(connection_id)s AND entity_type = %(entity_type)s
  AND target_side = %(target_side)s AND source_id = %(source_id)s;

-- name: set_link_base
UPDATE links SET base = %(base)s, base_hash = %(base_hash)s WHERE id = %(link_id)s;
