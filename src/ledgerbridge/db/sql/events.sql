-- name: insert_delivery
INSERT INTO deliveries (source, signature_ok, status_code, error, headers, body)
VALUES (%(source)s, %(signature_ok)s, %(status_code)s, %(error)s, %(headers)s, %(body)s)
RETURNING id;

-- name: find_connection_by_realm
SELECT id FROM connections WHERE realm_id = %(realm_id)s;

-- name: default_connection
SELECT id FROM connections ORDER BY id LIMIT 1;

-- name: insert_event
-- A dedupe key seen before makes this insert nothing: the delivery is a duplicate.
INSERT INTO events (connection_id, delivery_id, origin, side, entity_type,
                    entity_id, operation, dedupe_key, occurred_at, detail)
VALUES (%(connection_id)s, %(delivery_id)s, %(origin)s, %(side)s, %(entity_type)s,
        %(entity_id)s, %(operation)s, %(dedupe_key)s, %(occurred_at)s, %(detail)s)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id;

-- name: mark_event_enqueued
UPDATE events SET status = %(status)s, job_id = %(job_id)s
WHERE id = %(event_id)s AND status = 'received';

-- name: events_left_received
-- Events recorded but never handed to the queue (the process died in between).
SELECT id, connection_id, side, entity_type, entity_id FROM events
WHERE status = 'received' AND connection_id IS NOT NULL
  AND received_at < %(before)s
ORDER BY id LIMIT %(limit)s;

-- name: max_pending_event
SELECT coalesce(max(id), 0) AS max_id FROM events
WHERE connection_id = %(connection_id)s AND side = %(side)s
  AND entity_type = %(entity_type)s AND entity_id = %(entity_id)s;

-- name: finish_events
-- Every signal the job covered gets the job's outcome.
UPDATE events
SET status = %(status)s, detail = %(detail)s, link_id = %(link_id)s,
    processed_at = now()
WHERE connection_id = %(connection_id)s AND side = %(side)s
  AND entity_type = %(entity_type)s AND entity_id = %(entity_id)s
  AND id <= %(max_id)s
  AND status IN ('received', 'enqueued', 'coalesced', 'failed');

-- name: fail_events
UPDATE events SET status = %(status)s, detail = %(detail)s, processed_at = now()
WHERE connection_id = %(connection_id)s AND side = %(side)s
  AND entity_type = %(entity_type)s AND entity_id = %(entity_id)s
  AND status IN ('received', 'enqueued', 'coalesced', 'failed');

-- name: recent_events
SELECT e.id, e.origin, e.side, e.entity_type, e.entity_id, e.operation, e.status,
       e.detail, e.received_at, e.processed_at, e.link_id, e.job_id,
       c.realm_id, l.natural_key
FROM events e
LEFT JOIN connections c ON c.id = e.connection_id
LEFT JOIN links l ON l.id = e.link_id
WHERE (%(status)s::text IS NULL OR e.status = %(status)s)
  AND (%(after_id)s::bigint IS NULL OR e.id > %(after_id)s)
ORDER BY e.id DESC
LIMIT %(limit)s;

-- name: get_event
SELECT * FROM events WHERE id = %(event_id)s;

-- name: dead_letters
-- The newest dead letter per entity that has not been processed since.
SELECT DISTINCT ON (e.connection_id, e.side, e.entity_type, e.entity_id)
       e.id, e.connection_id, e.side, e.entity_type, e.entity_id, e.detail,
       e.processed_at, e.link_id
FROM events e
WHERE e.status = 'dead_letter'
  AND NOT EXISTS (
      SELECT 1 FROM events later
      WHERE later.connection_id = e.connection_id AND later.side = e.side
        AND later.entity_type = e.entity_type AND later.entity_id = e.entity_id
        AND later.id > e.id
  )
ORDER BY e.connection_id, e.side, e.entity_type, e.entity_id, e.id DESC;

-- name: event_counts
SELECT status, count(*) AS n FROM events GROUP BY status;

-- name: list_connections
SELECT id, realm_id, name, status, last_error, access_expires_at, updated_at
FROM connections ORDER BY id;
