-- A create writes its connector row (status TESTING) before its connectivity
-- test, so creates in flight are visible. The reservation stays, renewed,
-- until the create finishes, and names that row here: a slot is then counted
-- once (the row), not twice, and a reservation whose lease ended (its process
-- died mid-test) tells reconciliation which TESTING row to delete with it.
ALTER TABLE create_reservations ADD COLUMN connector_id TEXT;
