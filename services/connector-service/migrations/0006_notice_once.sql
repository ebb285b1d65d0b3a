-- A notice that must reach the tenant admin once, however many checks see its
-- cause (a credential expiring: every sweep inside the warning window sees
-- it), carries a key naming that cause; the unique index makes a second
-- insert of the same key for the same connector a no-op (ON CONFLICT DO
-- NOTHING), on every replica. Notices without a key (NULL) are never equal.
ALTER TABLE notification_outbox ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX notification_outbox_once ON notification_outbox (connector_id, once_key);
