-- name: open_conflict
INSERT INTO conflicts (link_id, fields, internal_state, qbo_state)
VALUES (%(link_id)s, %(fields)s, %(internal_state)s, %(qbo_state)s)
ON CONFLICT (link_id) WHERE status = 'open' DO UPDATE
SET fields = EXCLUDED.fields, internal_state = EXCLUDED.internal_state,
    qbo_state = EXCLUDED.qbo_state, updated_at = now()
RETURNING id;

-- name: open_conflict_for_link
SELECT * FROM conflicts WHERE link_id = %(link_id)s AND status = 'open';

-- name: refresh_conflict
UPDATE conflicts
SET fields = %(fields)s, internal_state = %(internal_state)s,
    qbo_state = %(qbo_state)s, events_held = events_held + 1, updated_at = now()
WHERE id = %(conflict_id)s;

-- name: reopen_conflict
-- New conflicting changes arrived after a person chose: the choice is void.
UPDATE conflicts
SET fields = %(fields)s, internal_state = %(internal_state)s,
    qbo_state = %(qbo_state)s, resolution = NULL, resolved_by = NULL,
    events_held = events_held + 1, updated_at = now()
WHERE id = %(conflict_id)s;

-- name: request_resolution
-- A person's choices; the worker applies them and closes the conflict.
UPDATE conflicts
SET resolution = %(resolution)s, resolved_by = %(resolved_by)s, updated_at = now()
WHERE id = %(conflict_id)s AND status = 'open'
RETURNING link_id;

-- name: close_conflict
UPDATE conflicts
SET status = 'resolved', resolved_at = now(), updated_at = now()
WHERE id = %(conflict_id)s;

-- name: list_conflicts
SELECT c.*, l.entity_type, l.internal_id, l.qbo_id, l.natural_key, l.connection_id
FROM conflicts c JOIN links l ON l.id = c.link_id
WHERE (%(status)s::text IS NULL OR c.status = %(status)s)
ORDER BY c.id DESC LIMIT %(limit)s;

-- name: get_conflict
SELECT c.*, l.entity_type, l.internal_id, l.qbo_id, l.natural_key, l.connection_id,
       l.base
FROM conflicts c JOIN links l ON l.id = c.link_id
WHERE c.id = %(conflict_id)s;
