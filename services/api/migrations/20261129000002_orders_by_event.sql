-- Orders by event and status: the operators' console reads an event's orders by status every
-- few seconds during a sale (GET /api/v1/admin/events/{id}/stats), which without this index
-- scans every order of every event.
CREATE INDEX orders_event_status ON orders (event_id, status);
